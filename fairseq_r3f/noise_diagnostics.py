"""R3F's diagnostics, measured every ``--r3f-diagnostics-interval`` training steps: how much of
the KL the noise alone makes (``noise_kl``), the embeddings' scale (``embed_rms``,
``noise_to_embed``) and how much noise reaches the encoder (``noise_carried``, with a warning
when the precision rounds it away). Each measurement is a return value; ``NoiseDiagnostics``
keeps only the step count and whether the last check found the noise lost."""

import logging
from typing import Callable, Optional

import torch
from fairseq.logging import metrics

from .method.noise import token_rms
from .perturb import EmbeddingBlockProbe, EmbeddingNoise, RngState

logger = logging.getLogger(__name__)

# Below this share of the noise reaching the encoder's first layer, the criterion warns.
CARRIED_WARNING = 0.9
# Logging keys: the reducer averages embed_rms and noise_to_embed over the diagnosed sentences
# ("_diag_sentences"), noise_carried over those whose step measured it ("_diag_carried_sentences"),
# and noise_kl over its own unit ("_diag_kl_weight": sentences for classification, target tokens
# for summarization, as symm_kl).
PER_SENTENCE = ("embed_rms", "noise_to_embed")
DIAGNOSTIC_KEYS = (
    "_diag_sentences",
    *PER_SENTENCE,
    "_diag_carried_sentences",
    "noise_carried",
    "_diag_kl_weight",
    "noise_kl",
)


def embedding_scale(encoder, noise: EmbeddingNoise, src_tokens: torch.Tensor):
    """(RMS of the batch's non-pad token embeddings, the noise's sigma), both 0-dim tensors."""
    with torch.no_grad():
        rms = token_rms(encoder.embed_tokens(src_tokens), src_tokens.ne(encoder.padding_idx))
    sigma = noise.eps * rms if noise.relative else torch.full_like(rms, noise.eps)
    return rms, sigma


def noise_carried(encoder, noise: EmbeddingNoise, probe: EmbeddingBlockProbe, src_tokens) -> Optional[torch.Tensor]:
    """The fraction of the noise the probed passes carried to the encoder's first layer, or
    None where the probe could not see both passes."""
    if not probe.complete or noise.z is None:
        return None
    with torch.no_grad():
        added = noise.added_to(encoder.embed_tokens(src_tokens))
        return probe.carried_fraction(added * encoder.embed_scale, src_tokens)


def noise_alone_kl(run: Callable[[bool], object], kl: Callable[[object, object], torch.Tensor], device):
    """``kl(clean, noised)`` of two extra passes without gradient that share their dropout masks
    (the RNG state is replayed), so only the noise separates them; the RNG state is put back, so
    the training run (every later random draw) is the one it would be without them."""
    state = RngState.capture(device)
    with torch.no_grad():
        clean = run(False)
        state.restore()
        noised = run(True)
        state.restore()
        return kl(clean, noised)


class NoiseDiagnostics:
    """When the diagnostics are due (the first training step and every ``interval``-th; never at
    0), what a step logs, and the precision warning's state."""

    def __init__(self, interval: int, eps: float):
        self.interval, self.eps = interval, eps
        self.steps = 0  # training steps counted so far
        self.noise_lost = False

    def step(self) -> bool:
        """Counts a training step; True when its diagnostics are due."""
        self.steps += 1
        return self.interval > 0 and (self.steps - 1) % self.interval == 0

    def zeros(self) -> dict:
        """The logging entries of a step without diagnostics, all 0: every training step logs the
        same keys, since fairseq sums the keys of the first of a step's logging outputs."""
        return dict.fromkeys(DIAGNOSTIC_KEYS, 0) if self.interval else {}

    def probe(self, encoder, noise: EmbeddingNoise) -> Optional[EmbeddingBlockProbe]:
        """The recorder for a diagnosed step's passes (None when nothing is added)."""
        return EmbeddingBlockProbe(encoder) if noise.z is not None else None

    def measure(self, encoder, noise, probe, src_tokens, run, kl, nsentences, kl_weight) -> dict:
        """The diagnostics of one step, as summable logging entries.

        ``run(perturbed)`` makes one forward pass (clean, or with ``noise``); ``kl(clean, noised)``
        sums the symmetric KL of two outputs; ``probe`` recorded the step's training passes."""
        logs = {**self.zeros(), "_diag_sentences": nsentences}
        rms, sigma = embedding_scale(encoder, noise, src_tokens)
        logs["embed_rms"] = rms * nsentences
        logs["noise_to_embed"] = sigma / rms.clamp_min(1e-30) * nsentences
        carried = noise_carried(encoder, noise, probe, src_tokens) if probe is not None else None
        if carried is not None:
            self.warn_if_lost(carried.item(), encoder.embed_tokens.weight.dtype)
            logs["noise_carried"] = carried * nsentences
            logs["_diag_carried_sentences"] = nsentences
        if noise.z is not None:
            logs["noise_kl"] = noise_alone_kl(run, kl, src_tokens.device)
            logs["_diag_kl_weight"] = kl_weight
        return logs

    def warn_if_lost(self, fraction: float, dtype) -> None:
        """Warn when less than 90% of the noise reaches the encoder's first layer, at the first
        check and whenever it drops below again after having recovered (and say when it does)."""
        lost = fraction < CARRIED_WARNING
        if lost and not self.noise_lost:
            logger.warning(
                "R3F: only %.0f%% of the --eps %g noise reaches the encoder's first layer at training "
                "step %d (embeddings in %s round it away, or the embeddings have grown). Use --amp "
                "instead of --fp16 (fp32 embeddings and LayerNorm), or a larger --eps.",
                100 * fraction,
                self.eps,
                self.steps,
                dtype,
            )
        elif not lost and self.noise_lost:
            logger.info(
                "R3F: the noise reaches the encoder again (%.0f%% at training step %d)", 100 * fraction, self.steps
            )
        self.noise_lost = lost


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
