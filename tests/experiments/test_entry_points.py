"""The experiments kit's entry points: console scripts and ``python -m`` modules answer --help,
and its data and report modules start without importing fairseq or torch (seconds saved per call,
and no patching of torch or fairseq by the plugin)."""

import os
import subprocess
import sys

import pytest

LIGHT_MODULES = [
    "r3f_experiments.sweep",
    "r3f_experiments.probing",
    "r3f_experiments.convert_hf",
    "r3f_experiments.rouge",
    "r3f_experiments.demo_table",
    "r3f_experiments.fairseq_logs",
    "r3f_experiments.recipes.__main__",
    "r3f_experiments.data.glue",
    "r3f_experiments.data.xnli",
    "r3f_experiments.data.mrpc",
    "r3f_experiments.data.wordpiece",
    "r3f_experiments.bench.wall_time",
    "r3f_experiments.sigma_sweep",
]
CONSOLE_SCRIPTS = ["r3f-convert-hf", "r3f-sweep", "r3f-probing", "r3f-recipe"]


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_data_and_report_modules_do_not_import_fairseq_or_torch(module):
    code = (
        f"import sys, {module}; heavy = {{'fairseq', 'torch', 'fairseq_r3f'}} & set(sys.modules); print(sorted(heavy))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("script", CONSOLE_SCRIPTS)
def test_console_scripts_answer_help(script):
    exe = os.path.join(os.path.dirname(sys.executable), script)
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "usage: python -m r3f_experiments." in proc.stdout, proc.stderr


def test_checkpoint_model_flags_help_and_bad_files(tmp_path):
    command = [sys.executable, "-m", "r3f_experiments.checkpoint_model_flags"]
    proc = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "usage: python -m r3f_experiments.checkpoint_model_flags" in proc.stdout
    empty = tmp_path / "model.pt"
    empty.write_bytes(b"")
    for path, message in (
        (empty, "model.pt: not a readable checkpoint (0 bytes)"),
        (tmp_path / "nope.pt", "nope.pt: no such checkpoint file"),
    ):
        proc = subprocess.run([*command, str(path)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
