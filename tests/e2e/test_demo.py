"""scripts/demo.sh end to end, shrunk: built-in task, then the user-data mode on its outputs."""

import os
import re
import subprocess

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.slow
ROW = re.compile(r"^\| (std|r3f|r4f) \| ([0-9.]+) \| ([0-9.]+) \| ([0-9.]+) \| (\S+) \| (\S+) \| (\d+) \|$", re.M)


def run_demo(*args, env):
    proc = subprocess.run(["bash", os.path.join(REPO, "scripts", "demo.sh"), *args], capture_output=True,
                          text=True, timeout=600, env={**os.environ, **env})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {m.group(1): m.groups()[1:] for m in ROW.finditer(proc.stdout)}


def check_table(rows, updates):
    assert set(rows) == {"std", "r3f", "r4f"}
    for method, (best, last, seconds, symm_kl, carried, n) in rows.items():
        assert 0 <= float(last) <= float(best) <= 100
        assert float(seconds) > 0 and int(n) == updates
        if method == "std":
            assert symm_kl == carried == "-"
        else:
            assert float(symm_kl) > 0
            assert float(carried) == pytest.approx(1.0, abs=0.05)  # fp32 on CPU carries the noise


def test_demo_built_in_task_then_user_data(tmp_path):
    small = {"DEMO_MODEL": "tiny", "MAX_UPDATE": "8", "PRETRAIN_UPDATES": "5", "SYNTHETIC_TRAIN": "64", "SYNTHETIC_VALID": "32",
             "DEMO_OUT": str(tmp_path / "builtin")}
    check_table(run_demo(env=small), 8)
    data_bin = tmp_path / "builtin" / "data" / "bin"
    checkpoint = tmp_path / "builtin" / "pretrain" / "checkpoint_last.pt"
    assert checkpoint.exists()
    check_table(run_demo(str(data_bin), str(checkpoint), str(tmp_path / "user"), env={"MAX_UPDATE": "4"}), 4)


def test_demo_rejects_bad_arguments(tmp_path):
    proc = subprocess.run(["bash", os.path.join(REPO, "scripts", "demo.sh"), str(tmp_path), "/no/such.pt"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "input0/dict.txt missing" in proc.stderr
