"""``sentence_prediction_r3f``: fine-tuning with R3F (and R4F) for classification.

Loss per batch (paper, Eq. 3, summed over sentences; fairseq divides by ``sample_size``,
the number of sentences, so both terms are per-sentence means):

    L = sum_i CE(f(x_i), y_i) + lambda * sum_i KL_S(f(x_i) || f(x_i + z_i))

with z drawn on the encoder's token embeddings (``method/noise.py``), KL_S the symmetric KL
in fp32 (``method/divergence.py``). Gradient semantics follow the authors' reference: both
passes run in training mode (independent dropout masks) and the KL back-propagates
through both, into every parameter except the token embedding table, which the noised
pass reaches only through detached embeddings: x.detach() + z, as the reference writes
it. (On RoBERTa in fairseq 0.12 the reference's noised embeddings are dropped and
recomputed with gradient, so there its noised pass does train the table, noise-free.)
R4F is the same loss with ``--spectral-norm-classification-head``,
which this plugin turns into a 1-Lipschitz head (``lipschitz_head.py``). The head options,
the task loss and the metrics come from the shared base in ``classification.py``.
"""

import contextlib
import logging
from dataclasses import dataclass, field

import torch
from fairseq.criterions import register_criterion
from fairseq.dataclass import ChoiceEnum

from ..method.divergence import symmetric_kl
from ..perturb import RngState, perturbed_token_embeddings
from .classification import ClassificationHeadConfig, ConsistencyClassificationCriterion
from .r3f_noise import R3FNoiseConfig, R3FNoiseMixin, noised_if

logger = logging.getLogger(__name__)

PASSES = ("auto", "two", "stacked")


def stack_by_default(device: torch.device) -> bool:
    """What ``--r3f-passes auto`` runs on ``device``: stacked on a CUDA device, where one batch
    of n leaves the device idle part of the time, two passes elsewhere, where the cores are busy
    with one batch already (measured in ``docs/cost.md``)."""
    return device.type == "cuda"


@dataclass
class SentencePredictionR3FConfig(R3FNoiseConfig, ClassificationHeadConfig):
    r3f_one_sided: bool = field(
        default=False,
        metadata={
            "help": "noised pass under torch.no_grad: the KL's gradient flows through the clean "
            "pass only (2 forward + 1 backward, the cost the paper's Table 1 counts)"
        },
    )
    r3f_passes: ChoiceEnum(PASSES) = field(
        default="auto",
        metadata={
            "help": "how the clean and the noised pass run: 'two' forward passes; 'stacked': the "
            "clean and the noised copy as one batch of 2n sentences (the same loss and gradients, "
            "faster where one batch of n does not fill the device); 'auto': stacked on a CUDA "
            "device, two elsewhere and with --r3f-one-sided or --r3f-same-dropout (logged at the "
            "first step)"
        },
    )
    r3f_stack_passes: bool = field(
        default=False,
        metadata={"help": "the same as --r3f-passes stacked"},
    )
    r3f_same_dropout: bool = field(
        default=False,
        metadata={
            "help": "ablation: replay the RNG so both passes use the same dropout masks and "
            "the KL measures the effect of the noise alone"
        },
    )


@register_criterion("sentence_prediction_r3f", dataclass=SentencePredictionR3FConfig)
class SentencePredictionR3FCriterion(R3FNoiseMixin, ConsistencyClassificationCriterion):
    def __init__(self, cfg: SentencePredictionR3FConfig, task):
        self.check_r3f_config(cfg)
        super().__init__(cfg, task, kl_weight=cfg.r3f_lambda)
        if str(cfg.r3f_passes) not in PASSES:
            raise ValueError(f"--r3f-passes must be one of {', '.join(PASSES)}; got {cfg.r3f_passes!r}")
        if cfg.r3f_stack_passes and str(cfg.r3f_passes) == "two":
            raise ValueError("--r3f-stack-passes contradicts --r3f-passes two")
        passes = "stacked" if cfg.r3f_stack_passes else str(cfg.r3f_passes)
        if passes == "stacked" and (cfg.r3f_one_sided or cfg.r3f_same_dropout):
            raise ValueError(
                "--r3f-passes stacked (--r3f-stack-passes) cannot be combined with --r3f-one-sided "
                "(the stacked batch has one graph) or --r3f-same-dropout (rows of one batch get "
                "different masks)"
            )
        if cfg.r3f_same_dropout and str(cfg.noise_type) == "none":
            raise ValueError(
                "--r3f-same-dropout with --noise-type none makes both passes identical: the KL is 0 by construction"
            )
        self.init_r3f_noise(cfg)
        self.one_sided = cfg.r3f_one_sided
        # auto: None until the first step, where the model's device decides
        can_stack = not (cfg.r3f_one_sided or cfg.r3f_same_dropout)
        self.passes_flag = passes
        self.stack_passes = {"two": False, "stacked": True}.get(passes) if can_stack else False
        self._passes_logged = False
        self.same_dropout = cfg.r3f_same_dropout

    def perturbed_passes(self, model, sample):
        """Clean logits, noised logits and, at a diagnosed step, the diagnostics' logging entries.

        Noise is drawn first, so that with --r3f-same-dropout the replayed RNG state covers
        the dropout draws only.
        """
        src_tokens = sample["net_input"]["src_tokens"]
        if self.stack_passes is None:
            self.stack_passes = stack_by_default(src_tokens.device)
        if not self._passes_logged:
            self._passes_logged = True
            logger.info(
                "R3F passes: %s (--r3f-passes %s, %s device%s)",
                "stacked (one batch of 2n)" if self.stack_passes else "two",
                self.passes_flag,
                src_tokens.device.type,
                "; --r3f-passes two|stacked to choose" if self.passes_flag == "auto" else "",
            )
        noised = self.draw_noise(src_tokens)
        due = self.diagnostics.step()
        probe = self.diagnostics.probe(self._encoder, noised) if due else None

        with probe or contextlib.nullcontext():
            if self.stack_passes:
                n = src_tokens.size(0)
                stacked = {k: torch.cat([v, v]) if torch.is_tensor(v) else v for k, v in sample["net_input"].items()}
                with perturbed_token_embeddings(self._encoder, lambda e: torch.cat([e[:n], noised(e[n:])])):
                    both = self.classify(model, {"net_input": stacked})
                logits, noised_logits = both[:n], both[n:]
            else:
                rng = RngState.capture(src_tokens.device) if self.same_dropout else None
                logits = self.classify(model, sample)
                if rng is not None:
                    rng.restore()
                grad = torch.no_grad() if self.one_sided else contextlib.nullcontext()
                with grad, perturbed_token_embeddings(self._encoder, noised):
                    noised_logits = self.classify(model, sample)
        if not due:
            return logits, noised_logits, self.diagnostics.zeros()

        def run(on):
            with noised_if(self._encoder, noised, on):
                return self.classify(model, sample)

        diagnostics = self.diagnostics.measure(
            self._encoder,
            noised,
            probe,
            src_tokens,
            run,
            lambda p, q: symmetric_kl(p, q).sum(),
            nsentences=src_tokens.size(0),
            kl_weight=src_tokens.size(0),
        )
        return logits, noised_logits, diagnostics
