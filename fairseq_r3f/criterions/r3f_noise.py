"""What every R3F criterion shares besides the math: its noise flags and their checks, and the
noise draw (absolute or relative to the embeddings' scale). The diagnostics the flags switch on
live in ``fairseq_r3f/noise_diagnostics.py``."""

import contextlib
from dataclasses import dataclass, field

from fairseq.dataclass import ChoiceEnum, FairseqDataclass

from ..config_checks import refuse_non_finite, refuse_out_of_bounds
from ..method.noise import NOISE_TYPES
from ..noise_diagnostics import NoiseDiagnostics
from ..perturb import EmbeddingNoise, perturbed_decoder_embeddings, perturbed_token_embeddings

NOISE_SCALES = ("absolute", "relative")


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
        refuse_out_of_bounds(cfg, f"--criterion {cfg._name or 'r3f'}")
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
        self.diagnostics = NoiseDiagnostics(cfg.r3f_diagnostics_interval, cfg.eps)
        self._encoder = None

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


def noised_if(encoder, noise: EmbeddingNoise, on: bool = True, decoder=None):
    """The context of a noised pass: the noise on the encoder's token embeddings (and, with a
    decoder, fresh noise of the same scale on the decoder's input embeddings), or nothing."""
    stack = contextlib.ExitStack()
    if on:
        stack.enter_context(perturbed_token_embeddings(encoder, noise))
        if decoder is not None:
            stack.enter_context(perturbed_decoder_embeddings(decoder, noise.fresh))
    return stack
