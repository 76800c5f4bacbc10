"""What every R3F criterion shares besides the math: its noise flags and their checks, the
noise draw (absolute or relative to the embeddings' scale), and the diagnostics measured every
``--r3f-diagnostics-interval`` training steps: how much of the KL the noise alone makes
(``noise_kl``), the embeddings' scale (``embed_rms``, ``noise_to_embed``), how much noise reaches
the encoder (``noise_carried``), and the warning when the precision rounds the noise away."""

import contextlib
import logging
from dataclasses import dataclass, field

import torch
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.logging import metrics

from ..config_checks import refuse_non_finite
from ..method.noise import NOISE_TYPES, token_rms
from ..perturb import (
    EmbeddingBlockProbe,
    EmbeddingNoise,
    RngState,
    perturbed_decoder_embeddings,
    perturbed_token_embeddings,
)

logger = logging.getLogger(__name__)

NOISE_SCALES = ("absolute", "relative")
# Below this share of the noise reaching the encoder's first layer, the criterion warns.
CARRIED_WARNING = 0.9
# Logging keys of the diagnostics: the reducer averages embed_rms and noise_to_embed over the
# diagnosed sentences ("_diag_sentences"), noise_carried over those whose step measured it
# ("_diag_carried_sentences"), and noise_kl over its own unit ("_diag_kl_weight": sentences for
# classification, target tokens for summarization, as symm_kl).
PER_SENTENCE = ("embed_rms", "noise_to_embed")
DIAGNOSTIC_KEYS = (
    "_diag_sentences",
    *PER_SENTENCE,
    "_diag_carried_sentences",
    "noise_carried",
    "_diag_kl_weight",
    "noise_kl",
)


@dataclass
class R3FNoiseConfig(FairseqDataclass):
    """The flags of R3F's noise and KL weight, the same in every R3F criterion."""

    eps: float = field(
        default=1e-5,
        metadata={
            "help": "noise scale sigma: uniform noise in [-eps, eps], normal noise with std eps "
            "(with --noise-scale relative: a fraction of the token embeddings' RMS)"
        },
    )
    r3f_lambda: float = field(
        default=1.0,
        metadata={"help": "weight lambda of the symmetric KL term (0 = standard fine-tuning)"},
    )
    noise_type: ChoiceEnum(NOISE_TYPES + ("none",)) = field(
        default="uniform",
        metadata={
            "help": "distribution of the embedding noise z; 'none' is an ablation: the second "
            "pass differs only by its dropout masks (dropout consistency, R-Drop style)"
        },
    )
    noise_scale: ChoiceEnum(NOISE_SCALES) = field(
        default="absolute",
        metadata={
            "help": "absolute: sigma = --eps (the paper); relative: sigma = --eps x the RMS of the "
            "batch's token embeddings (non-pad positions), so --eps means the same for every "
            "checkpoint's embedding scale"
        },
    )
    r3f_diagnostics_interval: int = field(
        default=100,
        metadata={
            "help": "every N training steps (and at the first) log noise_kl (the KL the noise alone "
            "makes: same dropout masks, no gradient), embed_rms, noise_to_embed (sigma / RMS) "
            "and noise_carried, and check the precision; 0 = never"
        },
    )


class R3FNoiseMixin:
    """Mixed into a ``FairseqCriterion`` whose config is an ``R3FNoiseConfig``: call
    ``check_r3f_config(cfg)`` before ``super().__init__`` and ``init_r3f_noise(cfg)`` after it.
    The criterion sets ``self._encoder`` (the encoder whose token embeddings get the noise) when
    it first sees the model."""

    @staticmethod
    def check_r3f_config(cfg) -> None:
        refuse_non_finite(cfg, f"--criterion {cfg._name or 'r3f'}")
        if cfg.eps <= 0:
            raise ValueError(f"--eps must be > 0 (the noise scale sigma), got {cfg.eps}")
        if cfg.r3f_lambda < 0:
            raise ValueError(f"--r3f-lambda must be >= 0, got {cfg.r3f_lambda}")
        if str(cfg.noise_type) not in NOISE_TYPES + ("none",):
            raise ValueError(f"--noise-type must be one of {', '.join(NOISE_TYPES)}, none; got {cfg.noise_type!r}")
        if str(cfg.noise_scale) not in NOISE_SCALES:
            raise ValueError(f"--noise-scale must be one of {', '.join(NOISE_SCALES)}; got {cfg.noise_scale!r}")
        if cfg.r3f_diagnostics_interval < 0:
            raise ValueError(f"--r3f-diagnostics-interval must be >= 0 (0 = off), got {cfg.r3f_diagnostics_interval}")

    def init_r3f_noise(self, cfg) -> None:
        self.check_r3f_config(cfg)
        self.noise_eps = cfg.eps
        self.r3f_lambda = cfg.r3f_lambda
        self.noise_type = str(cfg.noise_type)
        self.relative_noise = str(cfg.noise_scale) == "relative"
        self.diagnostics_interval = cfg.r3f_diagnostics_interval
        self._encoder = None
        self._training_steps = 0
        self._noise_lost = False

    def draw_noise(self, src_tokens) -> EmbeddingNoise:
        """z for the encoder's token embeddings of ``src_tokens`` (Eq. 3)."""
        weight = self._encoder.embed_tokens.weight
        keep = src_tokens.ne(self._encoder.padding_idx)
        return EmbeddingNoise(
            (*src_tokens.shape, weight.size(-1)),
            self.noise_eps,
            self.noise_type,
            weight.device,
            relative=self.relative_noise,
            keep=keep,
        )

    def diagnostics_due(self) -> bool:
        """Counts a training step; True at the first and every ``diagnostics_interval``-th."""
        self._training_steps += 1
        return self.diagnostics_interval > 0 and (self._training_steps - 1) % self.diagnostics_interval == 0

    def embedding_probe(self, noise: EmbeddingNoise, due: bool):
        """An ``EmbeddingBlockProbe`` for the passes of a diagnosed step with noise, else None."""
        return EmbeddingBlockProbe(self._encoder) if due and noise.z is not None else None

    def noise_diagnostics(self, run, kl, noise: EmbeddingNoise, probe, src_tokens, nsentences, kl_weight) -> dict:
        """The diagnostics of one step, as summable logging entries.

        ``run(perturbed: bool)`` makes one forward pass of the model (clean, or with ``noise``
        on the token embeddings) and ``kl(clean, noised)`` sums the symmetric KL of two outputs.
        noise_kl comes from two extra passes without gradient that share their dropout masks
        (the RNG state is replayed), and the RNG state is put back afterwards: the training run
        (its loss, gradients and every later random draw) is the one it would be without them.
        """
        logs = {**self.no_diagnostics(), "_diag_sentences": nsentences}
        keep = src_tokens.ne(self._encoder.padding_idx)
        with torch.no_grad():
            rms = token_rms(self._encoder.embed_tokens(src_tokens), keep)
            sigma = noise.eps * rms if noise.relative else torch.full_like(rms, noise.eps)
            logs["embed_rms"] = rms * nsentences
            logs["noise_to_embed"] = sigma / rms.clamp_min(1e-30) * nsentences
            if probe is not None and probe.complete and noise.applied is not None:
                carried = probe.carried_fraction(noise.applied * self._encoder.embed_scale, src_tokens)
                self.watch_noise_carried(carried)
                logs["noise_carried"] = carried * nsentences
                logs["_diag_carried_sentences"] = nsentences
            if noise.z is not None:
                state = RngState.capture(src_tokens.device)
                clean = run(False)
                state.restore()
                noised = run(True)
                state.restore()
                logs["noise_kl"] = kl(clean, noised)
                logs["_diag_kl_weight"] = kl_weight
        return logs

    def no_diagnostics(self) -> dict:
        """The diagnostics' logging entries of a step without them, all 0: every training step
        logs the same keys, since fairseq sums the keys of the first of a step's logging outputs
        (over micro-batches and workers)."""
        if self.diagnostics_interval == 0:
            return {}
        return dict.fromkeys(DIAGNOSTIC_KEYS, 0)

    def watch_noise_carried(self, carried) -> None:
        """At every diagnosed step (one device sync): warn when less than 90% of the noise reaches
        the encoder's first layer, at the first check and whenever it drops below again after
        having recovered (and say when it recovers)."""
        fraction = carried.item()
        lost = fraction < CARRIED_WARNING
        if lost and not self._noise_lost:
            dtype = self._encoder.embed_tokens.weight.dtype
            logger.warning(
                "R3F: only %.0f%% of the --eps %g noise reaches the encoder's first layer at training "
                "step %d (embeddings in %s round it away, or the embeddings have grown). Use --amp "
                "instead of --fp16 (fp32 embeddings and LayerNorm), or a larger --eps.",
                100 * fraction,
                self.noise_eps,
                self._training_steps,
                dtype,
            )
        elif not lost and self._noise_lost:
            logger.info(
                "R3F: the noise reaches the encoder again (%.0f%% at training step %d)",
                100 * fraction,
                self._training_steps,
            )
        self._noise_lost = lost


def reduce_noise_diagnostics(logging_outputs) -> None:
    """Log the diagnostics of the steps in ``logging_outputs`` that had them (summed over
    workers and steps, then averaged); nothing when none had."""

    def total(key):
        return sum(log.get(key, 0) for log in logging_outputs)

    sentences = total("_diag_sentences")
    if sentences:
        for key in PER_SENTENCE:
            metrics.log_scalar(key, total(key) / sentences, sentences, round=6)
    carried_sentences = total("_diag_carried_sentences")  # steps with noise and a complete probe
    if carried_sentences:
        metrics.log_scalar("noise_carried", total("noise_carried") / carried_sentences, carried_sentences, round=3)
    kl_weight = total("_diag_kl_weight")
    if kl_weight:
        # not rounded (the log prints 6 significant digits): at the paper's sigma the noise's KL is
        # about 1e-12, which any fixed number of decimals would print as 0, "no noise arrives"
        metrics.log_scalar("noise_kl", total("noise_kl") / kl_weight, kl_weight)


def noised_if(encoder, noise: EmbeddingNoise, on: bool = True, decoder=None):
    """The context of a noised pass: the noise on the encoder's token embeddings (and, with a
    decoder, fresh noise of the same scale on the decoder's input embeddings), or nothing."""
    stack = contextlib.ExitStack()
    if on:
        stack.enter_context(perturbed_token_embeddings(encoder, noise))
        if decoder is not None:
            stack.enter_context(perturbed_decoder_embeddings(decoder, noise.fresh))
    return stack
