"""``sentence_prediction_smart``: SMART's smoothness-inducing adversarial regulariser
(Jiang et al., ACL 2020, Eq. 2-3 and Alg. 1) as its authors' public code (MT-DNN,
``SmartPerturbation``) runs it.

    L = sum_i CE(f(x_i), y_i) + lambda_s * sum_i KL_S(f(x_i) || f(x_i + tilde z_i))

Per step, with e the representation perturbed and K ascent steps (default 1):

1. clean pass: f(x);
2. z_0 ~ N(0, sigma^2) per entry (sigma = --smart-noise-std, 1e-5), zero at pads, on the
   output of the encoder's embedding block (default; token embeddings + positions +
   embedding LayerNorm, unit scale per coordinate: where MT-DNN adds it, its ``embed_encode``
   being BERT's whole embedding module) or on the raw token embeddings
   (--smart-noise-at token-embeddings, R3F's place);
3. K times: one forward of f(e + z) (no gradient into the weights or the embedding table),
   g = d KL_S(f(e + z) || f(x).detach()) / dz, z <- normalize_per_token(z + eta g)
   (eta = --smart-step-size, 1e-3; inf-norm per token by default, l2 optional; or, with
   --smart-step-rule normalized-gradient, z <- z + eta normalize_per_token(g));
4. adversarial pass f(e + z) and the symmetric KL against the clean pass, gradients
   through both passes (and, as in MT-DNN, into the embedding table through e).

So a training step runs 1 + K + 1 forward passes: K + 2 backward passes reach the output
(K ascent gradients taken with ``torch.autograd.grad`` w.r.t. z only, plus the loss's
backward through the clean and the adversarial pass).

Where the public code differs from the paper, this follows the code:
- no epsilon-ball projection: the paper's Alg. 1 projects onto ||z|| <= epsilon, MT-DNN
  divides the stepped noise by its own per-token norm, so after one step every token's
  perturbation has norm ~1 (inf-norm by default) whatever the step size (its earlier release
  stepped by eta along the normalised gradient instead: --smart-step-rule normalized-gradient);
- no Bregman proximal point (the paper's momentum teacher, Eq. 4): MT-DNN's fine-tuning
  scripts do not use one, and neither does this criterion;
- MT-DNN feeds e + z back through BERT's embedding module as ``inputs_embeds``, which adds
  the positions and applies the LayerNorm a second time; here e + z goes straight to the first
  layer (no second positions / LayerNorm). MT-DNN computes e once per step (one dropout mask);
  here every pass recomputes it;
- the ascent maximises the symmetric KL of ``divergence.symmetric_kl`` (MT-DNN uses its
  ``stable_kl`` there; the normalisation removes the gradient's scale either way).
"""

from dataclasses import dataclass, field

import torch
from fairseq import metrics
from fairseq.criterions import register_criterion
from fairseq.dataclass import ChoiceEnum

from ..config_checks import refuse_non_finite, refuse_out_of_bounds
from ..method.adversarial import (
    NORM_TYPES,
    SMART_STEP_RULES,
    check_choice,
    check_norm_type,
    local_gradients,
    size_against_embeddings,
    smart_ascent_step,
    token_mask,
)
from ..method.divergence import symmetric_kl
from ..method.noise import add_noise, sample_embedding_noise
from ..perturb import perturbed_embedding_output, perturbed_token_embeddings
from .classification import ClassificationHeadConfig, ConsistencyClassificationCriterion

NOISE_PLACES = ("embedding-output", "token-embeddings")


@dataclass
class SentencePredictionSmartConfig(ClassificationHeadConfig):
    smart_lambda: float = field(
        default=1.0,
        metadata={
            "help": "weight lambda_s of the symmetric KL regulariser (MT-DNN's adv_alpha, "
            "default 1; 0 = standard fine-tuning)"
        },
    )
    smart_steps: int = field(
        default=1,
        metadata={"help": "ascent steps K on the noise (MT-DNN's adv_k); a step costs a forward and a backward pass"},
    )
    smart_step_size: float = field(default=1e-3, metadata={"help": "ascent step size eta (MT-DNN's adv_step_size)"})
    smart_noise_std: float = field(
        default=1e-5,
        metadata={"help": "std sigma of the initial noise N(0, sigma^2) (MT-DNN's adv_noise_var)"},
    )
    smart_noise_at: ChoiceEnum(NOISE_PLACES) = field(
        default="embedding-output",
        metadata={
            "help": "where the noise goes: the embedding block's output (unit scale, as "
            "MT-DNN) or the raw token embeddings (as R3F)"
        },
    )
    smart_step_rule: ChoiceEnum(SMART_STEP_RULES) = field(
        default="normalize-sum",
        metadata={
            "help": "normalize-sum: z <- normalize(z + eta g), noise of norm ~1 per token (MT-DNN's "
            "current code); normalized-gradient: z <- z + eta normalize(g), a step of norm at most "
            "eta per token (MT-DNN's earlier release, the paper's ascent direction)"
        },
    )
    smart_norm_type: ChoiceEnum(NORM_TYPES) = field(
        default="linf",
        metadata={"help": "per-token normalisation of the stepped noise (MT-DNN's adv_p_norm: inf by default)"},
    )


@register_criterion("sentence_prediction_smart", dataclass=SentencePredictionSmartConfig)
class SentencePredictionSmartCriterion(ConsistencyClassificationCriterion):
    """The shared classification loss with SMART's adversarial second pass; the KL is logged
    as ``symm_kl``, as for R3F, and the final noise's size against the tensor it is added to as
    ``smart_to_embed`` (||z|| / ||e|| per sentence over its real tokens, as FreeLB's
    ``adv_to_embed``): under the default step rule that size is set by the encoder's scale,
    not by a flag."""

    def __init__(self, cfg: SentencePredictionSmartConfig, task):
        refuse_non_finite(cfg, "--criterion sentence_prediction_smart")
        refuse_out_of_bounds(cfg, "--criterion sentence_prediction_smart")
        super().__init__(cfg, task, kl_weight=cfg.smart_lambda)
        checks = (
            (cfg.smart_lambda >= 0, f"--smart-lambda must be >= 0, got {cfg.smart_lambda}"),
            (cfg.smart_steps >= 0, f"--smart-steps must be >= 0, got {cfg.smart_steps}"),
            (cfg.smart_step_size > 0, f"--smart-step-size must be > 0, got {cfg.smart_step_size}"),
            (cfg.smart_noise_std > 0, f"--smart-noise-std must be > 0, got {cfg.smart_noise_std}"),
            (
                str(cfg.smart_noise_at) in NOISE_PLACES,
                f"--smart-noise-at must be one of {', '.join(NOISE_PLACES)}, got {cfg.smart_noise_at!r}",
            ),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        check_norm_type(str(cfg.smart_norm_type), "--smart-norm-type")
        check_choice(str(cfg.smart_step_rule), SMART_STEP_RULES, "--smart-step-rule")
        self.step_rule = str(cfg.smart_step_rule)
        self.steps = cfg.smart_steps
        self.step_size = cfg.smart_step_size
        self.noise_std = cfg.smart_noise_std
        self.norm_type = str(cfg.smart_norm_type)
        self.perturbed = (
            perturbed_embedding_output if str(cfg.smart_noise_at) == "embedding-output" else perturbed_token_embeddings
        )

    def perturbed_passes(self, model, sample):
        """Clean logits, adversarial logits, and no extra logging entries."""
        src_tokens = sample["net_input"]["src_tokens"]
        weight = self._encoder.embed_tokens.weight  # the perturbed tensors have its dim
        logits = self.classify(model, sample)
        clean = logits.detach()
        # Pads carry no noise: fairseq zeroes pad rows after the embedding LayerNorm anyway,
        # and a zero row stays zero under the per-token normalisation.
        mask = token_mask(src_tokens, self._encoder.padding_idx)
        noise = (
            sample_embedding_noise((*src_tokens.shape, weight.size(-1)), self.noise_std, "normal", weight.device) * mask
        )
        for _ in range(self.steps):
            noise.requires_grad_()
            # e detached: the ascent needs the gradient w.r.t. the noise only
            with local_gradients(model), self.perturbed(self._encoder, lambda e: add_noise(e.detach(), noise)):
                adversarial = self.classify(model, sample)
            divergence = symmetric_kl(adversarial, clean).sum()
            (grad,) = torch.autograd.grad(divergence, noise)
            noise = smart_ascent_step(noise.detach(), grad, self.step_size, self.norm_type, mask, self.step_rule)
        perturbed_input = []

        def noised(e):
            perturbed_input.append(e)
            return add_noise(e, noise)

        with self.perturbed(self._encoder, noised):
            adversarial = self.classify(model, sample)
        # The noise's size against what it perturbs, per sentence (summed; averaged by the reducer).
        smart_to_embed = size_against_embeddings(noise.detach(), perturbed_input[-1].detach(), mask).sum()
        return logits, adversarial, {"smart_to_embed": smart_to_embed}

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        ConsistencyClassificationCriterion.reduce_metrics(logging_outputs)
        if any("smart_to_embed" in log for log in logging_outputs):
            total = sum(log.get("smart_to_embed", 0) for log in logging_outputs)
            sentences = sum(log.get("nsentences", 0) for log in logging_outputs)
            metrics.log_scalar("smart_to_embed", total / max(sentences, 1), sentences, round=4)
