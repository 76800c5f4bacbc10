"""The hub (``RobertaModel.from_pretrained``, ``RobertaHubInterface``) encodes sentence pairs as the
checkpoint was trained.

fairseq's ``encode(a, b)`` always writes ``<s> A </s> </s> B </s>``, RoBERTa's layout
(``--separator-token 2``). A BERT converted by ``r3f_experiments.convert_hf`` is fine-tuned on
``<s> A </s> B </s>`` (BERT's ``[CLS] A [SEP] B [SEP]``, no ``--separator-token``), so a prediction
from Python on fairseq's layout is made on input the model never saw. The hub's pair layout is
read from, in this order:

1. the checkpoint's saved task flags, when its task has ``--separator-token`` (``sentence_prediction``
   and the plugin's tasks): no extra separator when it was left out;
2. the conversion record ``conversion.json`` in the folder the hub reads ``dict.txt`` from (the
   converted folder itself, for ``from_pretrained(converted_dir)``): ``source_model_type`` ``bert``
   takes BERT's layout, ``roberta`` RoBERTa's;
3. the checkpoint's BPE: ``wordpiece``, which only conversions of BERT record, takes BERT's layout;
4. otherwise fairseq's layout.

``encode(a, b, no_separator=...)`` still chooses explicitly; ``hub.pair_separator`` says what
``encode`` does by default.
"""

import json
import logging
import os

from .patching import wrap_once

logger = logging.getLogger(__name__)

CONVERSION_RECORD = "conversion.json"


def _get(section, key, default=None):
    if section is None:
        return default
    if hasattr(section, "get"):  # a DictConfig or a dict
        return section.get(key, default)
    return getattr(section, key, default)


def _has(section, key) -> bool:
    if section is None:
        return False
    if hasattr(section, "keys"):
        return key in section.keys()
    return hasattr(section, key)


def trained_pair_separator(cfg):
    """(whether pairs were trained with the extra ``</s>`` between the sentences, why) for the
    checkpoint configuration ``cfg`` that the hub holds."""
    task = _get(cfg, "task")
    if _has(task, "separator_token"):
        token = _get(task, "separator_token")
        if token is None:
            return False, "the checkpoint was trained without --separator-token"
        return True, f"the checkpoint was trained with --separator-token {token}"
    data = _get(task, "data")
    record = os.path.join(str(data), CONVERSION_RECORD) if data else None
    if record and os.path.isfile(record):
        with open(record, encoding="utf-8") as f:
            source = json.load(f).get("source_model_type")
        if source in ("bert", "roberta"):
            return source == "roberta", f"{record} records a conversion of a {source} checkpoint"
    if _get(_get(cfg, "bpe"), "_name") == "wordpiece":
        return False, "the checkpoint records --bpe wordpiece (a BERT converted by r3f_experiments.convert_hf)"
    return True, "fairseq's default"


def _wrap_init(hub_cls) -> None:
    def wrapper(original):
        def __init__(self, cfg, task, model, *args, **kwargs):
            original(self, cfg, task, model, *args, **kwargs)
            self.pair_separator, why = trained_pair_separator(cfg)
            if not self.pair_separator:
                logger.info("hub: sentence pairs encode as <s> A </s> B </s>, without an extra separator (%s)", why)

        return __init__

    wrap_once(hub_cls, "__init__", wrapper, "the hub reads the pair layout the checkpoint was trained on")


def _wrap_encode(hub_cls) -> None:
    def wrapper(original):
        def encode(self, sentence, *addl_sentences, no_separator=None):
            if no_separator is None:
                no_separator = not getattr(self, "pair_separator", True)
            return original(self, sentence, *addl_sentences, no_separator=no_separator)

        return encode

    wrap_once(
        hub_cls,
        "encode",
        wrapper,
        "sentence pairs encode as the checkpoint was trained (no extra </s> for a converted BERT)",
    )


def install() -> None:
    from fairseq.models.roberta.hub_interface import RobertaHubInterface

    _wrap_init(RobertaHubInterface)
    _wrap_encode(RobertaHubInterface)
