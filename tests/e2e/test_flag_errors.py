"""Bad flags are refused at start-up with a message that names the flag."""

import pytest

from tests.helpers import CLASSIFICATION, TINY_ROBERTA, USER_DIR, run_fairseq

R3F = ["--criterion", "sentence_prediction_r3f"]


@pytest.mark.slow
def test_fairseq_train_refuses_before_training(synthetic_data, tmp_path):
    proc = run_fairseq(
        "fairseq-train",
        synthetic_data,
        "--user-dir",
        USER_DIR,
        *CLASSIFICATION,
        *TINY_ROBERTA,
        *R3F,
        "--eps",
        "0",
        "--save-dir",
        str(tmp_path),
        check=False,
    )
    assert proc.returncode != 0
    assert "--eps must be > 0" in proc.stderr
    assert "begin training" not in proc.stdout + proc.stderr
