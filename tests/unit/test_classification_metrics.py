"""MCC / F1 from summed confusion counts agree with scikit-learn on the same predictions."""

import pytest
import torch
from sklearn.metrics import f1_score as sk_f1
from sklearn.metrics import matthews_corrcoef as sk_mcc

from fairseq_r3f.criterions.classification_metrics import (
    confusion_counts,
    confusion_matrix,
    f1_score,
    matthews_corrcoef,
)


def counts_of(targets, preds, k):
    return {key: v.item() for key, v in confusion_counts(targets, preds, k).items()}


@pytest.mark.parametrize("num_classes,seed", [(2, 0), (2, 1), (3, 2), (5, 3)])
def test_mcc_matches_sklearn(num_classes, seed):
    g = torch.Generator().manual_seed(seed)
    targets = torch.randint(num_classes, (200,), generator=g)
    # correlated predictions: right 60% of the time
    preds = torch.where(torch.rand(200, generator=g) < 0.6, targets, torch.randint(num_classes, (200,), generator=g))
    matrix = confusion_matrix(counts_of(targets, preds, num_classes), num_classes)
    assert matthews_corrcoef(matrix) == pytest.approx(sk_mcc(targets.numpy(), preds.numpy()), abs=1e-12)


def test_mcc_degenerate_is_zero_like_sklearn():
    targets = torch.tensor([0, 1, 0, 1])
    preds = torch.zeros(4, dtype=torch.long)
    matrix = confusion_matrix(counts_of(targets, preds, 2), 2)
    assert matthews_corrcoef(matrix) == sk_mcc(targets.numpy(), preds.numpy()) == 0.0


def test_counts_split_across_workers_add_up_to_the_whole():
    g = torch.Generator().manual_seed(4)
    targets, preds = torch.randint(2, (50,), generator=g), torch.randint(2, (50,), generator=g)
    whole = counts_of(targets, preds, 2)
    a, b = counts_of(targets[:20], preds[:20], 2), counts_of(targets[20:], preds[20:], 2)
    assert {k: a[k] + b[k] for k in whole} == whole


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_f1_matches_sklearn(seed):
    g = torch.Generator().manual_seed(seed)
    targets, preds = torch.randint(2, (120,), generator=g), torch.randint(2, (120,), generator=g)
    tp = int(((preds == 1) & (targets == 1)).sum())
    fp = int(((preds == 1) & (targets == 0)).sum())
    fn = int(((preds == 0) & (targets == 1)).sum())
    assert f1_score(tp, fp, fn) == pytest.approx(sk_f1(targets.numpy(), preds.numpy()), abs=1e-12)
    assert f1_score(0, 0, 0) == 0.0
