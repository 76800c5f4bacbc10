"""What every R3F criterion shares besides the math: its noise flags and their checks, the
noise draw, the measure of how much noise reaches the encoder, and the one-time warning when
the precision rounds the noise away."""

import logging
from dataclasses import dataclass, field

from fairseq.dataclass import ChoiceEnum, FairseqDataclass

from ..config_checks import refuse_non_finite
from ..method.noise import NOISE_TYPES
from ..perturb import EmbeddingBlockProbe, EmbeddingNoise

logger = logging.getLogger(__name__)

# How often the criterion checks that the noise still reaches the encoder (in training steps),
# and below which fraction it warns.
PRECISION_CHECK_INTERVAL = 100
CARRIED_WARNING = 0.9


@dataclass
class R3FNoiseConfig(FairseqDataclass):
    """The flags of R3F's noise and KL weight, the same in every R3F criterion."""

    eps: float = field(
        default=1e-5,
        metadata={"help": "noise scale sigma: uniform noise in [-eps, eps], normal noise with std eps"},
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


class R3FNoiseMixin:
    """Mixed into a ``FairseqCriterion`` whose config has ``eps``, ``r3f_lambda`` and
    ``noise_type``: call ``check_r3f_config(cfg)`` before ``super().__init__`` and
    ``init_r3f_noise(cfg)`` after it. The criterion sets ``self._encoder`` (the encoder whose
    token embeddings get the noise) when it first sees the model."""

    @staticmethod
    def check_r3f_config(cfg) -> None:
        refuse_non_finite(cfg, f"--criterion {cfg._name or 'r3f'}")
        if cfg.eps <= 0:
            raise ValueError(f"--eps must be > 0 (the noise scale sigma), got {cfg.eps}")
        if cfg.r3f_lambda < 0:
            raise ValueError(f"--r3f-lambda must be >= 0, got {cfg.r3f_lambda}")
        if str(cfg.noise_type) not in NOISE_TYPES + ("none",):
            raise ValueError(
                f"--noise-type must be one of {', '.join(NOISE_TYPES)}, none; got {cfg.noise_type!r}"
            )

    def init_r3f_noise(self, cfg) -> None:
        self.check_r3f_config(cfg)
        self.noise_eps = cfg.eps
        self.r3f_lambda = cfg.r3f_lambda
        self.noise_type = str(cfg.noise_type)
        self._encoder = None
        self._carried_checks = 0
        self._noise_lost = False

    def draw_noise(self, src_tokens) -> EmbeddingNoise:
        """z for the encoder's token embeddings of ``src_tokens`` (Eq. 3)."""
        weight = self._encoder.embed_tokens.weight
        return EmbeddingNoise(
            (*src_tokens.shape, weight.size(-1)), self.noise_eps, self.noise_type, weight.device
        )

    def embedding_probe(self, noise: EmbeddingNoise):
        """An ``EmbeddingBlockProbe`` for the passes, or None when there is no noise."""
        return EmbeddingBlockProbe(self._encoder) if noise.z is not None else None

    def carried_logs(self, probe, noise: EmbeddingNoise, src_tokens, nsentences) -> dict:
        """{"noise_carried": fraction of z that reached the first layer x nsentences} (summable
        over workers; the reducer divides by the sentence count), or {} if not measurable."""
        if probe is None or not probe.complete:
            return {}
        carried = probe.carried_fraction(noise.z * self._encoder.embed_scale, src_tokens)
        self.watch_noise_carried(carried)
        return {"noise_carried": carried.detach() * nsentences}

    def watch_noise_carried(self, carried) -> None:
        """At the first training step and every ``PRECISION_CHECK_INTERVAL`` steps after (one
        device sync each): warn when less than 90% of the noise reaches the encoder's first layer,
        at the first check and whenever it drops below again after having recovered."""
        self._carried_checks += 1
        if (self._carried_checks - 1) % PRECISION_CHECK_INTERVAL:
            return
        fraction = carried.item()
        lost = fraction < CARRIED_WARNING
        if lost and not self._noise_lost:
            dtype = self._encoder.embed_tokens.weight.dtype
            logger.warning(
                "R3F: only %.0f%% of the --eps %g noise reaches the encoder's first layer at training "
                "step %d (embeddings in %s round it away, or the embeddings have grown). Use --amp "
                "instead of --fp16 (fp32 embeddings and LayerNorm), or a larger --eps.",
                100 * fraction, self.noise_eps, self._carried_checks, dtype,
            )
        elif not lost and self._noise_lost:
            logger.info("R3F: the noise reaches the encoder again (%.0f%% at training step %d)",
                        100 * fraction, self._carried_checks)
        self._noise_lost = lost
