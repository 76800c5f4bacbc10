"""What happens to classification heads when a checkpoint loads (``--finetune-from-model``,
``--restore-file``, resuming, ``load_model_ensemble``, the hub), before fairseq's own
``upgrade_state_dict_named``:

- a converted BERT's pretrained pooler (stored by ``r3f_experiments.convert_hf`` under
  ``pretrained_pooler.dense.*``) becomes the starting ``dense`` of every new head of its shape,
  so the model starts fine-tuning as its source does in Hugging Face (pooler + tanh);
- heads convert between plain and R4F (``lipschitz_head.convert_checkpoint_heads``); the model
  records what was converted, for ``resume`` to refuse an optimizer state saved for the other head.
"""

import logging

from torch import nn

from .lipschitz_head import convert_checkpoint_heads
from .patching import wrap_once
from .resume import CONVERTED_HEADS

logger = logging.getLogger(__name__)

POOLER_PREFIX = "pretrained_pooler.dense."


def start_heads_from_pooler(model: nn.Module, state_dict: dict, prefix: str = "") -> list:
    """Take the pretrained pooler out of ``state_dict`` (it is no module of fairseq's model) and,
    for every head of ``model`` that the checkpoint lacks and whose ``dense`` has the pooler's
    shape, put the head's own initial weights there with ``dense`` set to the pooler. Heads the
    checkpoint holds load as they are. Returns the names of the heads started from the pooler."""
    weight = state_dict.pop(f"{prefix}{POOLER_PREFIX}weight", None)
    bias = state_dict.pop(f"{prefix}{POOLER_PREFIX}bias", None)
    if weight is None or bias is None:
        return []
    started = []
    for name, head in (getattr(model, "classification_heads", None) or {}).items():
        base = f"{prefix}classification_heads.{name}."
        dense = getattr(head, "dense", None)
        if any(k.startswith(base) for k in state_dict) or not isinstance(dense, nn.Linear):
            continue
        if tuple(dense.weight.shape) != tuple(weight.shape):
            logger.info(
                "classification head %r starts fresh: its dense is %s, the pretrained pooler %s",
                name,
                tuple(dense.weight.shape),
                tuple(weight.shape),
            )
            continue
        own = {k: v for k, v in head.state_dict().items() if not k.startswith("dense.")}
        state_dict.update({base + k: v for k, v in own.items()})
        state_dict[base + "dense.weight"] = weight.to(dense.weight.dtype)
        state_dict[base + "dense.bias"] = bias.to(dense.bias.dtype)
        started.append(name)
        logger.info("classification head %r: dense starts from the checkpoint's pretrained pooler", name)
    return started


def _wrap_upgrade_state_dict_named(model_cls) -> None:
    def wrapper(original):
        def upgrade_state_dict_named(self, state_dict, name):
            prefix = name + "." if name != "" else ""
            start_heads_from_pooler(self, state_dict, prefix)
            converted = convert_checkpoint_heads(self, state_dict, prefix)
            if converted:  # read by resume: an optimizer state saved for the other head does not fit
                self.__dict__[CONVERTED_HEADS] = converted
            for what in converted:
                logger.warning(
                    "R4F: checkpoint head %s (--spectral-norm-classification-head is %s in this run)",
                    what,
                    "on" if getattr(self.args, "spectral_norm_classification_head", False) else "off",
                )
            return original(self, state_dict, name)

        return upgrade_state_dict_named

    wrap_once(
        model_cls,
        "upgrade_state_dict_named",
        wrapper,
        "new heads start from a converted BERT's pretrained pooler; heads convert between plain and R4F",
    )


def install() -> None:
    from fairseq.models.bart import BARTModel
    from fairseq.models.roberta import RobertaModel  # XLMRModel subclasses it

    for model_cls in (RobertaModel, BARTModel):
        _wrap_upgrade_state_dict_named(model_cls)
