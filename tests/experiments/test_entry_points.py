"""The experiments kit's entry points: console scripts, ``python -m`` modules and every shell script
under scripts/ answer --help (and do nothing else), and its data and report modules start without
importing fairseq or torch (seconds saved per call, and no patching of torch or fairseq by the plugin)."""

import glob
import os
import re
import shlex
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO

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
    "r3f_experiments.run_folder",
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


# ---- shell scripts: -h / --help prints the usage and does nothing else ------------------------

SCRIPTS = sorted(
    os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "scripts", "**", "*.sh"), recursive=True)
)
# commands that download, install or start work: in the help runs they only record that they ran
TRIPWIRES = ("curl", "wget", "pip", "pip3", "python", "python3", "unzip", "tar", "git", "nvidia-smi")


def header_usage(path):
    """The comment block at the top of a script (after its #! line), without the "# " prefixes."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if lines and lines[0].startswith("#!"):
        lines = lines[1:]
    usage = []
    for line in lines:
        if not line.startswith("#"):
            break
        usage.append(re.sub(r"^# ?", "", line))
    return "".join(line + "\n" for line in usage)


@pytest.fixture
def sandbox(tmp_path):
    """An empty working folder, HOME and TMPDIR, and a PATH (and PYTHON) on which the commands of
    TRIPWIRES only append their command line to ``calls`` and fail."""
    calls = tmp_path / "calls"
    tripwires = tmp_path / "tripwires"
    tripwires.mkdir()
    for name in TRIPWIRES:
        path = tripwires / name
        path.write_text(f'#!/bin/sh\necho "{name} $*" >> {shlex.quote(str(calls))}\nexit 97\n')
        path.chmod(0o755)
    folders = {name: tmp_path / name for name in ("cwd", "home", "tmp")}
    for folder in folders.values():
        folder.mkdir()
    env = {
        **os.environ,
        "HOME": str(folders["home"]),
        "TMPDIR": str(folders["tmp"]),
        "PATH": f"{tripwires}{os.pathsep}{os.environ['PATH']}",
        "PYTHON": str(tripwires / "python3"),
    }
    return {"env": env, "calls": calls, **folders}


def run_for_help(sandbox, argv):
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=sandbox["cwd"], env=sandbox["env"], capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - start
    assert not sandbox["calls"].exists(), sandbox["calls"].read_text()
    for name in ("cwd", "home", "tmp"):
        assert os.listdir(sandbox[name]) == [], (name, os.listdir(sandbox[name]))
    assert elapsed < 5, f"{argv}: {elapsed:.1f} s"
    return proc


@pytest.mark.parametrize("flag", ["-h", "--help"])
@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_answers_help_and_does_nothing_else(sandbox, script, flag):
    proc = run_for_help(sandbox, ["bash", os.path.join(REPO, script), flag])
    assert proc.returncode == 0, proc.stderr
    usage = header_usage(os.path.join(REPO, script))
    assert script in usage  # the header shows how to run (or source) the script
    assert proc.stdout == usage and proc.stderr == ""


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_wordpiece_module_answers_help(sandbox, flag):
    proc = run_for_help(sandbox, [sys.executable, "-m", "r3f_experiments.data.wordpiece", flag])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: python -m r3f_experiments.data.wordpiece [-h] FOLDER")
    assert "Traceback" not in proc.stderr


def test_the_suite_refuses_to_test_another_install(tmp_path):
    """The suite's fairseq and ``python -m`` children import the installed packages: where those are
    another clone's (here a folder on PYTHONPATH that shadows the kit), the suite stops before any
    test, naming the package, where it was found, and the set-up command."""
    shadow = tmp_path / "r3f_experiments"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", "tests/unit/test_math.py"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    assert f"r3f_experiments -> {shadow}" in out
    assert "fairseq_r3f" not in out.split("not this checkout's", 1)[1].split(";", 1)[0]  # only the wrong one
    assert "bash scripts/setup.sh" in out
    assert " passed" not in out
