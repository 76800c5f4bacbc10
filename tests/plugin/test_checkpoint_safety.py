"""fairseq checkpoints load under torch >= 2.6 with weights_only on; anything else is refused."""

import argparse
import os
import pickle

import pytest
import torch
from fairseq import checkpoint_utils
from omegaconf import OmegaConf

import fairseq_r3f  # noqa: F401  (installs the allow-list)
from tests.helpers import checkpoint_body, published_style_checkpoint


class RunsCommand:
    """A pickled object whose unpickling would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_torch_default_is_still_weights_only():
    assert torch.__version__ >= "2.6"
    import inspect

    # fairseq calls torch.load(f, map_location=...) and relies on the default
    assert inspect.signature(torch.load).parameters["weights_only"].default is None


def test_published_namespace_checkpoint_loads(tmp_path):
    path = tmp_path / "model.pt"
    published_style_checkpoint(path)
    state = checkpoint_utils.load_checkpoint_to_cpu(str(path))
    assert state["args"].arch == "roberta_large"
    assert state["cfg"].model.arch == "roberta_large"  # fairseq converted the Namespace
    assert torch.equal(state["model"]["w"], torch.ones(2, 2))


def test_dictconfig_checkpoint_loads(tmp_path):
    path = tmp_path / "model.pt"
    cfg = OmegaConf.create(
        {
            "common": {"seed": 2, "fp16": False},
            "model": {"_name": "bart_large", "dropout": 0.1},
            "task": {"_name": "translation", "langs": ["en", "de"]},
            "criterion": None,
        }
    )
    torch.save({"cfg": cfg, **checkpoint_body()}, path)
    state = checkpoint_utils.load_checkpoint_to_cpu(str(path))
    assert state["cfg"].model._name == "bart_large"
    assert list(state["cfg"].task.langs) == ["en", "de"]


@pytest.mark.parametrize("where", ["top_level", "inside_args"])
def test_malicious_checkpoint_is_refused_and_nothing_runs(tmp_path, where):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    if where == "top_level":
        published_style_checkpoint(path, evil=RunsCommand(marker))
    else:
        torch.save(
            {"args": argparse.Namespace(arch="roberta_base", hook=RunsCommand(marker)), **checkpoint_body()}, path
        )
    with pytest.raises(pickle.UnpicklingError, match="posix.system|os.system|system"):
        checkpoint_utils.load_checkpoint_to_cpu(str(path))
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    assert not marker.exists()


def test_torch_without_a_weights_only_default_is_refused():
    """Before torch 2.6, torch.load unpickles anything: the allow-list would protect nobody."""
    from fairseq_r3f.checkpoint_safety import require_weights_only_torch

    with pytest.raises(ImportError, match=r"needs torch >= 2.6 \(found 2.5.1\)"):
        require_weights_only_torch("2.5.1")
    require_weights_only_torch("2.6.0+cu124")
    require_weights_only_torch(torch.__version__)
    setup_py = open(os.path.join(os.path.dirname(__file__), "..", "..", "setup.py")).read()
    assert '"torch>=2.6"' in setup_py


def test_empty_or_truncated_checkpoint_names_the_file(tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.pt: not a readable checkpoint \(0 bytes\)"):
        checkpoint_utils.load_checkpoint_to_cpu(str(empty))
    truncated = tmp_path / "truncated.pt"
    published_style_checkpoint(tmp_path / "whole.pt")
    truncated.write_bytes((tmp_path / "whole.pt").read_bytes()[:300])
    with pytest.raises(ValueError, match=r"truncated.pt: not a readable checkpoint \(300 bytes\)"):
        checkpoint_utils.load_checkpoint_to_cpu(str(truncated))
