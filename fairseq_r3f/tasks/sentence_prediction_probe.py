"""Task ``sentence_prediction_probe``: linear probing of a frozen encoder (paper, Sec. 4).

    fairseq-train DATA --user-dir fairseq_r3f --task sentence_prediction_probe \\
        --probe-checkpoint FINE_TUNED.pt --arch roberta_large --num-classes 2 \\
        --criterion sentence_prediction ...

``sentence_prediction`` with one difference in the model it builds: the encoder comes
from ``--probe-checkpoint`` (any RoBERTa checkpoint fairseq or this plugin wrote:
pre-trained, fine-tuned with std/R3F, or R4F with its spectrally normalised head),
that checkpoint's classification heads are discarded, the encoder is frozen (no
gradients, eval mode, so no dropout) and the only trained parameters are those of a
new linear layer on ``<s>`` (``probing.LinearProbeHead``). Not ``--restore-file``:
that would load the source head too, and resets nothing about which parameters train.

The probe's own checkpoints hold the whole model, so resuming and reloading
(``load_model_ensemble``, ``from_pretrained``) do not read ``--probe-checkpoint`` again.
``--finetune-from-model`` is refused: fairseq would load it over the probed encoder.
"""

import logging
import os
from dataclasses import dataclass, field

from fairseq.tasks import register_task
from fairseq.tasks.sentence_prediction import SentencePredictionConfig, SentencePredictionTask

from .linear_probe import LinearProbeHead, check_roberta, freeze_except, load_encoder

logger = logging.getLogger(__name__)


@dataclass
class SentencePredictionProbeConfig(SentencePredictionConfig):
    probe_checkpoint: str = field(
        default="",
        metadata={
            "help": "checkpoint whose encoder is probed: loaded, frozen and kept in eval mode "
            "(dropout off); its classification heads are discarded and a new linear "
            "layer on <s> is the only thing trained"
        },
    )


@register_task("sentence_prediction_probe", dataclass=SentencePredictionProbeConfig)
class SentencePredictionProbeTask(SentencePredictionTask):
    @classmethod
    def setup_task(cls, cfg, **kwargs):
        if not kwargs.get("from_checkpoint", False):
            if not cfg.probe_checkpoint:
                raise ValueError(
                    "--task sentence_prediction_probe needs --probe-checkpoint PATH "
                    "(the checkpoint whose encoder is probed)"
                )
            if not os.path.isfile(cfg.probe_checkpoint):
                raise FileNotFoundError(f"--probe-checkpoint {cfg.probe_checkpoint}: no such file")
        return super().setup_task(cfg, **kwargs)

    def check_checkpoint_config(self, cfg) -> None:
        """Called with the checkpoint flags before fairseq-train loads its start checkpoint
        (``fairseq_r3f.resume``)."""
        if cfg.finetune_from_model:
            raise ValueError(
                f"--task sentence_prediction_probe probes the encoder of --probe-checkpoint "
                f"{self.cfg.probe_checkpoint}, but --finetune-from-model {cfg.finetune_from_model} would be "
                "loaded over it (fairseq loads it after the task built the model), so another encoder than "
                "the one named would be probed. Drop --finetune-from-model (checkpoint.finetune_from_model=null "
                "in YAML) and name the checkpoint to probe with --probe-checkpoint"
            )

    def build_model(self, cfg, from_checkpoint=False):
        if getattr(cfg, "spectral_norm_classification_head", False):
            raise ValueError(
                "sentence_prediction_probe trains a plain linear probe: drop "
                "--spectral-norm-classification-head (an R4F checkpoint is probed without "
                "it; its head is discarded)"
            )
        model = super().build_model(cfg, from_checkpoint)
        check_roberta(model)
        head = LinearProbeHead(model.args.encoder_embed_dim, self.cfg.num_classes)
        model.classification_heads[self.cfg.classification_head_name] = head
        if not from_checkpoint:
            load_encoder(model, self.cfg.probe_checkpoint, cfg)
        freeze_except(model, head)
        trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
        logger.info("probe: encoder frozen in eval mode; training %d parameters (linear layer on <s>)", trained)
        return model
