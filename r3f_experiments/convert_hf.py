"""Convert a Hugging Face BERT- or RoBERTa-family checkpoint into a fairseq RoBERTa checkpoint.

    python -m r3f_experiments.convert_hf SRC_DIR OUT_DIR

OUT_DIR receives ``model.pt``, ``dict.txt``, the tokenizer files and ``conversion.json`` (what was
mapped and what left out). How each tensor maps, and how close the result is to the source:
``docs/huggingface.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import TYPE_CHECKING, Dict, List, Tuple

if TYPE_CHECKING:  # annotations only
    import torch


FAIRSEQ_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")  # rows 0-3 of every fairseq Dictionary
MASK = "<mask>"  # appended by fairseq's masked_lm and sentence_prediction tasks
POSITION_OFFSET = 2  # fairseq's learned positions start at padding_idx (1) + 1
# Hugging Face hidden_act -> fairseq --activation-fn (same function, same formula)
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_accurate", "gelu_pytorch_tanh": "gelu_accurate", "relu": "relu"}
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
DEFAULT_BERT_SPECIALS = {
    "cls_token": "[CLS]",
    "pad_token": "[PAD]",
    "sep_token": "[SEP]",
    "unk_token": "[UNK]",
    "mask_token": "[MASK]",
}


class UnsupportedCheckpoint(ValueError):
    """The source checkpoint cannot be expressed as a fairseq RoBERTa model."""


def _json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_config(src_dir: str) -> dict:
    """config.json, checked for the features fairseq's RoBERTa encoder can represent."""
    path = os.path.join(src_dir, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file (SRC_DIR must be a Hugging Face model folder)")
    config = _json(path)
    check_supported(config, path)
    return config


def check_supported(config: dict, where: str = "config.json") -> None:
    """Raise UnsupportedCheckpoint naming the first setting fairseq's RoBERTa cannot reproduce."""
    model_type = config.get("model_type")
    if model_type not in ("bert", "roberta"):
        raise UnsupportedCheckpoint(
            f"{where}: model_type {model_type!r} is not supported; only BERT- and "
            "RoBERTa-family checkpoints (model_type 'bert' or 'roberta') are converted"
        )
    position_type = config.get("position_embedding_type", "absolute")
    if position_type != "absolute":
        raise UnsupportedCheckpoint(
            f"{where}: position_embedding_type {position_type!r} is not supported: fairseq's "
            "RoBERTa has learned absolute positions only ('absolute')"
        )
    act = config.get("hidden_act", "gelu")
    if act not in ACTIVATIONS:
        raise UnsupportedCheckpoint(
            f"{where}: hidden_act {act!r} is not supported (fairseq activations for: {', '.join(sorted(ACTIVATIONS))})"
        )
    for flag in ("is_decoder", "add_cross_attention"):
        if config.get(flag):
            raise UnsupportedCheckpoint(f"{where}: {flag} is true; only encoders are converted")
    hidden, heads = config.get("hidden_size"), config.get("num_attention_heads")
    if not isinstance(hidden, int) or not isinstance(heads, int) or hidden % heads:
        raise UnsupportedCheckpoint(f"{where}: hidden_size {hidden} is not a multiple of num_attention_heads {heads}")
    for key in ("num_hidden_layers", "intermediate_size", "max_position_embeddings", "vocab_size"):
        if not isinstance(config.get(key), int):
            raise UnsupportedCheckpoint(f"{where}: {key} missing or not an integer")


def load_weights(src_dir: str) -> Dict[str, torch.Tensor]:
    """The source's tensors by name, with a BertFor*/RobertaFor* model's ``bert.``/``roberta.`` prefix removed."""
    import torch  # here, not at the top: --help and the data checks start without it

    safetensors_path = os.path.join(src_dir, "model.safetensors")
    bin_path = os.path.join(src_dir, "pytorch_model.bin")
    if os.path.isfile(safetensors_path):
        from safetensors.torch import load_file

        weights = load_file(safetensors_path)
    elif os.path.isfile(bin_path):
        weights = torch.load(bin_path, map_location="cpu", weights_only=True)
    elif any(
        os.path.isfile(os.path.join(src_dir, n))
        for n in ("model.safetensors.index.json", "pytorch_model.bin.index.json")
    ):
        raise UnsupportedCheckpoint(f"{src_dir}: sharded checkpoints are not supported")
    else:
        raise FileNotFoundError(f"{src_dir}: neither model.safetensors nor pytorch_model.bin")
    prefixes = ("bert.", "roberta.")
    return {next((k[len(p) :] for p in prefixes if k.startswith(p)), k): v for k, v in weights.items()}


def read_vocab(src_dir: str) -> List[str]:
    path = os.path.join(src_dir, "vocab.txt")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file (the WordPiece vocabulary is needed for dict.txt)")
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def special_tokens(src_dir: str) -> Dict[str, str]:
    """BERT's special tokens by role, from special_tokens_map.json / tokenizer_config.json."""
    specials = dict(DEFAULT_BERT_SPECIALS)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):  # the latter wins
        path = os.path.join(src_dir, name)
        if os.path.isfile(path):
            for role, value in _json(path).items():
                if role in specials:
                    specials[role] = value["content"] if isinstance(value, dict) else value
    return specials


def vocabulary_order(vocab: List[str], specials: Dict[str, str]) -> Tuple[List[int], List[str]]:
    """Source row of each fairseq embedding row, and the dict.txt symbols (rows 4 .. n-2).

    fairseq rows: <s> <pad> </s> <unk> (= [CLS] [PAD] [SEP] [UNK]), then every other source token in
    source order, then <mask> (= [MASK]). A source token fairseq's dictionary cannot hold as a
    symbol (one with whitespace, one that is empty or repeated, or one spelt like a fairseq
    special) keeps its row under a placeholder name ``madeupwordN`` that no text produces."""
    index = {}
    for i, token in enumerate(vocab):
        index.setdefault(token, i)
    rows = []
    for role in ("cls_token", "pad_token", "sep_token", "unk_token", "mask_token"):
        token = specials[role]
        if token not in index:
            raise UnsupportedCheckpoint(f"vocab.txt has no {role} {token!r}")
        rows.append(index[token])
    special_rows = set(rows)
    body = [i for i in range(len(vocab)) if i not in special_rows]
    symbols, seen = [], set(FAIRSEQ_SPECIALS) | {MASK}
    for n, i in enumerate(body):
        token = vocab[i]
        if not token or any(c.isspace() for c in token) or token in seen or token.startswith("madeupword"):
            token = f"madeupword{n:05d}"
        seen.add(token)
        symbols.append(token)
    return rows[:4] + body + rows[4:], symbols


def roberta_vocabulary(src_dir: str, config: dict) -> Tuple[List[int], List[str]]:
    """(row order, dict.txt symbols) of a Hugging Face RoBERTa: its ids are already fairseq's rows
    (``<s> <pad> </s> <unk>`` first, ``<mask>`` last), and its GPT-2 byte-level BPE files become
    fairseq's ``gpt2`` BPE with ``vocab.json`` as ``encoder.json``: the encoder then writes each
    token's row number, so dict.txt lists the numbers 4 .. n-2."""
    paths = [os.path.join(src_dir, n) for n in ("vocab.json", "merges.txt")]
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such file (a RoBERTa checkpoint needs vocab.json and merges.txt)")
    vocab = _json(paths[0])
    n = config["vocab_size"]
    if len(vocab) != n or sorted(vocab.values()) != list(range(n)):
        raise UnsupportedCheckpoint(f"vocab.json has {len(vocab)} tokens, not the ids 0..{n - 1} of vocab_size {n}")
    for token, row in zip((*FAIRSEQ_SPECIALS, MASK), (0, 1, 2, 3, n - 1)):
        if vocab.get(token) != row:
            raise UnsupportedCheckpoint(f"vocab.json: {token} has id {vocab.get(token)}, fairseq needs {row}")
    return list(range(n)), [str(i) for i in range(len(FAIRSEQ_SPECIALS), n - 1)]


def convert_state_dict(
    weights: Dict[str, torch.Tensor], config: dict, row_order: List[int]
) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """fairseq RoBERTa tensors (``encoder.*`` names) from BERT tensors; also the source names left out.

    ``row_order[i]`` is the source row of fairseq vocabulary row i (``vocabulary_order``)."""
    import torch  # here, not at the top: --help and the data checks start without it

    used = set()

    def take(name: str) -> torch.Tensor:
        if name not in weights:
            raise UnsupportedCheckpoint(f"the checkpoint has no tensor {name!r}")
        used.add(name)
        return weights[name].float()

    rows = torch.tensor(row_order)
    words = take("embeddings.word_embeddings.weight")
    if words.shape[0] != len(row_order):
        raise UnsupportedCheckpoint(f"word_embeddings has {words.shape[0]} rows but vocab.txt {len(row_order)} tokens")
    positions = take("embeddings.position_embeddings.weight")
    segment0 = take("embeddings.token_type_embeddings.weight")[0]
    # nn.Embedding rows fairseq never reads (0 and the pad row 1) stay zero
    if config["model_type"] == "roberta":  # already numbered from padding_idx + 1, as fairseq's
        fairseq_positions = positions + segment0
    else:
        fairseq_positions = torch.cat([positions.new_zeros(POSITION_OFFSET, positions.shape[1]), positions + segment0])

    enc = "encoder.sentence_encoder."
    out = {
        enc + "embed_tokens.weight": words[rows],
        enc + "embed_positions.weight": fairseq_positions,
        enc + "layernorm_embedding.weight": take("embeddings.LayerNorm.weight"),
        enc + "layernorm_embedding.bias": take("embeddings.LayerNorm.bias"),
    }
    per_layer = {  # fairseq TransformerEncoderLayer <- BertLayer
        "self_attn.q_proj": "attention.self.query",
        "self_attn.k_proj": "attention.self.key",
        "self_attn.v_proj": "attention.self.value",
        "self_attn.out_proj": "attention.output.dense",
        "self_attn_layer_norm": "attention.output.LayerNorm",
        "fc1": "intermediate.dense",
        "fc2": "output.dense",
        "final_layer_norm": "output.LayerNorm",
    }
    for layer in range(config["num_hidden_layers"]):
        for ours, theirs in per_layer.items():
            for param in ("weight", "bias"):
                out[f"{enc}layers.{layer}.{ours}.{param}"] = take(f"encoder.layer.{layer}.{theirs}.{param}")
    if f"encoder.layer.{config['num_hidden_layers']}.output.dense.weight" in weights:
        raise UnsupportedCheckpoint(
            f"the checkpoint has more layers than num_hidden_layers ({config['num_hidden_layers']})"
        )
    # masked-LM head (BertForMaskedLM / BertForPreTraining, RobertaForMaskedLM)
    for head, dense, norm in (
        ("cls.predictions.", "transform.dense", "transform.LayerNorm"),
        ("lm_head.", "dense", "layer_norm"),
    ):
        if head + dense + ".weight" in weights:
            out["encoder.lm_head.dense.weight"] = take(f"{head}{dense}.weight")
            out["encoder.lm_head.dense.bias"] = take(f"{head}{dense}.bias")
            out["encoder.lm_head.layer_norm.weight"] = take(f"{head}{norm}.weight")
            out["encoder.lm_head.layer_norm.bias"] = take(f"{head}{norm}.bias")
            out["encoder.lm_head.bias"] = take(head + "bias")[rows]
            used.add(head + "decoder.weight")  # tied to the word embeddings in the source and in fairseq
            used.add(head + "decoder.bias")
    left_out = sorted(set(weights) - used)
    types = weights["embeddings.token_type_embeddings.weight"].shape[0]
    if types > 1:
        left_out.append(f"embeddings.token_type_embeddings.weight[1:{types}]")
    return out, left_out


def max_positions(config: dict) -> int:
    """fairseq's --max-positions: a Hugging Face RoBERTa's table already holds fairseq's 2 offset rows."""
    offset = POSITION_OFFSET if config.get("model_type") == "roberta" else 0
    return config["max_position_embeddings"] - offset


def model_flags(config: dict) -> List[str]:
    """fairseq-train flags describing the converted model (``roberta_base`` with the source's sizes)."""
    return [
        "--arch",
        "roberta_base",
        "--encoder-layers",
        str(config["num_hidden_layers"]),
        "--encoder-embed-dim",
        str(config["hidden_size"]),
        "--encoder-ffn-embed-dim",
        str(config["intermediate_size"]),
        "--encoder-attention-heads",
        str(config["num_attention_heads"]),
        "--max-positions",
        str(max_positions(config)),
        "--activation-fn",
        ACTIVATIONS[config.get("hidden_act", "gelu")],
        "--dropout",
        str(config.get("hidden_dropout_prob", 0.1)),
        "--attention-dropout",
        str(config.get("attention_probs_dropout_prob", 0.1)),
    ]


def build_fairseq_model(out_dir: str, config: dict):
    """(cfg, model): fairseq's masked-LM RoBERTa as fairseq-train would build it on OUT_DIR/dict.txt."""
    from .fairseq_setup import build_from_flags

    built = build_from_flags(
        [
            out_dir,
            "--task",
            "masked_lm",
            "--criterion",
            "masked_lm",
            *model_flags(config),
            "--tokens-per-sample",
            str(max_positions(config)),
            "--cpu",
            "--seed",
            "1",
        ],
        criterion=False,
    )
    return built.cfg, built.model


OUTPUTS = ("model.pt", "dict.txt", "conversion.json")


def halved(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """``state`` with every floating tensor in float16; tensors that share storage (the tied
    embedding and masked-LM output) still share it, so the file holds each once."""
    import torch

    done, out = {}, {}
    for key, value in state.items():
        if torch.is_floating_point(value):
            same = (value.data_ptr(), tuple(value.shape), value.stride())
            out[key] = done.setdefault(same, value.half())
        else:
            out[key] = value
    return out


def half_precision_error(model, half_state: Dict[str, torch.Tensor], vocab_rows: int) -> dict:
    """How far the model's final hidden states move when its weights are the float16 ones
    (loaded back into fp32, as fairseq does): largest and RMS difference relative to the states'
    RMS, over 8 x 64 random tokens (seed 0), dropout off."""
    import copy

    import torch

    rounded = copy.deepcopy(model).eval()
    rounded.load_state_dict({k: v.float() for k, v in half_state.items()}, strict=False)
    model = model.eval()
    tokens = torch.randint(4, vocab_rows - 1, (8, 64), generator=torch.Generator().manual_seed(0))
    tokens[:, 0] = 0  # <s>
    with torch.no_grad():
        exact, _ = model(tokens, features_only=True)
        near, _ = rounded(tokens, features_only=True)
    scale = exact.pow(2).mean().sqrt().item()
    diff = (near - exact).abs()
    return {
        "max_abs_diff_over_rms": round(diff.max().item() / scale, 6),
        "rms_diff_over_rms": round(diff.pow(2).mean().sqrt().item() / scale, 6),
    }


def convert(src_dir: str, out_dir: str, pooler: bool = True, half: bool = False, force: bool = False) -> dict:
    """Write OUT_DIR/{model.pt, dict.txt, conversion.json} and the tokenizer files; returns the report.
    ``pooler``: carry the source's pooler (``pooler.dense``) for new classification heads to start
    from (``fairseq_r3f.checkpoint_heads``). ``half``: store the weights in float16 (half the file;
    fairseq loads them into its fp32 model) and record how far that moves the outputs. An OUT_DIR
    that holds a conversion already is refused unless ``force``."""
    existing = [n for n in OUTPUTS if os.path.exists(os.path.join(out_dir, n))]
    if existing and not force:
        raise FileExistsError(
            f"{out_dir} holds {', '.join(existing)} already: converting would overwrite "
            f"{'them' if len(existing) > 1 else 'it'} (choose another OUT_DIR, or --force to replace)"
        )
    import torch  # here, not at the top: --help and the data checks start without it
    from omegaconf import OmegaConf

    from fairseq_r3f.checkpoint_heads import POOLER_PREFIX
    from fairseq_r3f.checkpoint_safety import allow_fairseq_checkpoints

    config = read_config(src_dir)
    roberta = config["model_type"] == "roberta"
    if roberta:
        row_order, symbols = roberta_vocabulary(src_dir, config)
    else:
        vocab = read_vocab(src_dir)
        if len(vocab) != config["vocab_size"]:
            raise UnsupportedCheckpoint(
                f"vocab.txt has {len(vocab)} tokens but config.json vocab_size is {config['vocab_size']}"
            )
        row_order, symbols = vocabulary_order(vocab, special_tokens(src_dir))
    weights = load_weights(src_dir)
    state, left_out = convert_state_dict(weights, config, row_order)

    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "dict.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.writelines(f"{s} 1\n" for s in symbols)
    cfg, model = build_fairseq_model(out_dir, config)
    if "encoder.lm_head.dense.weight" not in state:  # no masked-LM head in the source: fairseq's initial one
        state.update({k: v for k, v in model.state_dict().items() if k.startswith("encoder.lm_head.")})
    state["encoder.lm_head.weight"] = state["encoder.sentence_encoder.embed_tokens.weight"]  # tied
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state) - {"encoder.sentence_encoder.version"})
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or mismatched:
        raise UnsupportedCheckpoint(
            f"the converted tensors do not fit fairseq's model: missing {missing}, shape mismatches {mismatched}"
        )
    model.load_state_dict(state, strict=False)
    saved_cfg = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    # RobertaModel.from_pretrained asks for GPT-2's BPE files (downloaded) unless the checkpoint
    # names its own: WordPiece (fairseq_r3f.wordpiece registers it with fairseq), or the source's
    # GPT-2 BPE files copied beside model.pt
    out = os.path.abspath(out_dir)
    saved_cfg["bpe"] = (
        {
            "_name": "gpt2",
            "gpt2_encoder_json": os.path.join(out, "encoder.json"),
            "gpt2_vocab_bpe": os.path.join(out, "vocab.bpe"),
        }
        if roberta
        else {"_name": "wordpiece", "wordpiece_dir": out}
    )
    model_state = model.state_dict()
    has_pooler = "pooler.dense.weight" in weights and "pooler.dense.bias" in weights
    if pooler and has_pooler:
        for param in ("weight", "bias"):
            model_state[POOLER_PREFIX + param] = weights[f"pooler.dense.{param}"].to(torch.float32).clone()
        left_out = [k for k in left_out if not k.startswith("pooler.dense.")]
    half_check = None
    if half:
        model_state = halved(model_state)
        half_check = half_precision_error(model, model_state, len(row_order))
    checkpoint = {
        "args": None,
        "cfg": saved_cfg,
        "model": model_state,
        "criterion": None,
        "optimizer_history": [
            {
                "criterion_name": "MaskedLmLoss",
                "optimizer_name": "none",
                "lr_scheduler_state": {"best": None},
                "num_updates": 0,
            }
        ],
        "task_state": {},
        "extra_state": {"train_iterator": {"epoch": 1, "iterations_in_epoch": 0}, "previous_training_time": 0},
    }
    torch.save(checkpoint, os.path.join(out_dir, "model.pt"))
    allow_fairseq_checkpoints()
    torch.load(os.path.join(out_dir, "model.pt"), map_location="cpu")  # the weights-only loader must accept it

    copies = {"vocab.json": "encoder.json", "merges.txt": "vocab.bpe"} if roberta else {n: n for n in TOKENIZER_FILES}
    for name, target in copies.items():
        source = os.path.join(src_dir, name)
        if os.path.isfile(source) and os.path.realpath(source) != os.path.realpath(os.path.join(out_dir, target)):
            shutil.copyfile(source, os.path.join(out_dir, target))
    report = {
        "source": os.path.abspath(src_dir),
        "source_model_type": config["model_type"],
        "fairseq_model_flags": model_flags(config),
        "source_layer_norm_eps": config.get("layer_norm_eps", 1e-12),
        "fairseq_layer_norm_eps": 1e-5,
        "vocabulary": {"rows": len(row_order), "placeholder_symbols": sum(s.startswith("madeupword") for s in symbols)},
        "masked_lm_head": "converted"
        if any(k.startswith(("cls.predictions.", "lm_head.")) for k in weights)
        else "fairseq initial",
        "pooler": ("carried: new classification heads start from it" if pooler else "left out (--no-pooler)")
        if has_pooler
        else "none in the source",
        "left_out": left_out,
        "weights": "float16 (fine-tuning loads them into fp32)" if half else "float32",
    }
    if half_check:
        report["float16_final_states_vs_float32"] = half_check
    with open(os.path.join(out_dir, "conversion.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m r3f_experiments.convert_hf", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "src_dir", help="Hugging Face folder: config.json, model.safetensors/pytorch_model.bin, vocab.txt"
    )
    parser.add_argument("out_dir", help="where model.pt, dict.txt and the tokenizer files go")
    parser.add_argument(
        "--no-pooler",
        action="store_true",
        help="leave the source's pooler out: classification heads start fresh instead of from it",
    )
    parser.add_argument(
        "--half",
        action="store_true",
        help="store the weights in float16 (half the file, e.g. to ship; fairseq loads them into fp32); "
        "conversion.json records how far that moves the outputs",
    )
    parser.add_argument("--force", action="store_true", help="replace a conversion already in OUT_DIR")
    args = parser.parse_args(argv)
    try:
        report = convert(args.src_dir, args.out_dir, pooler=not args.no_pooler, half=args.half, force=args.force)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(
        f"wrote {os.path.join(args.out_dir, 'model.pt')} and dict.txt ({report['vocabulary']['rows']} rows); "
        f"left out: {', '.join(report['left_out']) or 'nothing'}"
    )
    print("fairseq-train model flags: " + " ".join(report["fairseq_model_flags"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
