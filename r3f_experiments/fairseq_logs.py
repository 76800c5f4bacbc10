"""Read fairseq's ``--log-format json`` output (fairseq-train and fairseq-hydra-train)."""

import json
import os
import re
from typing import Dict, Iterator, List

_TRAINING_TIME = re.compile(r"done training in ([0-9.]+) seconds")


def _json_records(output: str) -> Iterator[dict]:
    """Every JSON object fairseq printed, one per line, after the line's logging prefix.

    Keys printed as null are left out: fairseq prints a metric that had no value in that log
    interval or epoch (e.g. the R3F diagnostics between diagnosed steps) as null."""
    for line in output.splitlines():
        start = line.find("{")
        if start < 0 or not line.rstrip().endswith("}"):
            continue
        try:
            record = json.loads(line[start:])
        except json.JSONDecodeError:
            continue
        yield {k: v for k, v in record.items() if v is not None}


def parse_json_logs(output: str) -> Dict[str, List[dict]]:
    """Split the JSON records of a fairseq log into train_inner, train (epoch) and valid."""
    logs = {"train_inner": [], "train": [], "valid": []}
    for record in _json_records(output):
        if "valid_loss" in record:
            logs["valid"].append(record)
        elif "train_loss" in record:
            logs["train"].append(record)
        elif "loss" in record and "update" in record:
            logs["train_inner"].append(record)
    return logs


def parse_valid_subsets(output: str) -> Dict[str, List[dict]]:
    """Validation records of every subset, by subset name, in log order.

    fairseq prefixes each key of a validation record with its subset's name, so
    ``--valid-subset valid,valid1`` (MNLI matched, mismatched) logs ``valid_accuracy`` and
    ``valid1_accuracy``, each record with its ``<subset>_num_updates`` (fairseq-train) or
    just ``<subset>_bsz`` (fairseq-validate). Only the first subset gets fairseq's
    ``<subset>_best_<metric>``.
    """
    subsets: Dict[str, List[dict]] = {}
    for record in _json_records(output):
        for key in record:
            subset = key[: -len("_loss")] if key.endswith("_loss") else None
            # fairseq-train's records carry <subset>_num_updates, fairseq-validate's do not
            if subset and subset != "train" and (f"{subset}_num_updates" in record or f"{subset}_bsz" in record):
                subsets.setdefault(subset, []).append(record)
                break
    return subsets


def training_seconds(output: str) -> float:
    """fairseq's own "done training in X seconds" (excludes start-up and data loading)."""
    found = _TRAINING_TIME.findall(output)
    if not found:
        raise ValueError("no 'done training in ... seconds' line: did training finish?")
    return float(found[-1])


# ---- a run's log on disk: resumed attempts, finished, started as asked ------------------------

LOG_NAME = "train.log"
_NO_CHECKPOINT = re.compile(r"No existing checkpoint found (\S+)")
_RESUMED = re.compile(r"Loaded checkpoint (\S*checkpoint_last\.pt)")


def finished_output(output: str) -> bool:
    """True when fairseq-train wrote its closing "done training in X seconds" line."""
    return bool(_TRAINING_TIME.search(output))


def fresh_start_problem(output: str) -> str:
    """Why a run's log is not what was asked for, or "": fairseq's ``--restore-file`` treats a
    missing file as "start fresh", so a typo in the pre-trained model's path trains from random
    init and exits 0 (its own checkpoint_last.pt missing is a normal first start)."""
    for path in _NO_CHECKPOINT.findall(output):
        if os.path.basename(path) != "checkpoint_last.pt":
            return f"started from random init: the pre-trained model {path} does not exist"
    return ""


def run_output(log_path: str) -> str:
    """A run's whole log: ``log_path`` preceded by the kept logs (``log_path``.N, newest first)
    of the attempts it resumed, back to the last one that did not resume from checkpoint_last.pt."""
    with open(log_path, errors="replace") as f:
        parts = [f.read()]
    n = 1
    while os.path.exists(f"{log_path}.{n}"):
        n += 1
    for k in range(n - 1, 0, -1):
        if not _RESUMED.search(parts[0]):
            break
        with open(f"{log_path}.{k}", errors="replace") as f:
            parts.insert(0, f.read())
    return "\n".join(parts)


def is_finished(log_path: str) -> bool:
    """Finished, and started from what was asked for (``fresh_start_problem``)."""
    try:
        output = run_output(log_path)
    except OSError:
        return False
    return finished_output(output) and not fresh_start_problem(output)
