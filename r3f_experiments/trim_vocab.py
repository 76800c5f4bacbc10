"""Ship a converted encoder with its data, small: keep only the vocabulary rows that the
data-bins use, re-index the data-bins to them, and optionally store the weights in float16.

    python -m r3f_experiments.trim_vocab CONVERTED GLUE_BIN OUT [--tasks T ...] [--splits S ...] [--half]

CONVERTED is a folder of ``python -m r3f_experiments.convert_hf`` (model.pt, dict.txt,
conversion.json); GLUE_BIN holds TASK-bin folders prepared with ``prepare.sh --wordpiece
CONVERTED`` (their input dictionaries must be CONVERTED's). OUT gets model.pt, dict.txt,
conversion.json (the source's, with a ``trimmed`` record) and OUT/glue_bin/TASK-bin for every task,
so that ``GLUE_BIN=OUT/glue_bin ROBERTA=OUT/model.pt bash scripts/glue/train.sh TASK METHOD`` runs
as on the originals. Fine-tuning on those data-bins is unchanged by the trimming: a row no example
uses is never looked up, so it neither shapes an output nor receives a gradient (the check in
conversion.json compares final hidden states of real dev examples with the original model's).
The trimmed model encodes only these data-bins: it carries no tokenizer. Manual: docs/huggingface.md.
"""

import argparse
import json
import os
import shutil
import sys
from typing import Dict, List, Sequence

# a data-bin's token folders: input0 (first sentence), input1 (second, pair tasks)
TOKEN_FOLDERS = ("input0", "input1")


class TrimError(ValueError):
    """Inputs that cannot be trimmed as asked; raised before anything is written."""


def task_bins(glue_bin: str, tasks: Sequence[str] = ()) -> Dict[str, str]:
    """{task: GLUE_BIN/TASK-bin}: the tasks asked for, or every TASK-bin in GLUE_BIN."""
    if not os.path.isdir(glue_bin):
        raise TrimError(f"GLUE_BIN {glue_bin} is not a folder")
    found = {n[: -len("-bin")]: os.path.join(glue_bin, n) for n in sorted(os.listdir(glue_bin)) if n.endswith("-bin")}
    if tasks:
        missing = [t for t in tasks if t not in found]
        if missing:
            raise TrimError(
                f"no {', '.join(f'{glue_bin}/{t}-bin' for t in missing)} (found: {' '.join(found) or 'none'})"
            )
        found = {t: found[t] for t in tasks}
    if not found:
        raise TrimError(f"{glue_bin} holds no TASK-bin folder (scripts/glue/prepare.sh makes them)")
    return found


def split_names(folder: str) -> List[str]:
    """The binarised splits of one token folder (train, valid, test, ...): NAME.idx with NAME.bin."""
    names = sorted(n[:-4] for n in os.listdir(folder) if n.endswith(".idx"))
    for name in names:
        if not os.path.isfile(os.path.join(folder, name + ".bin")):
            raise TrimError(f"{folder}/{name}.idx has no {name}.bin beside it")
    return names


def token_datasets(bins: Dict[str, str], splits: Sequence[str], dictionary_file: str):
    """[(task, token folder, split, dataset)] of every split to keep; each folder's dict.txt must
    be the converted model's."""
    from fairseq.data import data_utils

    with open(dictionary_file, encoding="utf-8") as f:
        expected = f.read()
    out = []
    for task, data_bin in bins.items():
        folders = [f for f in TOKEN_FOLDERS if os.path.isdir(os.path.join(data_bin, f))]
        if not folders or not os.path.isdir(os.path.join(data_bin, "label")):
            raise TrimError(f"{data_bin} is not a classification data-bin (input0/ and label/)")
        for folder in folders:
            path = os.path.join(data_bin, folder)
            with open(os.path.join(path, "dict.txt"), encoding="utf-8") as f:
                if f.read() != expected:
                    raise TrimError(
                        f"{path}/dict.txt is not {dictionary_file}: prepare the data with "
                        "scripts/glue/prepare.sh --wordpiece CONVERTED, CONVERTED this model's conversion"
                    )
            have = split_names(path)
            for split in splits or have:
                if split not in have:
                    raise TrimError(f"{path} has no split {split} (has: {' '.join(have)})")
                dataset = data_utils.load_indexed_dataset(os.path.join(path, split), None, "mmap")
                if dataset is None:
                    raise TrimError(f"{path}/{split}: not a fairseq mmap dataset")
                out.append((task, folder, split, dataset))
    return out


def kept_rows(datasets, dictionary_size: int, nspecial: int) -> List[int]:
    """The old ids to keep, in their order: the special symbols and every id the data uses."""
    import torch

    used = torch.zeros(dictionary_size, dtype=torch.bool)
    used[:nspecial] = True
    for task, folder, split, dataset in datasets:
        for i in range(len(dataset)):
            ids = dataset[i].long()
            if ids.numel() and int(ids.max()) >= dictionary_size:
                raise TrimError(f"{task}/{folder}/{split} example {i} holds id {int(ids.max())} beyond the dictionary")
            used[ids] = True
    return used.nonzero().flatten().tolist()


def trim_state(state: Dict, rows: List[int], vocab_rows: int) -> Dict:
    """Every tensor with ``vocab_rows`` rows (the token embedding, its tied output projection and
    that projection's bias) keeps ``rows``; a tied pair stays one storage."""
    import torch

    index = torch.tensor(rows)
    done, out = {}, {}
    for key, value in state.items():
        if torch.is_tensor(value) and value.dim() >= 1 and value.shape[0] == vocab_rows:
            same = (value.data_ptr(), tuple(value.shape), value.stride())
            out[key] = done.setdefault(same, value.index_select(0, index).clone())
        else:
            out[key] = value
    return out


def write_dataset(dataset, new_id, out_prefix: str, vocab_size: int) -> None:
    from fairseq.data import indexed_dataset

    builder = indexed_dataset.make_builder(out_prefix + ".bin", impl="mmap", vocab_size=vocab_size)
    for i in range(len(dataset)):
        builder.add_item(new_id[dataset[i].long()])
    builder.finalize(out_prefix + ".idx")


def model_from_flags(folder: str, flags: List[str]):
    """fairseq's masked-LM RoBERTa on FOLDER/dict.txt, built as convert_hf builds it."""
    from .fairseq_setup import build_from_flags

    positions = flags[flags.index("--max-positions") + 1] if "--max-positions" in flags else "512"
    built = build_from_flags(
        [folder, "--task", "masked_lm", "--criterion", "masked_lm", *flags, "--tokens-per-sample", positions, "--cpu"],
        criterion=False,
    )
    return built.model.eval()


def final_states_difference(old_dir: str, new_dir: str, flags, old_state, new_state, examples) -> dict:
    """Largest and RMS difference of the final hidden states (relative to their RMS), trimmed
    model on its re-indexed examples against the original fp32 model on the original ones."""
    import torch

    from fairseq_r3f.checkpoint_heads import POOLER_PREFIX

    def loaded(folder, state):
        model = model_from_flags(folder, flags)
        model.load_state_dict({k: v.float() for k, v in state.items() if not k.startswith(POOLER_PREFIX)})
        return model

    old_model, new_model = loaded(old_dir, old_state), loaded(new_dir, new_state)
    diffs, scale = [], []
    with torch.no_grad():
        for old_ids, new_ids in examples:
            exact, _ = old_model(old_ids[None], features_only=True)
            near, _ = new_model(new_ids[None], features_only=True)
            diffs.append((near - exact).flatten())
            scale.append(exact.flatten())
    diff, scale = torch.cat(diffs), torch.cat(scale).pow(2).mean().sqrt().item()
    return {
        "examples": len(examples),
        "max_abs_diff_over_rms": round(diff.abs().max().item() / scale, 6),
        "rms_diff_over_rms": round(diff.pow(2).mean().sqrt().item() / scale, 6),
    }


OUTPUTS = ("model.pt", "dict.txt", "conversion.json", "glue_bin")


def trim(
    converted: str,
    glue_bin: str,
    out_dir: str,
    tasks: Sequence[str] = (),
    splits: Sequence[str] = (),
    half: bool = False,
    force: bool = False,
    check_examples: int = 8,
) -> dict:
    """Write OUT_DIR (see the module's doc); returns the ``trimmed`` record of conversion.json."""
    import torch
    from fairseq.data import Dictionary

    from fairseq_r3f.checkpoint_safety import allow_fairseq_checkpoints

    from .convert_hf import halved

    for name in ("model.pt", "dict.txt", "conversion.json"):
        if not os.path.isfile(os.path.join(converted, name)):
            raise TrimError(f"{converted} has no {name}: not a folder of python -m r3f_experiments.convert_hf")
    existing = [n for n in OUTPUTS if os.path.exists(os.path.join(out_dir, n))]
    if existing and not force:
        raise FileExistsError(
            f"{out_dir} holds {', '.join(existing)} already: trimming would overwrite them "
            "(choose another OUT_DIR, or --force to replace)"
        )
    if os.path.realpath(out_dir) in (os.path.realpath(converted), os.path.realpath(glue_bin)):
        raise TrimError("OUT_DIR must be a folder of its own, not CONVERTED or GLUE_BIN")
    bins = task_bins(glue_bin, tasks)
    dictionary = Dictionary.load(os.path.join(converted, "dict.txt"))
    datasets = token_datasets(bins, splits, os.path.join(converted, "dict.txt"))
    allow_fairseq_checkpoints()
    checkpoint = torch.load(os.path.join(converted, "model.pt"), map_location="cpu")
    state = checkpoint["model"]
    embedding = state["encoder.sentence_encoder.embed_tokens.weight"]
    vocab_rows = embedding.shape[0]
    if vocab_rows < len(dictionary):
        raise TrimError(f"{converted}/model.pt has {vocab_rows} embedding rows for {len(dictionary)} symbols")
    with open(os.path.join(converted, "conversion.json"), encoding="utf-8") as f:
        report = json.load(f)
    if "trimmed" in report:
        raise TrimError(f"{converted} is trimmed already; trim its source conversion instead")

    # rows past the dictionary (the <mask> the task adds on loading) stay, after the kept ones
    rows = kept_rows(datasets, len(dictionary), dictionary.nspecial) + list(range(len(dictionary), vocab_rows))
    new_id = torch.full((vocab_rows,), -1, dtype=torch.long)
    new_id[torch.tensor(rows)] = torch.arange(len(rows))
    kept_symbols = [dictionary[i] for i in rows if dictionary.nspecial <= i < len(dictionary)]

    os.makedirs(out_dir, exist_ok=True)
    if force:  # asked for: the data-bins of an earlier trim are replaced, not mixed with these
        shutil.rmtree(os.path.join(out_dir, "glue_bin"), ignore_errors=True)
    with open(os.path.join(out_dir, "dict.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.writelines(f"{s} {dictionary.count[dictionary.index(s)]}\n" for s in kept_symbols)
    new_state = trim_state(state, rows, vocab_rows)
    if half:
        new_state = halved(new_state)
    examples = []
    for task, folder, split, dataset in datasets:
        target = os.path.join(out_dir, "glue_bin", f"{task}-bin", folder)
        os.makedirs(target, exist_ok=True)
        shutil.copyfile(os.path.join(out_dir, "dict.txt"), os.path.join(target, "dict.txt"))
        write_dataset(dataset, new_id, os.path.join(target, split), len(rows))
        if split != "train" and folder == "input0" and len(examples) < check_examples * len(bins):
            for i in range(min(check_examples, len(dataset))):
                old = torch.cat([torch.tensor([dictionary.bos()]), dataset[i].long()])
                examples.append((old, new_id[old]))
    for task, data_bin in bins.items():
        shutil.copytree(os.path.join(data_bin, "label"), os.path.join(out_dir, "glue_bin", f"{task}-bin", "label"))

    cfg = checkpoint["cfg"]
    if isinstance(cfg, dict) and "bpe" in cfg:
        cfg["bpe"] = None  # no tokenizer travels: the trimmed rows fit these data-bins only
    checkpoint["model"] = new_state
    torch.save(checkpoint, os.path.join(out_dir, "model.pt"))
    flags = report["fairseq_model_flags"]
    trimmed = {
        "from": os.path.abspath(converted),
        "data_bins": {task: os.path.abspath(path) for task, path in bins.items()},
        "splits": sorted({split for _, _, split, _ in datasets}),
        "rows": {"before": vocab_rows, "kept": len(rows)},
        "weights": "float16 (fine-tuning loads them into fp32)" if half else report.get("weights", "float32"),
        "final_states_vs_source": final_states_difference(converted, out_dir, flags, state, new_state, examples),
    }
    report["trimmed"] = trimmed
    with open(os.path.join(out_dir, "conversion.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    return trimmed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m r3f_experiments.trim_vocab",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("converted", help="a folder of python -m r3f_experiments.convert_hf")
    parser.add_argument("glue_bin", help="its data-bins: GLUE_BIN/TASK-bin, prepared with --wordpiece CONVERTED")
    parser.add_argument("out_dir", help="gets model.pt, dict.txt, conversion.json and glue_bin/TASK-bin")
    parser.add_argument("--tasks", nargs="+", default=[], help="only these TASK-bin folders (default: all)")
    parser.add_argument(
        "--splits", nargs="+", default=[], help="only these splits, e.g. train valid (default: every one)"
    )
    parser.add_argument("--half", action="store_true", help="store the weights in float16 (half the file)")
    parser.add_argument("--force", action="store_true", help="replace a trimmed model and data-bins in OUT_DIR")
    args = parser.parse_args(argv)
    try:
        trimmed = trim(args.converted, args.glue_bin, args.out_dir, args.tasks, args.splits, args.half, args.force)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    check = trimmed["final_states_vs_source"]
    print(
        f"wrote {args.out_dir}/model.pt ({trimmed['rows']['kept']} of {trimmed['rows']['before']} rows, "
        f"{trimmed['weights'].split()[0]}) and glue_bin/ ({' '.join(trimmed['data_bins'])}; "
        f"{' '.join(trimmed['splits'])}); final states vs the source on {check['examples']} dev examples: "
        f"rms {check['rms_diff_over_rms']:.2g}, max {check['max_abs_diff_over_rms']:.2g} (relative to their RMS)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
