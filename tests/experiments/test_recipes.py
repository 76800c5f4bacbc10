"""scripts/glue/train.sh (the paper's Tables 5-6) and configs/glue/*.yaml describe the same runs,
and both run for real (shrunk to a tiny model on CPU)."""

import glob
import os
import shlex
import subprocess


from tests.helpers import REPO, ROBERTA_DIMS

TRAIN_SH = os.path.join(REPO, "scripts", "glue", "train.sh")
CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "glue", "*.yaml")))
TASKS = {"cola": "CoLA", "mnli": "MNLI", "mrpc": "MRPC", "qnli": "QNLI", "qqp": "QQP", "rte": "RTE", "sst_2": "SST-2"}
TINY = [*ROBERTA_DIMS, "--max-positions", "64", "--cpu", "--num-workers", "0", "--max-update", "4",
        "--warmup-updates", "1", "--total-num-update", "4"]


def dry_run(task, method, *extra):
    proc = subprocess.run(["bash", TRAIN_SH, task, method, "7", "/tmp/save", *extra], capture_output=True, text=True,
                          env={**os.environ, "DRY_RUN": "1", "PRECISION": ""}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    argv = shlex.split(proc.stdout)
    flags = {}
    for i, arg in enumerate(argv):
        if arg.startswith("--"):
            value = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("--") else True
            flags[arg[2:].replace("-", "_")] = value
    return flags


def test_every_task_and_method_has_a_config():
    assert len(CONFIGS) == 7 * 6
    names = {os.path.basename(c)[:-5] for c in CONFIGS}
    assert names == {f"{t}_{m}" for t in TASKS for m in ("std", "stdpp", "r3f", "r4f", "smart", "freelb")}
