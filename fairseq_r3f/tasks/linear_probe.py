"""Probing a fine-tuned encoder for representational collapse (paper, Sec. 4).

The paper measures how generalisable a fine-tuned model's representations still are by
freezing them and training only a linear layer for another task on top ("probing"):
the encoder gets no gradients and runs with dropout off, and the source task's
classification head is not used. These functions do that to a fairseq RoBERTa model;
``probe_task.py`` wires them into the task ``sentence_prediction_probe``.

Probe head. A single linear layer on the final representation of ``<s>`` (the token
RoBERTa's own heads read), without dropout or activation: logits = W h_<s> + b.
"""

import logging
import types

import torch
from torch import nn

logger = logging.getLogger(__name__)

HEADS_PREFIX = "classification_heads."


class LinearProbeHead(nn.Module):
    """logits = out_proj(features[:, 0]): one trainable linear layer on ``<s>``.

    ``dense`` is a frozen identity that forward never uses. It is there because
    fairseq's ``RobertaModel.upgrade_state_dict_named`` (run whenever a checkpoint is
    loaded: resuming, ``load_model_ensemble``, ``from_pretrained``) reads
    ``<head>.dense.weight`` and ``<head>.dense.out_features`` to size every head, and
    fails with a KeyError on a head without one.
    """

    def __init__(self, input_dim: int, num_classes: int):
        super().__init__()
        self.dense = nn.Linear(input_dim, input_dim)
        with torch.no_grad():
            self.dense.weight.copy_(torch.eye(input_dim))
            self.dense.bias.zero_()
        self.dense.requires_grad_(False)
        self.out_proj = nn.Linear(input_dim, num_classes)

    def forward(self, features, **kwargs):
        return self.out_proj(features[:, 0, :])


def _stay_in_eval(self, mode: bool = True):
    return nn.Module.train(self, False)


def freeze_except(model: nn.Module, trainable: nn.Module) -> None:
    """No gradients for any parameter of ``model`` outside ``trainable``, and every child
    of ``model`` that does not hold ``trainable`` (for RoBERTa: the encoder) held in eval
    mode (dropout off) for good.

    fairseq's trainer calls ``model.train()`` before every step; overriding ``train`` on
    the frozen children (instance attribute, ``nn.Module.train`` recurses through
    ``child.train``) keeps them in eval mode whoever calls it. fairseq hands the
    optimizer only parameters with ``requires_grad``.
    """
    keep = {id(p) for p in trainable.parameters() if p.requires_grad}
    if not keep:
        raise ValueError("the probe has no trainable parameter")
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    inside = {id(m) for m in trainable.modules()}
    for child in model.children():
        if any(id(m) in inside for m in child.modules()):
            continue  # the container of the probe (classification_heads)
        child.train = types.MethodType(_stay_in_eval, child)
        child.eval()


def _describe_model(state: dict) -> str:
    cfg = state.get("cfg")
    model_cfg = cfg.get("model") if cfg is not None else None
    if model_cfg is None and state.get("args") is not None:
        model_cfg = state["args"]
    if model_cfg is None:
        return "an unknown architecture"
    get = model_cfg.get if hasattr(model_cfg, "get") else lambda k: getattr(model_cfg, k, None)
    keys = (
        "arch",
        "_name",
        "encoder_layers",
        "encoder_embed_dim",
        "encoder_ffn_embed_dim",
        "encoder_attention_heads",
        "max_positions",
    )
    return ", ".join(f"{k}={get(k)}" for k in keys if get(k) is not None)


def without_classification_heads(model_state: dict) -> dict:
    """The model state dict without any ``classification_heads.*`` entry (plain fairseq
    heads, fairseq's own spectral norm, this plugin's R4F parametrisation alike)."""
    return {k: v for k, v in model_state.items() if not k.startswith(HEADS_PREFIX)}


def load_encoder(model: nn.Module, checkpoint_path: str, model_cfg=None) -> None:
    """Load the encoder of any fairseq RoBERTa checkpoint into ``model``; the checkpoint's
    classification heads are discarded, ``model``'s own heads are kept as they are.

    Goes through fairseq's ``load_state_dict`` (so its checkpoint upgrades, e.g. the
    ``decoder.`` -> ``encoder.`` rename of the published RoBERTa files, apply) with
    ``strict=True``: an encoder that does not fit fails here, naming both sides.
    """
    from fairseq import checkpoint_utils

    state = checkpoint_utils.load_checkpoint_to_cpu(checkpoint_path)
    weights = without_classification_heads(state["model"])
    dropped = len(state["model"]) - len(weights)
    for key, value in model.state_dict().items():
        if key.startswith(HEADS_PREFIX):
            weights[key] = value
    try:
        model.load_state_dict(weights, strict=True, model_cfg=model_cfg)
    except RuntimeError as e:
        raise ValueError(
            f"--probe-checkpoint {checkpoint_path}: its encoder does not fit the model built from "
            f"this run's flags (the checkpoint holds {_describe_model(state)}); pass the same "
            f"--arch and encoder sizes it was trained with.\n{e}"
        ) from e
    logger.info("probe: loaded the encoder of %s (%d classification-head tensors discarded)", checkpoint_path, dropped)


def strip_classification_heads(src: str, dst: str) -> str:
    """Write ``dst``: checkpoint ``src`` without classification heads nor optimizer state.

    The start of a fine-tuning stage that continues from another task's checkpoint
    (``--restore-file dst --reset-optimizer ...``): the new task gets a fresh head
    whatever its number of classes, and an R4F head's parametrised weights never meet
    a run built without ``--spectral-norm-classification-head`` (or the reverse).
    """
    from fairseq import checkpoint_utils
    from fairseq.file_io import PathManager

    state = checkpoint_utils.load_checkpoint_to_cpu(src)
    state["model"] = without_classification_heads(state["model"])
    state["last_optimizer_state"] = None
    # a fresh start: no training time, metrics or data position of the source run carried over
    state["extra_state"] = {"train_iterator": {"epoch": 1, "iterations_in_epoch": 0}}
    with PathManager.open(dst, "wb") as f:
        torch.save(state, f)
    return dst


def check_roberta(model: nn.Module) -> None:
    from fairseq.models.roberta import RobertaModel

    if not isinstance(model, RobertaModel):
        raise ValueError(
            f"sentence_prediction_probe probes the <s> representation of a RoBERTa-family encoder "
            f"(roberta_*, xlmr_*); got {type(model).__name__}"
        )
