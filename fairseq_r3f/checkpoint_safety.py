"""Let fairseq load its checkpoints under torch >= 2.6 without giving up ``weights_only``.

Since torch 2.6 ``torch.load`` unpickles with ``weights_only=True`` by default, and
fairseq's ``load_checkpoint_to_cpu`` (used by ``--restore-file``, resuming,
``load_model_ensemble`` and ``from_pretrained``) fails on the first non-tensor global
in a checkpoint. Turning ``weights_only`` off would let a downloaded checkpoint run
arbitrary code. Instead we add to torch's allow-list exactly the classes fairseq
checkpoints hold:

* ``argparse.Namespace``: the ``args`` of fairseq < 0.10 checkpoints, which include the
  published RoBERTa, XLM-R and BART ``model.pt`` files, and ``cfg.model`` of legacy
  (argparse-configured) models in current checkpoints;
* omegaconf's containers, their metadata and value nodes, ``typing.Any`` and the
  builtin types omegaconf stores as key/element types: ``cfg`` of fairseq 0.10-0.12
  checkpoints saved as a ``DictConfig``;
* ``collections.defaultdict`` (omegaconf's flag cache);
* numpy scalars and dtypes: metric values (``best``, ``val_loss``) in ``extra_state``;
* fairseq's ``_TensorPlaceholder`` (a frozen dataclass holding one int): with several
  workers, rank 0 loads a checkpoint and broadcasts it with each tensor replaced by a
  placeholder; the other ranks unpickle that message with ``torch.load`` too.

Every other global is still refused by torch's weights-only unpickler, before anything
in the file is called.
"""

import argparse
import collections
import os
import pickle
import typing

import numpy as np
import torch

from .patching import wrap_once

# torch.load unpickles with weights_only=True by default from 2.6 on; the allow-list below only
# protects anyone where that is the default.
MIN_TORCH = (2, 6)


def require_weights_only_torch(version: str = None) -> None:
    """An ImportError on torch older than 2.6, where ``torch.load`` would unpickle (and run)
    anything a checkpoint holds."""
    version = version or torch.__version__
    major, minor = (int(x) for x in version.split(".")[:2])
    if (major, minor) < MIN_TORCH:
        raise ImportError(
            f"fairseq-r3f needs torch >= {'.'.join(map(str, MIN_TORCH))} (found {version}): older torch.load "
            "unpickles any object a checkpoint holds, so a downloaded checkpoint could run code. Upgrade torch."
        )


def fairseq_checkpoint_globals() -> list:
    from fairseq.distributed.utils import _TensorPlaceholder
    from omegaconf import DictConfig, ListConfig, nodes
    from omegaconf.base import ContainerMetadata, Metadata

    numpy_scalar = getattr(np, "_core", np).multiarray.scalar  # numpy 2 / numpy 1
    numpy_dtype_classes = [type(np.dtype(t)) for t in (np.float64, np.float32, np.int64, np.int32, np.bool_)]
    return [
        argparse.Namespace,
        DictConfig,
        ListConfig,
        ContainerMetadata,
        Metadata,
        nodes.AnyNode,
        nodes.StringNode,
        nodes.IntegerNode,
        nodes.FloatNode,
        nodes.BooleanNode,
        typing.Any,
        int,
        float,
        str,
        bool,
        dict,
        list,
        tuple,
        collections.defaultdict,
        numpy_scalar,
        np.dtype,
        *numpy_dtype_classes,
        _TensorPlaceholder,
    ]


def allow_fairseq_checkpoints() -> None:
    """Add fairseq's checkpoint classes to torch's weights-only allow-list (idempotent)."""
    if hasattr(torch.serialization, "add_safe_globals"):  # torch >= 2.4
        torch.serialization.add_safe_globals(fairseq_checkpoint_globals())


def unreadable_checkpoint_error(path: str, error: Exception) -> Exception:
    """A ValueError naming ``path`` and its size when torch cannot read it as a checkpoint at all
    (empty, truncated, not a torch file); ``error`` itself otherwise (e.g. the weights-only refusal
    of a global that is not allowed, whose message already names it)."""
    message = str(error)
    if (
        isinstance(error, EOFError)
        or "PytorchStreamReader" in message
        or "zip archive" in message
        or "invalid load key" in message
    ):
        size = os.path.getsize(path) if os.path.isfile(path) else None
        return ValueError(
            f"{path}: not a readable checkpoint ({size} bytes): the file is empty, truncated or "
            f"not written by torch.save ({type(error).__name__}: {message or 'end of file'})"
        )
    return error


def explain_unreadable_checkpoints() -> None:
    """Wrap fairseq's ``load_checkpoint_to_cpu`` (``--restore-file``, ``--finetune-from-model``,
    resuming, ``load_model_ensemble``, ``from_pretrained``) so that an empty or truncated file
    fails with its name and size instead of a bare ``EOFError`` (idempotent)."""
    from fairseq import checkpoint_utils

    def wrapper(original):
        def load_checkpoint_to_cpu(path, *args, **kwargs):
            try:
                return original(path, *args, **kwargs)
            except (EOFError, RuntimeError, pickle.UnpicklingError) as e:
                clearer = unreadable_checkpoint_error(path, e)
                if clearer is e:
                    raise
                raise clearer from e

        return load_checkpoint_to_cpu

    wrap_once(
        checkpoint_utils,
        "load_checkpoint_to_cpu",
        wrapper,
        "an empty or truncated checkpoint fails with its name and size",
    )
