"""The plugin as researchers load it: fairseq-hydra-train from YAML, and --user-dir
pointing at the repository or at a regular (non-editable) installed copy."""

import os
import subprocess
import sys

import pytest

from conftest import CLASSIFICATION, REPO, TINY_ROBERTA, fairseq_logs, run_fairseq

pytestmark = pytest.mark.slow


def test_hydra_train_from_yaml(tmp_path, synthetic_data):
    proc = run_fairseq("fairseq-hydra-train", "--config-dir", os.path.join(REPO, "configs"),
                       "--config-name", "tiny_roberta_r3f", f"task.data={synthetic_data}",
                       f"common.user_dir={os.path.join(REPO, 'fairseq_r3f')}",
                       f"checkpoint.save_dir={tmp_path / 'ckpt'}", "optimization.max_update=6",
                       f"hydra.run.dir={tmp_path / 'hydra'}", cwd=str(tmp_path))
    logs = fairseq_logs(proc.stdout + proc.stderr)
    final = logs["train"][-1]
    assert int(final["train_num_updates"]) == 6
    assert float(final["train_symm_kl"]) > 0  # our criterion ran, with its noised pass
    assert "valid_mcc" in logs["valid"][-1]  # report_mcc from the YAML reached it
    assert (tmp_path / "ckpt" / "checkpoint_last.pt").exists()


def test_user_dir_of_an_installed_copy(tmp_path, synthetic_data):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), REPO], check=True, capture_output=True, timeout=300)
    user_dir = target / "fairseq_r3f"
    assert (user_dir / "criterions" / "sentence_prediction_r3f.py").exists()
    proc = run_fairseq("fairseq-train", synthetic_data, "--user-dir", str(user_dir), *CLASSIFICATION,
                       *TINY_ROBERTA, "--criterion", "sentence_prediction_r3f", "--max-update", "2",
                       "--save-dir", str(tmp_path / "ckpt"), cwd=str(tmp_path))
    assert int(fairseq_logs(proc.stdout + proc.stderr)["train"][-1]["train_num_updates"]) == 2
    # fairseq's --user-dir import resolves to the installed copy, not to this repository
    code = ("import argparse, sys; from fairseq import utils; "
            "utils.import_user_module(argparse.Namespace(user_dir=sys.argv[1])); "
            "print('MODULE', sys.modules['fairseq_r3f'].__file__)")
    where = subprocess.run([sys.executable, "-c", code, str(user_dir)], capture_output=True, text=True,
                           cwd=str(tmp_path), timeout=120)
    assert f"MODULE {user_dir}/__init__.py" in where.stdout, where.stdout + where.stderr[-2000:]


def test_rte_recipe_yaml_runs_with_tiny_overrides(tmp_path, synthetic_data):
    """configs/rte_roberta_large_r3f.yaml is a working fairseq-hydra-train config (shrunk to a
    2-layer model on CPU, R4F switched on from the command line)."""
    save_dir = tmp_path / "ckpt"
    proc = run_fairseq("fairseq-hydra-train", "--config-dir", os.path.join(REPO, "configs"),
                       "--config-name", "rte_roberta_large_r3f", f"task.data={synthetic_data}",
                       f"common.user_dir={os.path.join(REPO, 'fairseq_r3f')}", f"checkpoint.save_dir={save_dir}",
                       f"checkpoint.restore_file={tmp_path / 'no_such_model.pt'}", "common.amp=false",
                       "common.cpu=true", "+model.encoder_layers=2", "+model.encoder_embed_dim=64",
                       "+model.encoder_ffn_embed_dim=128", "+model.encoder_attention_heads=2",
                       "task.max_positions=64", "optimization.max_update=3", "dataset.num_workers=0",
                       "model.spectral_norm_classification_head=true", f"hydra.run.dir={tmp_path / 'hydra'}",
                       cwd=str(tmp_path))
    final = fairseq_logs(proc.stdout + proc.stderr)["train"][-1]
    assert int(final["train_num_updates"]) == 3 and float(final["train_symm_kl"]) > 0
    assert float(final["train_lr"]) < 1e-6  # the recipe's warm-up towards LR 1e-5 (Tables 5-6)
    import torch
    import fairseq_r3f  # noqa: F401
    state = torch.load(save_dir / "checkpoint_last.pt")
    keys = list(state["model"])
    assert "classification_heads.sentence_classification_head.dense.parametrizations.weight.original" in keys
    assert "encoder.sentence_encoder.layers.1.fc1.weight" in keys
    assert "encoder.sentence_encoder.layers.2.fc1.weight" not in keys
