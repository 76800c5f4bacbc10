"""Loading the plugin beside the authors' reference (``examples/rxf/rxf_src``, which registers
two of the same criterion names): a clear error naming the clash and the cure in either order,
and nothing patched when the plugin refuses to load; two --user-dir flags refused in either order.
Each case runs in a fresh interpreter: fairseq's registries live for the whole process."""

import os
import subprocess
import sys

import fairseq
import pytest

from tests.helpers import CLASSIFICATION, REPO, TINY_ROBERTA, USER_DIR, run_fairseq

REFERENCE = os.path.join(os.path.dirname(fairseq.__file__), "examples", "rxf", "rxf_src")


def python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def test_reference_after_the_plugin_names_the_clash_and_the_cure():
    """What fairseq's own test_r4f_roberta does (--user-dir examples/rxf/rxf_src) in a process
    that imported fairseq_r3f: it fails, with this message instead of "Cannot register duplicate"."""
    proc = python(f"""
import argparse, fairseq_r3f
from fairseq import utils
utils.import_user_module(argparse.Namespace(user_dir={REFERENCE!r}))
""")
    assert proc.returncode != 0
    assert "PluginClashError" in proc.stderr and "which fairseq-r3f (already loaded) provides" in proc.stderr
    assert "drop the reference's --user-dir" in proc.stderr


def test_plugin_after_the_reference_refuses_and_changes_nothing():
    proc = python(f"""
import argparse, torch
from fairseq import utils
from fairseq.models.roberta import RobertaModel
utils.import_user_module(argparse.Namespace(user_dir={REFERENCE!r}))
try:
    import fairseq_r3f
except ImportError as e:
    print("REFUSED:", e)
print("R4F head installed:", getattr(RobertaModel.register_classification_head, "_r3f_wrapped", False))
print("allow-list installed:", argparse.Namespace in torch.serialization.get_safe_globals())
""")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (
        "REFUSED: fairseq-r3f cannot be loaded: the criterion 'sentence_prediction_r3f' is already registered"
        in proc.stdout
    )
    assert "drop the reference's --user-dir" in proc.stdout
    assert "R4F head installed: False" in proc.stdout and "allow-list installed: False" in proc.stdout


@pytest.mark.parametrize("plugin_first", [False, True], ids=["reference first", "plugin first"])
def test_two_user_dirs_are_refused_in_either_order(plugin_first, synthetic_data, tmp_path):
    """fairseq keeps only the last --user-dir. Plugin last: the plugin refuses when it is imported.
    Plugin first: fairseq never imports it and would train with the reference alone; the package's
    Hydra plugin (hydra_plugins/fairseq_r3f_user_dirs, found on the path as once installed) refuses."""
    dirs = [USER_DIR, REFERENCE] if plugin_first else [REFERENCE, USER_DIR]
    proc = run_fairseq(
        "fairseq-train",
        synthetic_data,
        "--user-dir",
        dirs[0],
        "--user-dir",
        dirs[1],
        *CLASSIFICATION,
        *TINY_ROBERTA,
        "--criterion",
        "sentence_prediction_r3f",
        "--max-update",
        "1",
        "--save-dir",
        str(tmp_path),
        check=False,
        env={"PYTHONPATH": os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)},
    )
    assert proc.returncode != 0
    assert f"--user-dir is given 2 times ({dirs[0]}, {dirs[1]}): fairseq loads only the last one" in proc.stderr
    assert ("fairseq-r3f is not loaded" in proc.stderr) == plugin_first
    assert "begin training" not in proc.stdout + proc.stderr
    assert not os.path.exists(tmp_path / "checkpoint_last.pt")
