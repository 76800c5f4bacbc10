"""Print the fairseq-train model flags that rebuild the encoder stored in a checkpoint.

    python -m r3f_experiments.checkpoint_model_flags path/to/model.pt
    -> --arch roberta_large --encoder-layers 24 --encoder-embed-dim 1024 ...

``--restore-file`` loads weights into the model that the command line describes, so a
script fine-tuning a user's checkpoint must describe that model: the architecture name
alone is not enough for a checkpoint with non-default sizes.
"""

import argparse
import os
import sys
from typing import Optional

ENCODER_FIELDS = (
    "encoder_layers",
    "encoder_embed_dim",
    "encoder_ffn_embed_dim",
    "encoder_attention_heads",
    "max_positions",
    "activation_fn",
)


def load_state(path: str) -> dict:
    import torch

    from fairseq_r3f.checkpoint_safety import allow_fairseq_checkpoints, unreadable_checkpoint_error

    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    allow_fairseq_checkpoints()
    try:
        return torch.load(path, map_location="cpu")
    except Exception as e:  # noqa: BLE001  (re-raised, clearer where torch could not read the file)
        raise unreadable_checkpoint_error(path, e) from e


def _getter(config):
    return (lambda k: config.get(k)) if isinstance(config, dict) else (lambda k: getattr(config, k, None))


def checkpoint_model_flags(path: str, state: Optional[dict] = None) -> list:
    state = load_state(path) if state is None else state
    config = state.get("args") or (state.get("cfg") or {}).get("model")
    if config is None:
        raise ValueError(f"{path}: no model configuration (neither args nor cfg.model)")
    get = _getter(config)
    arch = get("arch") or get("_name")
    if not arch:
        raise ValueError(f"{path}: no architecture recorded; pass the model flags yourself")
    flags = ["--arch", str(arch)]
    for field in ENCODER_FIELDS:
        if get(field) is not None:
            flags += ["--" + field.replace("_", "-"), str(get(field))]
    return flags


def converted_from_bert(path: str, state: Optional[dict] = None) -> bool:
    """True when ``path`` holds an encoder with BERT's pair layout (no --separator-token): its
    conversion.json (written by ``r3f_experiments.convert_hf`` beside it) says it came from a
    Hugging Face BERT, or, for a checkpoint fine-tuned here (a later stage of a chain, a probed
    checkpoint), the sentence-prediction task it was trained with had no separator token."""
    import json

    conversion = os.path.join(os.path.dirname(os.path.abspath(path)), "conversion.json")
    if os.path.isfile(conversion):
        with open(conversion, encoding="utf-8") as f:
            return json.load(f).get("source_model_type") == "bert"
    state = load_state(path) if state is None else state
    task = (state.get("cfg") or {}).get("task") or state.get("args")
    if task is None:
        return False
    get = _getter(task)
    name = str(get("_name") or get("task") or "")
    return name.startswith("sentence_prediction") and get("separator_token") is None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m r3f_experiments.checkpoint_model_flags",
        description="Print the fairseq-train model flags that rebuild the encoder stored in a checkpoint.",
    )
    parser.add_argument("checkpoint", help="a fairseq checkpoint (model.pt)")
    args = parser.parse_args(argv)
    try:
        print(" ".join(checkpoint_model_flags(args.checkpoint)))
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
