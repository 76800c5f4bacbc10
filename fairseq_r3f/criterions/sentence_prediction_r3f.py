"""``sentence_prediction_r3f``: fine-tuning with R3F (and R4F) for classification.

Loss per batch (paper, Eq. 3, summed over sentences; fairseq divides by ``sample_size``,
the number of sentences, so both terms are per-sentence means):

    L = sum_i CE(f(x_i), y_i) + lambda * sum_i KL_S(f(x_i) || f(x_i + z_i))

with z drawn on the encoder's token embeddings (``noise.py``), KL_S the symmetric KL
in fp32 (``divergence.py``). Gradient semantics follow the authors' reference: both
passes run in training mode (independent dropout masks) and the KL back-propagates
through both, into every parameter except the token embedding table, which the noised
pass reaches only through detached embeddings: x.detach() + z, as the reference writes
it. (On RoBERTa in fairseq 0.12 the reference's noised embeddings are dropped and
recomputed with gradient, so there its noised pass does train the table, noise-free.)
R4F is the same loss with ``--spectral-norm-classification-head``,
which this plugin turns into a 1-Lipschitz head (``lipschitz_head.py``).
"""

import contextlib
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass
from fairseq.logging import metrics

from ..classification_metrics import (
    confusion_counts,
    confusion_matrix,
    f1_score,
    matthews_corrcoef,
)
from ..divergence import symmetric_kl
from ..perturb import RngState, perturbed_token_embeddings
from .r3f_common import R3FNoiseConfig, R3FNoiseMixin

F1_KEYS = ("_f1_tp", "_f1_fp", "_f1_fn")


@dataclass
class ClassificationHeadConfig(FairseqDataclass):
    """Head and reporting options shared by this plugin's classification criterions."""

    classification_head_name: str = field(
        default="sentence_classification_head",
        metadata={"help": "name of the classification head to use"},
    )
    # The sentence_prediction task reads this flag from the criterion (II interpolation).
    regression_target: bool = field(
        default=False,
        metadata={"help": "regression task (STS-B): refused, the KL needs class distributions"},
    )
    report_mcc: bool = field(
        default=False,
        metadata={"help": "log Matthews correlation (x100), e.g. for CoLA"},
    )
    report_acc_and_f1: bool = field(
        default=False,
        metadata={"help": "log F1 of label '1' and (accuracy + F1) / 2 (x100), e.g. for MRPC, QQP"},
    )


@dataclass
class SentencePredictionR3FConfig(R3FNoiseConfig, ClassificationHeadConfig):
    r3f_one_sided: bool = field(
        default=False,
        metadata={
            "help": "noised pass under torch.no_grad: the KL's gradient flows through the clean "
            "pass only (2 forward + 1 backward, the cost the paper's Table 1 counts)"
        },
    )
    r3f_stack_passes: bool = field(
        default=False,
        metadata={
            "help": "run the clean and the noised copy as one batch of 2n sentences (same "
            "gradients as two passes; faster where one batch of n does not fill the device)"
        },
    )
    r3f_same_dropout: bool = field(
        default=False,
        metadata={
            "help": "ablation: replay the RNG so both passes use the same dropout masks and "
            "the KL measures the effect of the noise alone"
        },
    )


@register_criterion("sentence_prediction_r3f", dataclass=SentencePredictionR3FConfig)
class SentencePredictionR3FCriterion(R3FNoiseMixin, FairseqCriterion):
    def __init__(self, cfg: SentencePredictionR3FConfig, task):
        super().__init__(task)
        self._init_r3f(cfg)
        if cfg.r3f_stack_passes and (cfg.r3f_one_sided or cfg.r3f_same_dropout):
            raise ValueError(
                "--r3f-stack-passes cannot be combined with --r3f-one-sided (the stacked batch "
                "has one graph) or --r3f-same-dropout (rows of one batch get different masks)"
            )
        if cfg.r3f_same_dropout and str(cfg.noise_type) == "none":
            raise ValueError(
                "--r3f-same-dropout with --noise-type none makes both passes identical: the KL "
                "is 0 by construction"
            )
        if cfg.regression_target:
            raise ValueError(
                "--criterion sentence_prediction_r3f does not support --regression-target: "
                "R3F's symmetric KL is defined between class distributions, and the paper "
                "excludes STS-B. Use --criterion sentence_prediction for regression tasks."
            )
        self.one_sided = cfg.r3f_one_sided
        self.stack_passes = cfg.r3f_stack_passes
        self.same_dropout = cfg.r3f_same_dropout
        self._init_classification(cfg, task)

    def _init_classification(self, cfg, task) -> None:
        """Head and reporting options, shared with criterions built on this one (SMART)."""
        self.classification_head_name = cfg.classification_head_name
        self.report_mcc = cfg.report_mcc
        self.report_acc_and_f1 = cfg.report_acc_and_f1
        self.positive_class = None
        if cfg.report_acc_and_f1:
            self.positive_class = self._positive_class(task)
        self._checked_model = None

    @staticmethod
    def _positive_class(task) -> int:
        labels = task.label_dictionary
        names = labels.symbols[labels.nspecial : labels.nspecial + task.cfg.num_classes]
        if len(names) != 2 or "1" not in names:
            raise ValueError(
                "--report-acc-and-f1 needs a binary task (--num-classes 2) whose labels "
                f"include '1' (the positive class, as in GLUE MRPC/QQP); labels: {names}"
            )
        return names.index("1")

    def _check_model(self, model):
        """Validate the model once; fairseq builds the criterion before it sees a model."""
        if self._checked_model is model:
            return
        heads = getattr(model, "classification_heads", None)
        if heads is None or self.classification_head_name not in heads:
            raise ValueError(
                f"--classification-head-name {self.classification_head_name!r}: the model "
                f"has no such classification head (it has: {list(heads or [])})"
            )
        self._encoder = self._find_encoder(model)
        self._checked_model = model

    def _classify(self, model, sample):
        logits, _ = model(
            **sample["net_input"],
            features_only=True,
            classification_head_name=self.classification_head_name,
        )
        return logits

    def _perturbed_passes(self, model, sample):
        """Clean logits, noised logits and the carried fraction of the noise (or None).

        Noise is drawn first, so that with --r3f-same-dropout the replayed RNG state covers
        the dropout draws only.
        """
        src_tokens = sample["net_input"]["src_tokens"]
        noised = self._draw_noise(src_tokens)
        probe = self._probe(noised)

        with probe or contextlib.nullcontext():
            if self.stack_passes:
                n = src_tokens.size(0)
                stacked = {k: torch.cat([v, v]) if torch.is_tensor(v) else v
                           for k, v in sample["net_input"].items()}
                with perturbed_token_embeddings(
                    self._encoder, lambda e: torch.cat([e[:n], noised(e[n:])])
                ):
                    both = self._classify(model, {"net_input": stacked})
                logits, noised_logits = both[:n], both[n:]
            else:
                rng = RngState.capture(src_tokens.device) if self.same_dropout else None
                logits = self._classify(model, sample)
                if rng is not None:
                    rng.restore()
                grad = torch.no_grad() if self.one_sided else contextlib.nullcontext()
                with grad, perturbed_token_embeddings(self._encoder, noised):
                    noised_logits = self._classify(model, sample)
        return logits, noised_logits, self._carried(probe, noised, src_tokens)

    def forward(self, model, sample, reduce=True):
        """Returns (loss, sample_size, logging_output) as fairseq criterions do."""
        self._check_model(model)
        noised_logits = carried = None
        # lambda = 0 is standard fine-tuning: no noised pass whose result would be unused.
        if model.training and self.r3f_lambda > 0:
            logits, noised_logits, carried = self._perturbed_passes(model, sample)
        else:
            logits = self._classify(model, sample)
        targets = model.get_targets(sample, [logits]).view(-1)
        sample_size = targets.numel()

        task_loss = F.nll_loss(
            F.log_softmax(logits, dim=-1, dtype=torch.float32), targets, reduction="sum"
        )
        loss = task_loss
        preds = logits.detach().argmax(dim=-1)
        logging_output = {
            "loss": task_loss.detach(),
            "ntokens": sample["ntokens"],
            "nsentences": sample_size,
            "sample_size": sample_size,
            "ncorrect": (preds == targets).sum(),
        }
        if noised_logits is not None:
            symm_kl = symmetric_kl(logits, noised_logits).sum()
            loss = loss + self.r3f_lambda * symm_kl
            logging_output["symm_kl"] = symm_kl.detach()
        if carried is not None:
            logging_output["noise_carried"] = carried.detach() * sample_size

        if self.report_mcc:
            logging_output.update(confusion_counts(targets, preds, logits.size(-1)))
        if self.report_acc_and_f1:
            is_pred = preds == self.positive_class
            is_true = targets == self.positive_class
            logging_output["_f1_tp"] = (is_pred & is_true).sum()
            logging_output["_f1_fp"] = (is_pred & ~is_true).sum()
            logging_output["_f1_fn"] = (~is_pred & is_true).sum()
        return loss, sample_size, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        def total(key):
            return sum(log.get(key, 0) for log in logging_outputs)

        loss_sum = total("loss")
        ntokens = total("ntokens")
        nsentences = total("nsentences")
        sample_size = total("sample_size")
        # Same definitions as fairseq's sentence_prediction, so the logs compare 1:1.
        metrics.log_scalar("loss", loss_sum / sample_size / math.log(2), sample_size, round=3)
        if sample_size != ntokens:
            metrics.log_scalar("nll_loss", loss_sum / ntokens / math.log(2), ntokens, round=3)
        if any("ncorrect" in log for log in logging_outputs):
            metrics.log_scalar("accuracy", 100.0 * total("ncorrect") / nsentences, nsentences, round=1)
        if any("symm_kl" in log for log in logging_outputs):
            metrics.log_scalar("symm_kl", total("symm_kl") / nsentences, nsentences, round=6)
        if any("noise_carried" in log for log in logging_outputs):
            metrics.log_scalar("noise_carried", total("noise_carried") / nsentences, nsentences, round=3)

        # Counts are summed over the whole log interval / validation set, then turned
        # into MCC and F1 once (averaging per-batch MCCs would be wrong).
        keys = sorted({k for log in logging_outputs for k in log if k.startswith("_confusion_")})
        for key in keys:
            metrics.log_scalar_sum(key, total(key))
        if keys:
            num_classes = math.isqrt(len(keys))
            metrics.log_derived(
                "mcc",
                lambda meters: round(
                    100 * matthews_corrcoef(
                        confusion_matrix({k: meters[k].sum for k in keys}, num_classes)
                    ),
                    2,
                ),
            )
        if any(F1_KEYS[0] in log for log in logging_outputs):
            for key in F1_KEYS:
                metrics.log_scalar_sum(key, total(key))
            metrics.log_scalar_sum("_ncorrect_f1", total("ncorrect"))
            metrics.log_scalar_sum("_nsentences_f1", nsentences)

            def f1(meters):
                return f1_score(*(float(meters[k].sum) for k in F1_KEYS))

            metrics.log_derived("f1", lambda meters: round(100 * f1(meters), 2))
            metrics.log_derived(
                "acc_and_f1",
                lambda meters: round(
                    50 * (float(meters["_ncorrect_f1"].sum) / float(meters["_nsentences_f1"].sum) + f1(meters)), 2
                ),
            )

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        # Every entry is a count or a sum (no per-example lists), so workers' outputs add.
        return True
