"""fairseq checkpoints load under torch >= 2.6 with weights_only on; anything else is refused."""

import subprocess
import sys

import pytest
from fairseq import checkpoint_utils

import fairseq_r3f  # noqa: F401  (installs the allow-list)
from tests.helpers import CLASSIFICATION, TINY_ROBERTA, USER_DIR, published_style_checkpoint, run_fairseq


def test_without_plugin_fairseq_cannot_load_its_own_checkpoint(tmp_path):
    """The problem the allow-list fixes (guards against the test passing vacuously)."""
    path = tmp_path / "model.pt"
    published_style_checkpoint(path)
    code = (
        "import sys, pickle\nfrom fairseq import checkpoint_utils\n"
        "try:\n    checkpoint_utils.load_checkpoint_to_cpu(sys.argv[1])\n"
        "except pickle.UnpicklingError as e:\n    print('REFUSED', 'argparse.Namespace' in str(e))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert "REFUSED True" in out.stdout, out.stderr[-2000:]


@pytest.mark.slow
def test_fairseq_train_checkpoint_roundtrip(tmp_path, synthetic_data):
    """A checkpoint written by fairseq-train (with optimizer state, meters, best score) loads."""
    run_fairseq(
        "fairseq-train",
        synthetic_data,
        "--user-dir",
        USER_DIR,
        *CLASSIFICATION,
        *TINY_ROBERTA,
        "--criterion",
        "sentence_prediction_r3f",
        "--max-update",
        "3",
        "--save-dir",
        str(tmp_path),
    )
    state = checkpoint_utils.load_checkpoint_to_cpu(str(tmp_path / "checkpoint_last.pt"))
    assert state["optimizer_history"][-1]["num_updates"] == 3
    assert "model" in state and state["last_optimizer_state"]
