"""The repository's structure: the experiments kit's rooms import no driver and no driver
imports another (docs/development.md), methods are read from the recipes rather than found by
running a script, and every repository path or module named in code, scripts and docs exists."""

import ast
import glob
import importlib
import itertools
import os
import re
import subprocess

import pytest

from tests.helpers import REPO

KIT = "r3f_experiments"
# the thin modules on top, each a command of its own; everything else in the kit is a room
DRIVERS = {f"{KIT}.sweep", f"{KIT}.sigma_sweep", f"{KIT}.probing", f"{KIT}.demo_table"}


def kit_modules():
    for path in sorted(glob.glob(os.path.join(REPO, KIT, "**", "*.py"), recursive=True)):
        name = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
        yield (name[: -len(".__init__")] if name.endswith(".__init__") else name), path


def kit_imports(name, path):
    """The kit modules that ``name`` imports (absolute or relative, at any depth of the file)."""
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    modules = dict(kit_modules())
    return {m for m in found if m in modules}


def test_the_drivers_exist_and_the_rooms_import_none_of_them():
    modules = dict(kit_modules())
    assert DRIVERS <= set(modules)
    offences = [(name, sorted(kit_imports(name, path) & (DRIVERS - {name}))) for name, path in modules.items()]
    assert [o for o in offences if o[1]] == []


def test_an_import_of_a_driver_would_be_seen(tmp_path):
    """The check above on a module written to break it."""
    path = tmp_path / "room.py"
    path.write_text("from .sweep import DEFAULT_COMMAND\nfrom . import probing\n")
    assert kit_imports(f"{KIT}.room", str(path)) >= {f"{KIT}.sweep", f"{KIT}.probing"}


def test_no_method_is_discovered_by_running_a_recipe():
    found = subprocess.run(["grep", "-rn", "DRY_RUN", KIT], cwd=REPO, capture_output=True, text=True).stdout
    assert found == ""


# ---- every repository path and module named exists -------------------------------------------------

PATH = re.compile(r"\b(?:fairseq_r3f|r3f_experiments|scripts|docs|configs|tests)/[A-Za-z0-9_./<>{}*,-]*[A-Za-z0-9_/}]")
MODULE = re.compile(r"\b(?:fairseq_r3f|r3f_experiments)(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
SUFFIXES = ("py", "md", "sh", "yaml", "json", "txt", "csv", "png", "svg", "log", "pt")


def tracked_text_files():
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    return [
        f
        for f in files
        if not f.startswith(("docs/results/", "configs/"))
        and f.endswith((".py", ".sh", ".md", ".ini", ".cfg", ".toml", ".yaml", "run"))
    ]


def expand(token):
    """Brace lists expanded; <name>, {name} and UPPERCASE placeholders as wildcards."""
    alternatives = [
        [part] if i % 2 == 0 else part.split(",") for i, part in enumerate(re.split(r"\{([^{}]*,[^{}]*)\}", token))
    ]
    for combo in itertools.product(*alternatives):
        pattern = re.sub(r"<[^>]*>|\{[^{}]*\}|\b[A-Z][A-Z_]+\b|\*", "*", "".join(combo))
        yield pattern


def missing_paths(text):
    missing = []
    for token in PATH.findall(text):
        token = token.rstrip(".,")
        if not all(glob.glob(os.path.join(REPO, p)) for p in expand(token)):
            missing.append(token)
    return missing


def missing_modules(text):
    missing = []
    for token in MODULE.findall(text):
        parts = token.split(".")
        if parts[-1] in SUFFIXES or parts[-1].isupper():
            continue
        for k in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:k]))
            except ImportError:
                continue
            for attribute in parts[k:]:
                obj = getattr(obj, attribute, None)
            if obj is None:
                missing.append(token)
            break
    return missing


@pytest.mark.parametrize("name", tracked_text_files())
def test_every_repository_path_and_module_named_exists(name):
    text = open(os.path.join(REPO, name), encoding="utf-8").read()
    assert missing_paths(text) == [] and missing_modules(text) == []


def test_a_moved_path_or_name_would_be_seen():
    gone_path, gone_config = "scripts" + "/sweep.py", "configs" + "/glue/<task>_{smart,nonsense}.yaml"
    assert missing_paths(f"see {gone_path} and {gone_config}") == [gone_path, gone_config]
    assert missing_paths("configs/glue/<task>_{smart,freelb}.yaml, scripts/summarization/DATASET/train.sh") == []
    gone_name = "r3f_experiments" + ".probing.LinearProbeHead"
    assert missing_modules(f"{gone_name}, r3f_experiments.results.Paired") == [gone_name]


def test_the_code_is_formatted_and_linted():
    """ruff.toml's formatter and linter, over the whole repository."""
    for argv in (["ruff", "format", "--check", "."], ["ruff", "check", "."]):
        proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
