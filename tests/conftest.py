"""Fixtures (helpers are in ``tests/helpers.py``): a synthetic task binarised by fairseq-preprocess
and a local GPT-2 BPE; every test is marked with its folder (unit, plugin, e2e, experiments) so
that ``-m`` selects by target; and a start-up check that the installed packages are this checkout's."""

import json
import os
import subprocess
import sys

import pytest

TEST_KINDS = ("unit", "plugin", "e2e", "experiments")
# not tests.helpers.REPO: helpers imports r3f_experiments, which may be the wrong install checked below
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("fairseq_r3f", "r3f_experiments")


def installed_package_dirs() -> dict:
    """Where a fresh interpreter outside the checkout finds each package (what the fairseq tools and
    ``python -m`` children of the tests import), or '' where it finds none."""
    code = (
        "import importlib.util as u, sys\n"
        "for name in sys.argv[1:]:\n"
        "    s = u.find_spec(name)\n"
        "    print(name, s.submodule_search_locations[0] if s else '')\n"
    )
    out = subprocess.run([sys.executable, "-c", code, *PACKAGES], capture_output=True, text=True, cwd="/", timeout=60)
    return dict((line.split(" ", 1) + [""])[:2] for line in out.stdout.splitlines())


def pytest_sessionstart(session):
    """The children the tests start import the installed packages, not this folder: an install of
    another clone would test that clone's code (or fail where it is gone), so refuse to start."""
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller checked
        return
    found = installed_package_dirs()
    wrong = {
        name: found.get(name) or "(not installed)"
        for name in PACKAGES
        if os.path.realpath(found.get(name) or "/nonexistent") != os.path.realpath(os.path.join(REPO, name))
    }
    if wrong:
        listed = ", ".join(f"{name} -> {where}" for name, where in wrong.items())
        pytest.exit(
            f"the installed packages are not this checkout's ({listed}); run: bash scripts/setup.sh",
            returncode=4,
        )


def pytest_collection_modifyitems(config, items):
    for item in items:
        kind = os.path.basename(os.path.dirname(str(item.fspath)))
        if kind in TEST_KINDS:
            item.add_marker(getattr(pytest.mark, kind))


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> str:
    """data-bin dir of the built-in synthetic task (small), made with fairseq-preprocess."""
    from r3f_experiments.data.synthetic import make_task

    return make_task(str(tmp_path_factory.mktemp("synthetic")), n_train=400, n_valid=96, seed=3)


MERGES = [("t", "h"), ("th", "e"), ("\u0120", "the")]  # 'the', and ' the' (Ġthe)


@pytest.fixture(scope="session")
def tiny_bpe(tmp_path_factory):
    """A local GPT-2 BPE: the 256 byte symbols (id = byte value), 3 merges, and a dict.txt."""
    from fairseq.data.encoders.gpt2_bpe_utils import bytes_to_unicode

    folder = tmp_path_factory.mktemp("gpt2_bpe")
    byte_symbols = bytes_to_unicode()
    encoder = {byte_symbols[b]: b for b in range(256)}
    for a, b in MERGES:
        encoder[a + b] = len(encoder)
    with open(folder / "encoder.json", "w", encoding="utf-8") as f:
        json.dump(encoder, f, ensure_ascii=False)
    with open(folder / "vocab.bpe", "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in MERGES))
    with open(folder / "dict.txt", "w", encoding="utf-8") as f:
        f.writelines(f"{i} {1000 - i}\n" for i in range(len(encoder)))
    # keys: the environment variables the GLUE and summarization prepare scripts read
    return {
        "BPE_ENCODER": str(folder / "encoder.json"),
        "BPE_VOCAB": str(folder / "vocab.bpe"),
        "ROBERTA_DICT": str(folder / "dict.txt"),
        "BART_DICT": str(folder / "dict.txt"),
    }
