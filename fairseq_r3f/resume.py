"""What happens when ``fairseq-train`` loads the checkpoint it starts from (fairseq's
``checkpoint_utils.load_checkpoint`` and ``Trainer.load_checkpoint``):

- the task may refuse the checkpoint flags before anything is loaded (``check_checkpoint_config``:
  the probing task refuses ``--finetune-from-model``);
- a ``--restore-file`` other than ``checkpoint_last.pt`` that names no file: fairseq then trains from
  random init and exits 0, so the plugin warns, naming the path and ``--finetune-from-model``;
- resuming (``--restore-file`` left at ``checkpoint_last.pt``) when ``checkpoint_last.pt`` cannot be
  read: fairseq writes a checkpoint once and copies it to ``checkpoint_last.pt``, so a run killed
  during that copy leaves it truncated beside the intact copy. The run resumes from the newest
  intact checkpoint of the save dir and says so in a warning naming both files;
- a checkpoint whose classification heads were converted between plain and R4F
  (``checkpoint_heads``) while its optimizer state is restored: the head's parameters differ from
  those the optimizer state was saved for, and Adam would fail at the first step with a shape
  error. Refused when the checkpoint is loaded, naming ``--spectral-norm-classification-head``.
"""

import copy
import dataclasses
import glob
import logging
import os
from typing import Optional

from .checkpoint_safety import checkpoint_problem
from .patching import wrap_once

logger = logging.getLogger(__name__)

R4F_FLAG = "--spectral-norm-classification-head"
# set by checkpoint_heads on the model whose heads it converted while loading a checkpoint
CONVERTED_HEADS = "_r3f_converted_heads"


def newest_intact_checkpoint(save_dir: str, suffix: str = "", exclude: Optional[str] = None) -> Optional[str]:
    """The most recently written ``checkpoint*{suffix}.pt`` of ``save_dir`` other than ``exclude``
    that looks whole (``checkpoint_problem``); None when there is none."""
    paths = [p for p in glob.glob(os.path.join(glob.escape(save_dir), f"checkpoint*{suffix}.pt")) if os.path.isfile(p)]
    if exclude is not None:
        paths = [p for p in paths if os.path.abspath(p) != os.path.abspath(exclude)]
    for path in sorted(paths, key=lambda p: os.stat(p).st_mtime_ns, reverse=True):
        if checkpoint_problem(path) is None:
            return path
    return None


def _restoring(cfg, path: str, suffix: str):
    """A copy of the checkpoint config ``cfg`` that restores ``path`` (fairseq appends ``suffix`` to
    a ``--restore-file`` itself) and no --finetune-from-model (fairseq ignores it on a resume)."""
    restore_file = path[: -len(suffix + ".pt")] + ".pt" if suffix else path
    if dataclasses.is_dataclass(cfg):
        return dataclasses.replace(cfg, restore_file=restore_file, finetune_from_model=None)
    from omegaconf import open_dict

    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.restore_file = restore_file
        cfg.finetune_from_model = None
    return cfg


def _wrap_load_checkpoint() -> None:
    from fairseq import checkpoint_utils

    def wrapper(original):
        def load_checkpoint(cfg, trainer, **passthrough_args):
            check = getattr(trainer.task, "check_checkpoint_config", None)
            if check is not None:
                check(cfg)
            if cfg.restore_file != "checkpoint_last.pt" and not os.path.isfile(cfg.restore_file):
                logger.warning(
                    "--restore-file %s: no such file; fairseq starts from random initialisation. To start "
                    "from a pre-trained model use --finetune-from-model, which refuses a missing file",
                    cfg.restore_file,
                )
            if cfg.restore_file == "checkpoint_last.pt":
                suffix = trainer.checkpoint_suffix or ""
                last = os.path.join(cfg.save_dir, f"checkpoint_last{suffix}.pt")
                problem = checkpoint_problem(last)
                fallback = newest_intact_checkpoint(cfg.save_dir, suffix, exclude=last) if problem else None
                if fallback is not None:
                    logger.warning(
                        "%s cannot be read (%s); resuming from %s instead, the newest intact checkpoint in %s",
                        last,
                        problem,
                        fallback,
                        cfg.save_dir,
                    )
                    cfg = _restoring(cfg, fallback, suffix)
            return original(cfg, trainer, **passthrough_args)

        return load_checkpoint

    wrap_once(
        checkpoint_utils,
        "load_checkpoint",
        wrapper,
        "the task checks the checkpoint flags; an unreadable checkpoint_last.pt resumes from the newest "
        "intact checkpoint of the save dir, with a warning",
    )


def _wrap_trainer_load_checkpoint() -> None:
    from fairseq.trainer import Trainer

    def wrapper(original):
        def load_checkpoint(self, filename, reset_optimizer=False, *args, **kwargs):
            model = self.get_model()
            model.__dict__.pop(CONVERTED_HEADS, None)
            had_optimizer = self._optimizer is not None
            extra_state = original(self, filename, reset_optimizer, *args, **kwargs)
            converted = model.__dict__.pop(CONVERTED_HEADS, None)
            # fairseq builds the optimizer here only to load the checkpoint's optimizer state into it
            if converted and not reset_optimizer and not had_optimizer and self._optimizer is not None:
                r4f_now = bool(getattr(getattr(model, "args", None), "spectral_norm_classification_head", False))
                raise ValueError(
                    f"{filename}: its classification head was trained {'without' if r4f_now else 'with'} "
                    f"{R4F_FLAG} and this run is {'with' if r4f_now else 'without'} it, so the head's "
                    f"parameters ({'; '.join(converted)}) no longer match the optimizer state saved with "
                    f"them. Resume {'without' if r4f_now else 'with'} {R4F_FLAG}, as the checkpoint was "
                    "trained, or pass --reset-optimizer to continue from its weights with a fresh optimizer"
                )
            return extra_state

        return load_checkpoint

    wrap_once(
        Trainer,
        "load_checkpoint",
        wrapper,
        f"a checkpoint whose heads were converted between plain and R4F while its optimizer state is restored "
        f"is refused, naming {R4F_FLAG}",
    )


def install() -> None:
    _wrap_load_checkpoint()
    _wrap_trainer_load_checkpoint()
