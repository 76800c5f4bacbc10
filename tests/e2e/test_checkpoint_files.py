"""fairseq checkpoints load under torch >= 2.6 with weights_only on; anything else is refused. Files
that are no readable checkpoint fail naming the file; resuming survives a truncated
checkpoint_last.pt and refuses an optimizer state saved for the other head (plain / R4F)."""

import os
import pickle
import random
import re
import shutil
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


def train(data, save_dir, *flags, check=True):
    return run_fairseq(
        "fairseq-train",
        data,
        "--user-dir",
        USER_DIR,
        *CLASSIFICATION,
        *TINY_ROBERTA,
        "--criterion",
        "sentence_prediction_r3f",
        "--save-dir",
        str(save_dir),
        *flags,
        check=check,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory, synthetic_data):
    """checkpoint_last.pt of 2 updates, plain and R4F (with optimizer state)."""
    runs = {}
    for head, flags in (("plain", []), ("r4f", ["--spectral-norm-classification-head"])):
        save_dir = tmp_path_factory.mktemp(head)
        train(synthetic_data, save_dir, "--max-update", "2", *flags)
        runs[head] = str(save_dir / "checkpoint_last.pt")
    return runs


BAD_FILES = {
    "truncated": ("the file is truncated", lambda whole: whole[: len(whole) // 2]),
    # Seeded, and its first byte is 0x80 (pickle's PROTO opcode): the legacy format's first byte alone
    # must not make random data pass for a checkpoint.
    "random": (
        "a Python pickle that torch.save did not write",
        lambda whole: b"\x80" + random.Random(0).randbytes(4095),
    ),
    "pickle": ("a Python pickle that torch.save did not write", lambda whole: pickle.dumps({"model": {}})),
    "foreign": (
        "not written by torch.save: it starts with bytes",
        lambda whole: b"\x00\x01" + random.Random(1).randbytes(4094),
    ),
    "text": ("not written by torch.save: it starts with text ('model weights", lambda whole: b"model weights\n"),
}


def bad_file(trained, tmp_path, kind):
    """(path, what the error must say) of a checkpoint file of ``kind``: a real checkpoint cut in half,
    random bytes, a plain pickle or a text file."""
    what, make = BAD_FILES[kind]
    path = tmp_path / f"{kind}.pt"
    with open(trained["plain"], "rb") as f:
        path.write_bytes(make(f.read()))
    return str(path), what


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(BAD_FILES))
@pytest.mark.parametrize("flag", ["--restore-file", "--finetune-from-model"])
def test_unreadable_start_checkpoint_names_the_file_before_training(flag, kind, trained, synthetic_data, tmp_path):
    """Instead of torch's OSError / UnpicklingError / KeyError naming no file."""
    path, what = bad_file(trained, tmp_path, kind)
    proc = train(synthetic_data, tmp_path / "run", flag, path, "--max-update", "4", check=False)
    assert proc.returncode != 0
    assert (
        f"UnreadableCheckpointError: {path}: not a readable checkpoint ({os.path.getsize(path)} bytes): " in proc.stderr
    )
    assert what in proc.stderr
    assert "begin training" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_unreadable_checkpoint_names_the_file_in_load_model_ensemble_and_probing(
    kind, trained, synthetic_data, tmp_path
):
    from fairseq_r3f.checkpoint_safety import UnreadableCheckpointError
    from tests.helpers import build_in_process

    path, what = bad_file(trained, tmp_path, kind)
    with pytest.raises(
        UnreadableCheckpointError, match=rf"^{re.escape(path)}: not a readable checkpoint .*{re.escape(what)}"
    ):
        checkpoint_utils.load_model_ensemble([path], arg_overrides={"data": synthetic_data})
    with pytest.raises(UnreadableCheckpointError, match=rf"^{re.escape(path)}: not a readable checkpoint"):
        build_in_process(
            synthetic_data,
            *TINY_ROBERTA,
            "--criterion",
            "sentence_prediction",
            "--task",
            "sentence_prediction_probe",
            "--probe-checkpoint",
            path,
        )


@pytest.mark.slow
@pytest.mark.parametrize("trained_with", ["plain", "r4f"])
def test_resuming_with_the_r4f_flag_changed_names_the_flag(trained_with, trained, synthetic_data, tmp_path):
    """The head's parameters differ between plain and R4F, so the optimizer state saved for one does not
    fit the other (Adam would fail at its first step with a shape error naming no flag)."""
    shutil.copy(trained[trained_with], tmp_path / "checkpoint_last.pt")
    changed = [] if trained_with == "r4f" else ["--spectral-norm-classification-head"]
    proc = train(synthetic_data, tmp_path, "--max-update", "4", *changed, check=False)
    assert proc.returncode != 0
    was, now = ("with", "without") if trained_with == "r4f" else ("without", "with")
    assert (
        f"checkpoint_last.pt: its classification head was trained {was} --spectral-norm-classification-head "
        f"and this run is {now} it" in proc.stderr
    )
    assert f"Resume {was} --spectral-norm-classification-head" in proc.stderr
    assert "begin training" not in proc.stdout + proc.stderr


@pytest.mark.slow
def test_truncated_checkpoint_last_resumes_from_the_newest_intact_checkpoint(trained, synthetic_data, tmp_path):
    """A kill during fairseq's copy of checkpoint_1_2.pt to checkpoint_last.pt leaves the latter cut short:
    the resume takes checkpoint_1_2.pt, with a warning naming both."""
    intact, last = tmp_path / "checkpoint_1_2.pt", tmp_path / "checkpoint_last.pt"
    shutil.copy(trained["plain"], intact)
    whole = intact.read_bytes()
    last.write_bytes(whole[: len(whole) // 3])
    proc = train(synthetic_data, tmp_path, "--max-update", "4")
    output = proc.stdout + proc.stderr
    assert f"{last} cannot be read (a zip archive (torch.save's format) without its end" in output
    assert f"resuming from {intact} instead, the newest intact checkpoint in {tmp_path}" in output
    assert f"Loaded checkpoint {intact} (epoch 1 @ 2 updates)" in output
    assert checkpoint_utils.load_checkpoint_to_cpu(str(last))["optimizer_history"][-1]["num_updates"] == 4


@pytest.mark.slow
def test_probe_refuses_finetune_from_model(trained, synthetic_data, tmp_path):
    """fairseq loads --finetune-from-model after the probing task built the model from --probe-checkpoint:
    the log would say A's encoder was loaded while B's is probed."""
    probed, other = trained["plain"], trained["r4f"]
    proc = train(
        synthetic_data,
        tmp_path,
        "--task",
        "sentence_prediction_probe",
        "--criterion",
        "sentence_prediction",
        "--probe-checkpoint",
        probed,
        "--finetune-from-model",
        other,
        "--max-update",
        "4",
        check=False,
    )
    assert proc.returncode != 0
    assert f"probes the encoder of --probe-checkpoint {probed}, but --finetune-from-model {other}" in proc.stderr
    assert "Drop --finetune-from-model" in proc.stderr
    assert "begin training" not in proc.stdout + proc.stderr and not os.listdir(tmp_path)


def test_a_restore_file_that_names_no_file_is_warned_about(synthetic_data, tmp_path):
    """fairseq trains from random init when --restore-file names no file (and exits 0): the plugin
    warns, naming the path and --finetune-from-model."""
    missing = str(tmp_path / "pretrained" / "modle.pt")
    proc = train(synthetic_data, tmp_path / "run", "--restore-file", missing, "--max-update", "1")
    output = proc.stdout + proc.stderr
    assert f"--restore-file {missing}: no such file; fairseq starts from random initialisation" in output
    assert "use --finetune-from-model" in output
