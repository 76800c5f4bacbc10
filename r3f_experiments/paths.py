"""Where the plugin and the repository's scripts are, found without importing the plugin
(importing ``fairseq_r3f`` imports fairseq: seconds that a report or data command does not need)."""

import importlib.util
import os


def plugin_dir() -> str:
    """The ``fairseq_r3f`` package folder: what ``fairseq-train --user-dir`` takes."""
    spec = importlib.util.find_spec("fairseq_r3f")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the fairseq_r3f plugin is not installed: run bash scripts/setup.sh")
    return os.path.abspath(list(spec.submodule_search_locations)[0])


def repo_root() -> str:
    """The checkout this package is installed from (editable install): the shell recipes live
    in its ``scripts/`` folder."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def recipe(*parts: str) -> str:
    """Path of a shell recipe under ``scripts/``, checked to exist."""
    path = os.path.join(repo_root(), "scripts", *parts)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path}: no such recipe (r3f_experiments runs from a checkout of "
            "fairseq-r3f, installed with bash scripts/setup.sh)"
        )
    return path
