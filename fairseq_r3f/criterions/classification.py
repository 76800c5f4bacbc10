"""The base of this plugin's classification criterions: R3F/R4F (``sentence_prediction_r3f``)
and SMART (``sentence_prediction_smart``).

Each is standard fine-tuning plus a consistency term between the clean pass and a second,
perturbed pass (paper, Eq. 3; SMART, Eq. 2):

    L = sum_i CE(f(x_i), y_i) + lambda * sum_i KL_S(f(x_i) || f(perturbed x_i))

The base holds what the two share: the head options and their check, one classification pass,
the task loss, the symmetric KL and the logged metrics (accuracy, and MCC or F1 from summable
confusion counts). A subclass says how its second pass is made (``perturbed_passes``) and how
much its KL weighs (``kl_weight``); lambda = 0 is standard fine-tuning, with no second pass.
"""

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from fairseq.criterions import FairseqCriterion
from fairseq.dataclass import FairseqDataclass
from fairseq.logging import metrics

from ..method.divergence import symmetric_kl
from ..noise_diagnostics import reduce_noise_diagnostics
from ..perturb import find_token_encoder
from .classification_metrics import confusion_counts, confusion_matrix, f1_score, matthews_corrcoef

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


def token_encoder_of(model):
    """The encoder whose token embeddings a criterion perturbs, or a ValueError naming --arch."""
    try:
        return find_token_encoder(model)
    except TypeError as e:
        raise ValueError(f"--arch: {e}") from e


def positive_class(task) -> int:
    """Index of label '1' among a binary task's labels: the positive class of F1 (MRPC, QQP)."""
    labels = task.label_dictionary
    names = labels.symbols[labels.nspecial : labels.nspecial + task.cfg.num_classes]
    if len(names) != 2 or "1" not in names:
        raise ValueError(
            "--report-acc-and-f1 needs a binary task (--num-classes 2) whose labels "
            f"include '1' (the positive class, as in GLUE MRPC/QQP); labels: {names}"
        )
    return names.index("1")


class ConsistencyClassificationCriterion(FairseqCriterion):
    """Cross-entropy plus ``kl_weight`` x the symmetric KL between a clean and a perturbed pass.

    Subclasses set ``kl_weight`` and implement ``perturbed_passes``.
    """

    def __init__(self, cfg: ClassificationHeadConfig, task, kl_weight: float):
        super().__init__(task)
        if cfg.regression_target:
            raise ValueError(
                f"--criterion {cfg._name or type(self).__name__} does not support --regression-target: the "
                "symmetric KL is defined between class distributions, and the paper excludes STS-B. Use "
                "--criterion sentence_prediction for regression tasks."
            )
        self.kl_weight = kl_weight
        self.classification_head_name = cfg.classification_head_name
        self.report_mcc = cfg.report_mcc
        self.report_acc_and_f1 = cfg.report_acc_and_f1
        self.positive_class = positive_class(task) if cfg.report_acc_and_f1 else None
        self._encoder = None
        self._checked_model = None

    def perturbed_passes(self, model, sample):
        """(clean logits, perturbed logits, extra logging entries) of one training step."""
        raise NotImplementedError

    def check_model(self, model) -> None:
        """Validate the model once; fairseq builds the criterion before it sees a model."""
        if self._checked_model is model:
            return
        heads = getattr(model, "classification_heads", None)
        if heads is None or self.classification_head_name not in heads:
            raise ValueError(
                f"--classification-head-name {self.classification_head_name!r}: the model "
                f"has no such classification head (it has: {list(heads or [])})"
            )
        self._encoder = token_encoder_of(model)
        self._checked_model = model

    def classify(self, model, sample):
        logits, _ = model(
            **sample["net_input"],
            features_only=True,
            classification_head_name=self.classification_head_name,
        )
        return logits

    def forward(self, model, sample, reduce=True):
        """Returns (loss, sample_size, logging_output) as fairseq criterions do."""
        self.check_model(model)
        perturbed_logits, extra_logs = None, {}
        # lambda = 0 is standard fine-tuning: no second pass whose result would be unused.
        if model.training and self.kl_weight > 0:
            logits, perturbed_logits, extra_logs = self.perturbed_passes(model, sample)
        else:
            logits = self.classify(model, sample)
        targets = model.get_targets(sample, [logits]).view(-1)
        sample_size = targets.numel()

        task_loss = F.nll_loss(F.log_softmax(logits, dim=-1, dtype=torch.float32), targets, reduction="sum")
        loss = task_loss
        preds = logits.detach().argmax(dim=-1)
        logging_output = {
            "loss": task_loss.detach(),
            "ntokens": sample["ntokens"],
            "nsentences": sample_size,
            "sample_size": sample_size,
            "ncorrect": (preds == targets).sum(),
            **extra_logs,
        }
        if perturbed_logits is not None:
            symm_kl = symmetric_kl(logits, perturbed_logits).sum()
            loss = loss + self.kl_weight * symm_kl
            logging_output["symm_kl"] = symm_kl.detach()
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
        reduce_noise_diagnostics(logging_outputs)  # R3F's, at its diagnosed steps (none for SMART)

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
                    100 * matthews_corrcoef(confusion_matrix({k: meters[k].sum for k in keys}, num_classes)),
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
