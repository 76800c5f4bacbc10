"""Read fairseq's ``--log-format json`` output (fairseq-train and fairseq-hydra-train)."""

import json
import re
from typing import Dict, List

_TRAINING_TIME = re.compile(r"done training in ([0-9.]+) seconds")


def parse_json_logs(output: str) -> Dict[str, List[dict]]:
    """Split the JSON records of a fairseq log into train_inner, train (epoch) and valid."""
    logs = {"train_inner": [], "train": [], "valid": []}
    for line in output.splitlines():
        start = line.find("{")
        if start < 0 or not line.rstrip().endswith("}"):
            continue
        try:
            record = json.loads(line[start:])
        except json.JSONDecodeError:
            continue
        if "valid_loss" in record:
            logs["valid"].append(record)
        elif "train_loss" in record:
            logs["train"].append(record)
        elif "loss" in record and "update" in record:
            logs["train_inner"].append(record)
    return logs


def training_seconds(output: str) -> float:
    """fairseq's own "done training in X seconds" (excludes start-up and data loading)."""
    found = _TRAINING_TIME.findall(output)
    if not found:
        raise ValueError("no 'done training in ... seconds' line: did training finish?")
    return float(found[-1])
