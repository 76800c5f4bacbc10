"""``label_smoothed_cross_entropy_r3f``: R3F for sequence-to-sequence fine-tuning (BART).

Loss per batch (paper, Eq. 3 with a sequence output), summed over target tokens t that
are not padding; fairseq divides by ``sample_size`` = the number of target tokens (or of
sentences with ``--sentence-avg``), so both terms are per-token means:

    L = sum_t LS-CE(f(x)_t, y_t) + lambda * sum_t KL_S(f(x)_t || f(x + z)_t)

f(x)_t is the decoder's distribution over the target vocabulary at position t (teacher
forcing), z the noise on the encoder's token embeddings (``--r3f-decoder-noise`` also
perturbs the decoder's), KL_S the symmetric KL in fp32. Both passes run in training mode
and the KL back-propagates through both, as in the classification criterion.

Relation to the authors' reference: it sums KL_S over every target position, padding
included, divides by the number of sentences and multiplies by the number of target
tokens. After fairseq's division by the token count its penalty is
lambda_ref * sum_{all positions} KL_S / B, about lambda_ref * T * (mean KL_S per token) for a
batch padded to target length T. So lambda here = lambda_ref * T: the paper's grid
{0.001, 0.01, 0.1} corresponds to about {0.1, 1, 10} for CNN/DailyMail-length targets
(T ~ 100), and to about T / 100 of those for short targets.
"""

import contextlib
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from fairseq.criterions import register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import (
    LabelSmoothedCrossEntropyCriterion,
    LabelSmoothedCrossEntropyCriterionConfig,
    label_smoothed_nll_loss,
)
from fairseq.logging import metrics

from ..method.divergence import symmetric_kl_of_log_probs
from ..noise_diagnostics import reduce_noise_diagnostics
from .classification import token_encoder_of
from .r3f_noise import R3FNoiseConfig, R3FNoiseMixin, noised_if


@dataclass
class LabelSmoothedCrossEntropyR3FConfig(R3FNoiseConfig, LabelSmoothedCrossEntropyCriterionConfig):
    r3f_lambda: float = field(
        default=1.0,
        metadata={
            "help": "weight lambda of the symmetric KL, per target token like the task loss "
            "(about the reference's lambda times the padded target length; 0 = standard)"
        },
    )
    r3f_decoder_noise: bool = field(
        default=False,
        metadata={
            "help": "also perturb the decoder's input token embeddings (fresh noise of the same "
            "distribution); off by default, as in the paper, where only the input is perturbed"
        },
    )


@register_criterion("label_smoothed_cross_entropy_r3f", dataclass=LabelSmoothedCrossEntropyR3FConfig)
class LabelSmoothedCrossEntropyR3FCriterion(R3FNoiseMixin, LabelSmoothedCrossEntropyCriterion):
    def __init__(self, cfg: LabelSmoothedCrossEntropyR3FConfig, task):
        self.check_r3f_config(cfg)
        super().__init__(
            task,
            cfg.sentence_avg,
            cfg.label_smoothing,
            ignore_prefix_size=cfg.ignore_prefix_size,
            report_accuracy=cfg.report_accuracy,
        )
        if not 0 <= cfg.label_smoothing < 1:
            raise ValueError(f"--label-smoothing must be in [0, 1), got {cfg.label_smoothing}")
        self.init_r3f_noise(cfg)
        self.decoder_noise = cfg.r3f_decoder_noise
        self._checked_model = None

    def check_model(self, model):
        """Validate the model once; fairseq builds the criterion before it sees a model."""
        if self._checked_model is model:
            return
        self._encoder = token_encoder_of(model)
        if getattr(model, "decoder", None) is None:
            raise ValueError(
                f"--arch: {type(model).__name__} has no decoder; "
                "--criterion label_smoothed_cross_entropy_r3f is for encoder-decoder models "
                "(--arch bart_base, bart_large, transformer, ...)"
            )
        if getattr(getattr(model, "args", None), "spectral_norm_classification_head", False):
            raise ValueError(
                "--spectral-norm-classification-head: --criterion label_smoothed_cross_entropy_r3f trains "
                "the decoder's output over the vocabulary, and no classification head, so R4F's 1-Lipschitz "
                "head would change nothing. Drop the flag (R4F is for classification: --criterion "
                "sentence_prediction_r3f)"
            )
        self._checked_model = model

    def perturbed_passes(self, model, sample):
        """Clean and noised outputs of the model, and at a diagnosed step the diagnostics'
        logging entries (noise_kl per target token, like symm_kl)."""
        net_input = sample["net_input"]
        noise = self.draw_noise(net_input["src_tokens"])
        due = self.diagnostics.step()
        probe = self.diagnostics.probe(self._encoder, noise) if due else None

        decoder = model.decoder if self.decoder_noise else None

        with probe or contextlib.nullcontext():
            net_output = model(**net_input)
            with noised_if(self._encoder, noise, decoder=decoder):
                noised_output = model(**net_input)
        if not due:
            return net_output, noised_output, self.diagnostics.zeros()

        def run(on):
            with noised_if(self._encoder, noise, on, decoder):
                return model(**net_input)

        nsentences = sample["target"].size(0)
        diagnostics = self.diagnostics.measure(
            self._encoder,
            noise,
            probe,
            net_input["src_tokens"],
            run,
            lambda clean, noised: self._outputs_symm_kl(model, clean, noised, sample),
            nsentences=nsentences,
            kl_weight=nsentences if self.sentence_avg else sample["ntokens"],
        )
        return net_output, noised_output, diagnostics

    def _outputs_symm_kl(self, model, clean_output, noised_output, sample):
        """KL_S of two outputs summed over the non-pad target positions (diagnostics)."""
        lprobs, target = self.get_lprobs_and_target(model, clean_output, sample)
        return self._target_symm_kl(lprobs.float(), noised_output, target.ne(self.padding_idx))

    def _target_symm_kl(self, lprobs, noised_output, keep):
        """KL_S summed over the non-pad target positions the task loss counts (``keep``);
        ``lprobs`` are the clean pass's log-probabilities as the task loss took them."""
        noised_logits = noised_output[0]
        if self.ignore_prefix_size > 0:
            noised_logits = noised_logits[:, self.ignore_prefix_size :]
        noised_logits = noised_logits.reshape(-1, noised_logits.size(-1))[keep]
        noised_lprobs = F.log_softmax(noised_logits, dim=-1, dtype=torch.float32)
        return symmetric_kl_of_log_probs(lprobs[keep].float(), noised_lprobs).sum()

    def forward(self, model, sample, reduce=True):
        """Returns (loss, sample_size, logging_output) as fairseq criterions do."""
        self.check_model(model)
        noised_output, extra_logs = None, {}
        # lambda = 0 is standard fine-tuning: no noised pass whose result would be unused.
        if model.training and self.r3f_lambda > 0:
            net_output, noised_output, extra_logs = self.perturbed_passes(model, sample)
        else:
            net_output = model(**sample["net_input"])
        # One (fp32) log-softmax of the clean output over the vocabulary serves the task loss,
        # the KL and the accuracy: fairseq's compute_loss / compute_accuracy would each redo it.
        lprobs, target = self.get_lprobs_and_target(model, net_output, sample)
        task_loss, nll_loss = label_smoothed_nll_loss(
            lprobs, target, self.eps, ignore_index=self.padding_idx, reduce=reduce
        )
        keep = target.ne(self.padding_idx)
        nsentences = sample["target"].size(0)
        sample_size = nsentences if self.sentence_avg else sample["ntokens"]
        logging_output = {
            # the task loss alone, so the logs compare 1:1 with label_smoothed_cross_entropy
            "loss": task_loss.data,
            "nll_loss": nll_loss.data,
            "ntokens": sample["ntokens"],
            "nsentences": nsentences,
            "sample_size": sample_size,
            **extra_logs,
        }
        loss = task_loss
        if noised_output is not None:
            symm_kl = self._target_symm_kl(lprobs, noised_output, keep)
            loss = loss + self.r3f_lambda * symm_kl
            logging_output["symm_kl"] = symm_kl.detach()
        if self.report_accuracy:
            logging_output["n_correct"] = lprobs.detach().argmax(1)[keep].eq(target[keep]).sum()
            logging_output["total"] = keep.sum()
        return loss, sample_size, logging_output

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)

        def total(key):
            return sum(log.get(key, 0) for log in logging_outputs)

        sample_size = total("sample_size")
        if any("symm_kl" in log for log in logging_outputs):
            # per target token (per sentence with --sentence-avg): the unit lambda multiplies
            metrics.log_scalar("symm_kl", total("symm_kl") / sample_size, sample_size, round=6)
        reduce_noise_diagnostics(logging_outputs)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        # Every entry is a count or a sum, so workers' outputs add.
        return True
