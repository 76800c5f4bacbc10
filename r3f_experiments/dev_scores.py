"""Dev-set scores computed outside fairseq-train, as the plugin's criterions compute them: for a
peer implementation's predictions, and for the reference rows of a report (the majority class).
Reference rows read from a CSV (e.g. a published row) sit beside them."""

import csv
import os
from typing import Dict, List, NamedTuple, Optional


def scores(targets: List[int], preds: List[int], classes: List[str]) -> Dict[str, float]:
    """accuracy, and MCC and F1 of label '1' as the plugin's criterions compute them (x100)."""
    import torch

    from fairseq_r3f.criterions.classification_metrics import (
        confusion_counts,
        confusion_matrix,
        f1_score,
        matthews_corrcoef,
    )

    t, p = torch.tensor(targets), torch.tensor(preds)
    out = {"accuracy": round(100.0 * (t == p).float().mean().item(), 1)}
    counts = {k: v.item() for k, v in confusion_counts(t, p, len(classes)).items()}
    out["mcc"] = round(100 * matthews_corrcoef(confusion_matrix(counts, len(classes))), 2)
    if len(classes) == 2 and "1" in classes:
        pos = classes.index("1")
        f1 = f1_score(
            ((p == pos) & (t == pos)).sum().item(),
            ((p == pos) & (t != pos)).sum().item(),
            ((p != pos) & (t == pos)).sum().item(),
        )
        out["f1"] = round(100 * f1, 2)
        out["acc_and_f1"] = round(50 * ((t == p).float().mean().item() + f1), 2)
    return out


def label_classes(data_bin: str) -> List[str]:
    """The class symbols of a classification data-bin, in label/dict.txt's order."""
    path = os.path.join(data_bin, "label", "dict.txt")
    with open(path, encoding="utf-8") as f:
        classes = [line.split()[0] for line in f if line.strip()]
    return [c for c in classes if not c.startswith("madeupword")]


def label_ids(data_bin: str, split: str, classes: List[str]) -> List[int]:
    """Each example's class index (into ``classes``) of one binarised split."""
    from fairseq.data import Dictionary, data_utils

    label_dict = Dictionary.load(os.path.join(data_bin, "label", "dict.txt"))
    labels = data_utils.load_indexed_dataset(os.path.join(data_bin, "label", split), label_dict)
    if labels is None:
        raise FileNotFoundError(f"{data_bin}/label/{split}: no such binarised split")
    return [classes.index(label_dict[labels[i][0].item()]) for i in range(len(labels))]


def majority_scores(data_bin: str, subset: str = "valid") -> Dict[str, float]:
    """The scores of always predicting the training set's most frequent class on ``subset``."""
    classes = label_classes(data_bin)
    train = label_ids(data_bin, "train", classes)
    majority = max(range(len(classes)), key=train.count)
    targets = label_ids(data_bin, subset, classes)
    return scores(targets, [majority] * len(targets), classes)


class Reference(NamedTuple):
    """A report's row that is no run of the grid: {column label: (value, metric it is in)}."""

    name: str
    values: Dict[str, tuple]
    source: str


def majority_reference(glue_bin: str, columns) -> Optional[Reference]:
    """The majority-class row for the columns whose task has GLUE_BIN/TASK-bin with labels."""
    values = {}
    for col in columns:
        data_bin = os.path.join(glue_bin, f"{col.task}-bin")
        if not os.path.isfile(os.path.join(data_bin, "label", "dict.txt")):
            continue
        found = majority_scores(data_bin, col.subset)
        if col.name in found:
            values[col.label] = (found[col.name], col.name)
    if not values:
        return None
    return Reference("majority class", values, "the training set's most frequent class, predicted for every example")


PUBLISHED_FIELDS = ["row", "column", "metric", "value", "source"]


def read_references(path: str) -> List[Reference]:
    """Rows of a CSV with columns row,column,metric,value,source (e.g. a paper's published
    numbers); a row's metric may differ from the table's column, and is then shown beside it."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != PUBLISHED_FIELDS:
            raise ValueError(f"{path}: the header must be {','.join(PUBLISHED_FIELDS)} (found {reader.fieldnames})")
        rows: Dict[str, Reference] = {}
        for line, r in enumerate(reader, 2):
            try:
                value = float(r["value"])
            except ValueError:
                raise ValueError(f"{path}:{line}: value {r['value']!r} is not a number") from None
            if not r["row"] or not r["column"] or not r["metric"]:
                raise ValueError(f"{path}:{line}: row, column and metric must be given")
            ref = rows.setdefault(r["row"], Reference(r["row"], {}, r["source"]))
            if r["column"] in ref.values:
                raise ValueError(f"{path}:{line}: {r['row']} has {r['column']} twice")
            ref.values[r["column"]] = (value, r["metric"])
    return list(rows.values())
