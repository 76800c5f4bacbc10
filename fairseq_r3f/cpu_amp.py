"""``--amp`` on a CPU: the training step under bfloat16 autocast.

fairseq 0.12's ``--amp`` autocasts on CUDA only (``torch.cuda.amp.autocast`` in
``FairseqTask.train_step``): with ``--cpu`` it trains in fp32 behind a disabled grad scaler. The
plugin makes ``--amp`` mean mixed precision on the device at hand: on a CPU, every training step
(forward, loss, backward) runs under ``torch.autocast("cpu", dtype=torch.bfloat16)``, which
CPUs with bfloat16 matrix units (e.g. AMX) run faster. Weights, optimizer state and the R3F KL
stay fp32; bfloat16 has fp32's exponent range, so no loss scaling is needed (fairseq's grad scaler
stays disabled on a CPU). Validation stays fp32, as fairseq's ``valid_step`` does under ``--amp``
on a GPU. R3F's noise does not survive bfloat16 at sigma far below the embeddings' scale: the
first layer's matrix products round it away (``noise_kl`` shows it; ``noise_carried``, measured
after the fp32 embedding block, cannot): ``docs/method.md``, ``python -m
r3f_experiments.bench.precision_cost``.
"""

import contextlib
import logging

import torch

from .patching import wrap_once

logger = logging.getLogger(__name__)


def amp_context(optimizer, model):
    """The autocast of one training step under ``--amp`` (``optimizer`` is fairseq's
    ``AMPOptimizer``) on ``model``'s device: CUDA's as fairseq's own, bfloat16 on a CPU; no
    autocast without ``--amp``."""
    from fairseq.optim.amp_optimizer import AMPOptimizer

    if not isinstance(optimizer, AMPOptimizer):
        return contextlib.nullcontext()
    device = next(model.parameters()).device.type
    if device == "cpu":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return torch.autocast(device)


def _wrap_train_step(task_cls) -> None:
    def wrapper(original):
        def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
            context = amp_context(optimizer, model)
            if isinstance(context, torch.autocast) and context.device != "cpu":  # fairseq autocasts CUDA itself
                return original(self, sample, model, criterion, optimizer, update_num, ignore_grad)
            if isinstance(context, torch.autocast) and not getattr(self, "_bf16_autocast_said", False):
                self._bf16_autocast_said = True  # once per run
                logger.info("--amp on a CPU: training steps run under bfloat16 autocast")
            with context:
                return original(self, sample, model, criterion, optimizer, update_num, ignore_grad)

        return train_step

    wrap_once(task_cls, "train_step", wrapper, "--amp on a CPU trains under bfloat16 autocast")


def install() -> None:
    from fairseq.tasks import FairseqTask

    _wrap_train_step(FairseqTask)
