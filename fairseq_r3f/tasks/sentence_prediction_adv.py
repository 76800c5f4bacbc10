"""``sentence_prediction_adv``: fairseq's ``sentence_prediction`` trained with FreeLB
(Zhu et al., ICLR 2020, Alg. 1), as its authors' fairseq fork runs it.

Per update (and per micro-batch with --update-freq), with token embeddings e and K =
--adv-steps ascent steps:

    delta_0 = random start (--adv-init-mag, zero at pads)
    for t = 0 .. K:
        loss_t = criterion(f(e + delta_t));  backward(loss_t / (K + 1))   # grads accumulate
        if t < K: delta_{t+1} = Pi(delta_t + adv_lr * g_t / ||g_t||),  g_t = d loss_t / d delta_t
    one optimizer step (fairseq's trainer) on the accumulated gradient

so the parameters' gradient is the mean over the K + 1 passes, and a step costs K + 1
forward and K + 1 backward passes. FreeLB needs several backward passes per optimizer step,
which fairseq's trainer does not do by itself (one ``task.train_step`` = one backward), so
it lives in a task's ``train_step`` rather than a criterion. The criterion (e.g. fairseq's
``sentence_prediction``) computes each pass's loss and its logging output.

- fp16 / amp: every backward goes through ``optimizer.backward``, which applies the loss
  scale; delta's gradient is normalised, so the scale cancels, and overflowing (inf)
  entries are zeroed (fairseq skips that update and lowers the scale). delta is kept in
  fp32 and added to half-precision embeddings in fp32 (``noise.add_noise``).
- Dropout: by default every pass replays the first pass's dropout masks (RNG state saved
  and restored), as the authors' published runs ("syncdp": ``--no-sync-dp`` off);
  ``--adv-fresh-dropout`` draws new masks per pass.
- Scale (``--adv-scale relative``): the three magnitudes are counted in the RMS of the batch's
  clean token embeddings (non-pad positions), as ``--noise-scale relative`` counts R3F's sigma,
  so a setting keeps its geometry on encoders whose embeddings differ in scale: FreeLB's
  settings were made for RoBERTa-large's embeddings. Logged ``adv_to_embed``: the last pass's
  ||delta|| / ||e|| per sentence, the perturbation's size against its input on any encoder.
- Distributed: the first K passes run under ``model.no_sync()`` where the model is a
  DistributedDataParallel wrapper, so gradients are all-reduced once, in the last pass's
  backward (fairseq's ``legacy_ddp`` reduces once per update in any case).
"""

import contextlib
import math
from dataclasses import dataclass, field

import torch
from fairseq.dataclass import ChoiceEnum
from fairseq.logging import metrics
from fairseq.tasks import register_task
from fairseq.tasks.sentence_prediction import SentencePredictionConfig, SentencePredictionTask

from ..config_checks import refuse_non_finite, refuse_out_of_bounds
from ..cpu_amp import amp_context
from ..method.adversarial import (
    NORM_TYPES,
    check_norm_type,
    freelb_ascent_step,
    freelb_init,
    local_gradients,
    size_against_embeddings,
    token_mask,
)
from ..method.noise import add_noise, token_rms
from ..perturb import RngState, find_token_encoder, perturbed_token_embeddings

ADV_SCALES = ("absolute", "relative")


@dataclass
class SentencePredictionAdvConfig(SentencePredictionConfig):
    adv_steps: int = field(
        default=2,
        metadata={
            "help": "FreeLB ascent steps K: K + 1 forward/backward passes per step "
            "(the FreeLB fork's --adv-steps); 0 = standard training"
        },
    )
    adv_lr: float = field(default=1e-1, metadata={"help": "ascent step size on delta (FreeLB's --adv-lr)"})
    adv_init_mag: float = field(
        default=1e-1,
        metadata={
            "help": "magnitude of the random start delta_0 (FreeLB's --rand-init-mag); "
            "l2: per-example norm ~ init_mag / sqrt(3), linf: U(-init_mag, init_mag)"
        },
    )
    adv_max_norm: float = field(
        default=3e-1,
        metadata={"help": "projection radius of delta per example (FreeLB's --max-norm); <= 0: no projection"},
    )
    adv_norm_type: ChoiceEnum(NORM_TYPES) = field(
        default="l2", metadata={"help": "norm of the ascent step and projection (FreeLB's --norm-method)"}
    )
    adv_scale: ChoiceEnum(ADV_SCALES) = field(
        default="absolute",
        metadata={
            "help": "absolute: --adv-init-mag, --adv-lr and --adv-max-norm as given (FreeLB's); "
            "relative: each x the RMS of the batch's clean token embeddings (non-pad positions), "
            "so they mean the same for every checkpoint's embedding scale"
        },
    )
    adv_fresh_dropout: bool = field(
        default=False,
        metadata={
            "help": "new dropout masks in every pass (default: all K + 1 passes reuse "
            "the first pass's masks, as FreeLB's published runs)"
        },
    )


@register_task("sentence_prediction_adv", dataclass=SentencePredictionAdvConfig)
class SentencePredictionAdvTask(SentencePredictionTask):
    def __init__(self, cfg: SentencePredictionAdvConfig, data_dictionary, label_dictionary):
        refuse_non_finite(cfg, "--task sentence_prediction_adv")
        refuse_out_of_bounds(cfg, "--task sentence_prediction_adv")
        checks = (
            (cfg.adv_steps >= 0, f"--adv-steps must be >= 0, got {cfg.adv_steps}"),
            (cfg.adv_lr > 0, f"--adv-lr must be > 0, got {cfg.adv_lr}"),
            (cfg.adv_init_mag >= 0, f"--adv-init-mag must be >= 0, got {cfg.adv_init_mag}"),
            (
                not cfg.regression_target,
                "--task sentence_prediction_adv: FreeLB with --regression-target is not supported "
                "(not tested); use --task sentence_prediction",
            ),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        check_norm_type(str(cfg.adv_norm_type), "--adv-norm-type")
        super().__init__(cfg, data_dictionary, label_dictionary)

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        cfg = self.cfg
        if cfg.adv_steps == 0:
            return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)
        model.train()
        model.set_num_updates(update_num)
        encoder = find_token_encoder(model)
        src_tokens = sample["net_input"]["src_tokens"]
        mask = token_mask(src_tokens, encoder.padding_idx)
        with torch.no_grad():
            clean = encoder.embed_tokens(src_tokens)
        unit = self.magnitude_unit(clean, mask)
        delta = freelb_init(
            (*src_tokens.shape, encoder.embed_tokens.embedding_dim),
            mask,
            cfg.adv_init_mag,
            str(cfg.adv_norm_type),
            unit=unit,
        )
        dropout = None if cfg.adv_fresh_dropout else RngState.capture(src_tokens.device)
        passes = cfg.adv_steps + 1
        adv_loss, first = 0.0, None
        for step in range(passes):
            last = step == passes - 1
            delta.requires_grad_(not last)  # no ascent after the last pass
            if dropout is not None and step > 0:
                dropout.restore()
            # inner passes accumulate locally; the last pass's backward all-reduces the sum
            with contextlib.nullcontext() if last else local_gradients(model):
                with (
                    torch.autograd.profiler.record_function("forward"),
                    amp_context(optimizer, model),
                    perturbed_token_embeddings(encoder, lambda e: add_noise(e, delta)),
                ):
                    loss, sample_size, logging_output = criterion(model, sample)
                if ignore_grad:
                    loss *= 0
                with torch.autograd.profiler.record_function("backward"):
                    optimizer.backward(loss / passes)
            adv_loss = adv_loss + logging_output["loss"] / passes
            first = first or logging_output
            if not last:
                delta = freelb_ascent_step(
                    delta.detach(), delta.grad, cfg.adv_lr, str(cfg.adv_norm_type), cfg.adv_max_norm, unit
                )
        # Metrics (loss, accuracy, ...) are the first pass's, x + delta_0 (near-clean);
        # adv_loss is the mean loss over the passes, the objective FreeLB minimises;
        # adv_to_embed the last pass's ||delta|| / ||e|| per sentence (summed; averaged by the reducer).
        adv_to_embed = size_against_embeddings(delta.detach(), clean, mask).sum()
        return loss, sample_size, {**first, "adv_loss": adv_loss, "adv_to_embed": adv_to_embed}

    def magnitude_unit(self, clean, mask):
        """What the magnitude flags are counted in: 1, or (``--adv-scale relative``) the RMS of the
        batch's clean token embeddings over non-pad positions (a 0-dim tensor: no host sync)."""
        if str(self.cfg.adv_scale) != "relative":
            return 1.0
        return token_rms(clean, mask.squeeze(-1).bool())

    def reduce_metrics(self, logging_outputs, criterion):
        super().reduce_metrics(logging_outputs, criterion)
        if any("adv_loss" in log for log in logging_outputs):
            total = sum(log.get("adv_loss", 0) for log in logging_outputs)
            sample_size = sum(log.get("sample_size", 0) for log in logging_outputs)
            metrics.log_scalar("adv_loss", total / max(sample_size, 1) / math.log(2), sample_size, round=3)
        if any("adv_to_embed" in log for log in logging_outputs):
            total = sum(log.get("adv_to_embed", 0) for log in logging_outputs)
            sentences = sum(log.get("nsentences", 0) for log in logging_outputs)
            metrics.log_scalar("adv_to_embed", total / max(sentences, 1), sentences, round=4)
