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
import zipfile
from typing import Optional

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


# torch.save writes a zip archive (torch >= 1.6); older torch wrote a pickle stream that opens with
# the PROTO opcode and then pickles torch's magic number (its 10 bytes, little-endian), so one byte
# 0x80 alone (1 file in 256 of random data) does not make a checkpoint.
ZIP_MAGIC = b"PK\x03\x04"
PICKLE_PROTO = b"\x80"
LEGACY_MAGIC = torch.serialization.MAGIC_NUMBER.to_bytes(10, "little")


class UnreadableCheckpointError(ValueError):
    """A checkpoint file that torch cannot read: its message names the file, its size and what is
    wrong with it."""


def _first_bytes(head: bytes) -> str:
    """How a file that is no torch checkpoint starts, for a message: text as text, else bytes in hex."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\n\r\t" for c in text):
        return f"text ({text[:40]!r})"
    return f"bytes {head[:8].hex(' ')} (random or foreign data)"


def checkpoint_problem(path: str) -> Optional[str]:
    """What is wrong with the file ``path`` as a torch checkpoint, found from its first bytes and,
    for torch's zip format, its zip directory (at the end of the file, so a truncated copy has
    none), without unpickling anything; None when the file looks whole, and for a path that is
    not a local file (fairseq reports a missing one itself)."""
    if not os.path.isfile(path):
        return None
    if os.path.getsize(path) == 0:
        return "the file is empty"
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith(ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            return (
                "a zip archive (torch.save's format) without its end: the file is truncated, e.g. by a "
                "copy or a download that was interrupted"
            )
        if not any(name == "data.pkl" or name.endswith("/data.pkl") for name in names):
            return "a zip archive that torch.save did not write (it holds no data.pkl)"
        return None
    if head.startswith(PICKLE_PROTO):
        if LEGACY_MAGIC in head:
            return None  # torch's format before 1.6 (e.g. the published RoBERTa model.pt): torch reads it
        return f"a Python pickle that torch.save did not write (it starts with bytes {head[:8].hex(' ')})"
    return f"not written by torch.save: it starts with {_first_bytes(head)}"


def unreadable_checkpoint_error(path: str, error: Exception) -> Exception:
    """An ``UnreadableCheckpointError`` naming ``path`` and its size when torch cannot read it as a
    checkpoint at all (empty, truncated, corrupted, not a torch file); ``error`` itself otherwise
    (a missing file, or the weights-only refusal of a global that is not allowed, whose message
    already names it)."""
    message = str(error)
    if isinstance(error, FileNotFoundError) or not os.path.isfile(path):
        return error
    if isinstance(error, pickle.UnpicklingError) and "unsupported global" in message.lower():
        return error
    if isinstance(error, RuntimeError) and not any(
        key in message for key in ("PytorchStreamReader", "zip archive", "invalid load key")
    ):
        return error
    return UnreadableCheckpointError(
        f"{path}: not a readable checkpoint ({os.path.getsize(path)} bytes): the file is empty, truncated, "
        f"corrupted or not written by torch.save ({type(error).__name__}: {message or 'end of file'})"
    )


def explain_unreadable_checkpoints() -> None:
    """Wrap fairseq's ``load_checkpoint_to_cpu`` (``--restore-file``, ``--finetune-from-model``,
    resuming, ``load_model_ensemble``, ``from_pretrained``, ``--probe-checkpoint``) so that an empty,
    truncated, corrupted or foreign file fails with its name, its size and what is wrong with it,
    before torch reads it where that can be told from the file's first bytes and zip directory,
    instead of whatever error torch's reader ends in (EOFError, OSError, UnicodeDecodeError, ...)
    (idempotent)."""
    from fairseq import checkpoint_utils

    def wrapper(original):
        def load_checkpoint_to_cpu(path, *args, **kwargs):
            problem = checkpoint_problem(path)
            if problem is not None:
                raise UnreadableCheckpointError(
                    f"{path}: not a readable checkpoint ({os.path.getsize(path)} bytes): {problem}"
                )
            try:
                return original(path, *args, **kwargs)
            except (EOFError, OSError, RuntimeError, UnicodeDecodeError, IndexError, pickle.UnpicklingError) as e:
                clearer = unreadable_checkpoint_error(path, e)
                if clearer is e:
                    raise
                raise clearer from e

        return load_checkpoint_to_cpu

    wrap_once(
        checkpoint_utils,
        "load_checkpoint_to_cpu",
        wrapper,
        "an empty, truncated, corrupted or foreign checkpoint file fails with its name, size and what is wrong",
    )
