"""The plugin as researchers load it: fairseq-hydra-train from YAML, and --user-dir
pointing at the repository or at a regular (non-editable) installed copy."""

import os
import subprocess
import sys

import pytest

from tests.helpers import CLASSIFICATION, REPO, TINY_ROBERTA, fairseq_logs, run_fairseq

pytestmark = pytest.mark.slow


def test_hydra_train_from_yaml(tmp_path, synthetic_data):
    proc = run_fairseq(
        "fairseq-hydra-train",
        "--config-dir",
        os.path.join(REPO, "configs"),
        "--config-name",
        "tiny_roberta_r3f",
        f"task.data={synthetic_data}",
        f"common.user_dir={os.path.join(REPO, 'fairseq_r3f')}",
        f"checkpoint.save_dir={tmp_path / 'ckpt'}",
        "optimization.max_update=6",
        f"hydra.run.dir={tmp_path / 'hydra'}",
        cwd=str(tmp_path),
    )
    logs = fairseq_logs(proc.stdout + proc.stderr)
    final = logs["train"][-1]
    assert int(final["train_num_updates"]) == 6
    assert float(final["train_symm_kl"]) > 0  # our criterion ran, with its noised pass
    assert "valid_mcc" in logs["valid"][-1]  # report_mcc from the YAML reached it
    assert (tmp_path / "ckpt" / "checkpoint_last.pt").exists()


def test_user_dir_of_an_installed_copy(tmp_path, synthetic_data):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            REPO,
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    user_dir = target / "fairseq_r3f"
    assert (user_dir / "criterions" / "sentence_prediction_r3f.py").exists()
    proc = run_fairseq(
        "fairseq-train",
        synthetic_data,
        "--user-dir",
        str(user_dir),
        *CLASSIFICATION,
        *TINY_ROBERTA,
        "--criterion",
        "sentence_prediction_r3f",
        "--max-update",
        "2",
        "--save-dir",
        str(tmp_path / "ckpt"),
        cwd=str(tmp_path),
    )
    assert int(fairseq_logs(proc.stdout + proc.stderr)["train"][-1]["train_num_updates"]) == 2
    # fairseq's --user-dir import resolves to the installed copy, not to this repository
    code = (
        "import argparse, sys; from fairseq import utils; "
        "utils.import_user_module(argparse.Namespace(user_dir=sys.argv[1])); "
        "print('MODULE', sys.modules['fairseq_r3f'].__file__)"
    )
    where = subprocess.run(
        [sys.executable, "-c", code, str(user_dir)], capture_output=True, text=True, cwd=str(tmp_path), timeout=120
    )
    assert f"MODULE {user_dir}/__init__.py" in where.stdout, where.stdout + where.stderr[-2000:]
