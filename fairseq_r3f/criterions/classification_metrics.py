"""GLUE metrics from confusion-matrix counts.

Counts are plain sums, so per-worker logging outputs can be summed across data-parallel
workers (``logging_outputs_can_be_summed``) and the metrics computed once afterwards.
fairseq's own ``sentence_prediction`` instead ships every prediction to one place.
"""

import math
from typing import Mapping

import torch

# The leading "_" keeps these raw counts out of fairseq's printed logs (it hides "_" meters).
CONFUSION_KEY = "_confusion_{target}_{pred}"


def confusion_counts(targets: torch.Tensor, preds: torch.Tensor, num_classes: int) -> dict:
    """{confusion_t_p: count} for every (target, prediction) cell, as 0-dim tensors (no sync)."""
    cells = torch.bincount(targets * num_classes + preds, minlength=num_classes * num_classes)
    return {
        CONFUSION_KEY.format(target=t, pred=p): cells[t * num_classes + p]
        for t in range(num_classes)
        for p in range(num_classes)
    }


def confusion_matrix(counts: Mapping[str, float], num_classes: int) -> list:
    return [
        [float(counts.get(CONFUSION_KEY.format(target=t, pred=p), 0)) for p in range(num_classes)]
        for t in range(num_classes)
    ]


def matthews_corrcoef(matrix: list) -> float:
    """Matthews correlation coefficient of a KxK confusion matrix (rows: targets).

    The multi-class form (Gorodkin 2004) that scikit-learn uses; for K = 2 it is the
    usual (tp tn - fp fn) / sqrt(...). 0 when a denominator vanishes, as in scikit-learn.
    """
    k = len(matrix)
    total = sum(map(sum, matrix))
    correct = sum(matrix[i][i] for i in range(k))
    true_per_class = [sum(matrix[i]) for i in range(k)]
    pred_per_class = [sum(matrix[i][j] for i in range(k)) for j in range(k)]
    cov_ytyp = correct * total - sum(t * p for t, p in zip(true_per_class, pred_per_class))
    cov_ypyp = total * total - sum(p * p for p in pred_per_class)
    cov_ytyt = total * total - sum(t * t for t in true_per_class)
    if cov_ypyp * cov_ytyt == 0:
        return 0.0
    return cov_ytyp / math.sqrt(cov_ytyt * cov_ypyp)


def f1_score(tp: float, fp: float, fn: float) -> float:
    """F1 of the positive class (scikit-learn's ``average='binary'``); 0 when undefined."""
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
