"""Summarization data for BART fine-tuning: JSON-lines -> text pairs -> GPT-2 BPE -> fairseq.

    python -m r3f_experiments.data.summarization prepare DATASET JSONL_DIR OUT_DIR \\
        --encoder-json encoder.json --vocab-bpe vocab.bpe --dict dict.txt [--variant short|long]
    python -m r3f_experiments.data.summarization download DATASET JSONL_DIR [--variant short|long]
    python -m r3f_experiments.data.summarization hypotheses GENERATE_OUTPUT HYPOTHESIS_FILE --expect N

``prepare`` reads ``JSONL_DIR/{train,valid,test}.jsonl`` (one JSON object per line; Reddit
TIFU: ``all.jsonl``, split here) and writes

* ``OUT_DIR/raw/{split}.source`` and ``.target``: one example per line, whitespace collapsed
  (articles hold newlines); ``test.target`` is the reference file ROUGE is scored against;
  examples with an empty source or summary are skipped and listed in ``raw/skipped.tsv``;
* ``OUT_DIR/bpe/{split}.{source,target}``: GPT-2 BPE ids (fairseq's RoBERTa/BART encoder);
* ``OUT_DIR/bin``: ``fairseq-preprocess --source-lang source --target-lang target`` with BART's
  ``dict.txt`` for both sides, the layout ``fairseq-train --task translation`` reads.

``download`` writes those JSON-lines files from the Hugging Face ``datasets`` hub copies
(needs the ``datasets`` package and network access). ``hypotheses`` turns the output of
``fairseq-generate`` into one detokenised summary per line, in the order of the test set.
"""

import argparse
import json
import os
import random
import re
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

from .glue_binarize import bpe_encode, check_dictionary
from .preprocess import preprocess

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class SummarizationDataset:
    name: str
    source_fields: Tuple[str, ...]  # the first one present in a record is used
    target_fields: Tuple[str, ...]
    hub: Tuple[str, ...]  # datasets.load_dataset(*hub)
    presplit: bool = True  # False: one file, split here (SPLIT_FRACTIONS)


# Reddit TIFU has no official split. Its "short" variant (summary = the post's title) is
# the one the paper's authors say they used (fairseq issue 4083); "long" (summary = the
# TL;DR line) is the one later leaderboards list the paper's number under.
REDDIT_VARIANTS = {"short": ("title", "trimmed_title"), "long": ("tldr",)}
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # train, valid, test of Reddit TIFU, shuffled with SPLIT_SEED
SPLIT_SEED = 1


def dataset_spec(name: str, variant: str = "short") -> SummarizationDataset:
    """The fields and source of one of the paper's summarization datasets."""
    if name == "cnn_dm":
        return SummarizationDataset(name, ("article",), ("highlights",), ("cnn_dailymail", "3.0.0"))
    if name == "gigaword":
        return SummarizationDataset(name, ("document",), ("summary",), ("gigaword",))
    if name == "reddit_tifu":
        if variant not in REDDIT_VARIANTS:
            raise ValueError(f"--variant must be one of {sorted(REDDIT_VARIANTS)}, got {variant!r}")
        return SummarizationDataset(
            name,
            ("documents", "selftext_without_tldr"),
            REDDIT_VARIANTS[variant],
            ("reddit_tifu", variant),
            presplit=False,
        )
    raise ValueError(f"unknown dataset {name!r}; expected cnn_dm, gigaword or reddit_tifu")


def clean(text: str) -> str:
    """One line of text: every run of whitespace (newlines included) becomes one space."""
    return " ".join(text.split())


def _field(record: dict, names: Sequence[str], where: str) -> str:
    for name in names:
        if name in record:
            value = record[name]
            if not isinstance(value, str):
                raise ValueError(f"{where}: field {name!r} is {type(value).__name__}, not text")
            return value
    raise ValueError(f"{where}: none of the fields {list(names)} (has: {sorted(record)})")


def read_jsonl(path: str, spec: SummarizationDataset) -> Tuple[List[Tuple[str, str]], List[str]]:
    """(source, summary) pairs of ``path``, and the skipped lines as 'line<TAB>reason'."""
    pairs, skipped = [], []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not JSON ({e.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
            source = clean(_field(record, spec.source_fields, where))
            target = clean(_field(record, spec.target_fields, where))
            if not source or not target:
                skipped.append(f"{n}\tempty {'source' if not source else 'summary'}")
                continue
            pairs.append((source, target))
    if not pairs:
        raise ValueError(f"{path}: no usable examples")
    return pairs, skipped


def split_pairs(pairs: List[Tuple[str, str]]) -> Dict[str, List[Tuple[str, str]]]:
    """Seeded 80/10/10 shuffle split (for a dataset distributed as one file)."""
    order = list(range(len(pairs)))
    random.Random(SPLIT_SEED).shuffle(order)
    n_train = int(SPLIT_FRACTIONS[0] * len(pairs))
    n_valid = int(SPLIT_FRACTIONS[1] * len(pairs))
    cut = {"train": order[:n_train], "valid": order[n_train : n_train + n_valid], "test": order[n_train + n_valid :]}
    return {split: [pairs[i] for i in sorted(idx)] for split, idx in cut.items()}


def write_raw(spec: SummarizationDataset, jsonl_dir: str, raw_dir: str) -> Dict[str, int]:
    """JSONL_DIR -> RAW_DIR/{split}.source/.target; returns examples per split."""
    os.makedirs(raw_dir, exist_ok=True)
    splits, skipped = {}, []
    if spec.presplit:
        for split in SPLITS:
            path = os.path.join(jsonl_dir, f"{split}.jsonl")
            if not os.path.isfile(path):
                raise FileNotFoundError(f"missing {path} (expected {', '.join(s + '.jsonl' for s in SPLITS)})")
            splits[split], bad = read_jsonl(path, spec)
            skipped += [f"{split}.jsonl\t{b}" for b in bad]
    else:
        path = os.path.join(jsonl_dir, "all.jsonl")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"missing {path} ({spec.name} comes as one file; it is split here)")
        pairs, bad = read_jsonl(path, spec)
        skipped += [f"all.jsonl\t{b}" for b in bad]
        splits = split_pairs(pairs)
    for split, pairs in splits.items():
        for side, column in (("source", 0), ("target", 1)):
            with open(os.path.join(raw_dir, f"{split}.{side}"), "w", encoding="utf-8", newline="\n") as f:
                f.writelines(pair[column] + "\n" for pair in pairs)
    with open(os.path.join(raw_dir, "skipped.tsv"), "w", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in skipped)
    if skipped:
        print(
            f"[prepare] skipped {len(skipped)} examples with an empty source or summary "
            f"(listed in {os.path.join(raw_dir, 'skipped.tsv')})",
            file=sys.stderr,
        )
    return {split: len(pairs) for split, pairs in splits.items()}


def binarize(
    raw_dir: str, bpe_dir: str, bin_dir: str, encoder_json: str, vocab_bpe: str, dict_txt: str, workers: int = 1
) -> None:
    """GPT-2 BPE-encode RAW_DIR into BPE_DIR and binarise it with BART's dictionary."""
    for path, what in ((encoder_json, "--encoder-json"), (vocab_bpe, "--vocab-bpe"), (dict_txt, "--dict")):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{what}: no file {path}")
    os.makedirs(bpe_dir, exist_ok=True)
    ids = Counter()
    for split in SPLITS:
        sides = [f"{split}.source", f"{split}.target"]
        ids += bpe_encode(
            [os.path.join(raw_dir, s) for s in sides],
            [os.path.join(bpe_dir, s) for s in sides],
            encoder_json,
            vocab_bpe,
            workers,
        )
    unknown = check_dictionary(ids, dict_txt)
    if unknown:
        print(
            f"warning: {unknown} of {sum(ids.values())} BPE tokens are not in {dict_txt} and become <unk>",
            file=sys.stderr,
        )
    prefixes = [(f"--{s}pref", os.path.join(bpe_dir, s)) for s in SPLITS]
    preprocess(
        "--source-lang",
        "source",
        "--target-lang",
        "target",
        *[a for pair in prefixes for a in pair],
        "--destdir",
        bin_dir,
        "--srcdict",
        dict_txt,
        "--tgtdict",
        dict_txt,
        "--workers",
        str(workers),
        only_source=False,
    )


def download_jsonl(spec: SummarizationDataset, jsonl_dir: str) -> None:
    """Write JSONL_DIR/{split}.jsonl (or all.jsonl) from the ``datasets`` hub copy."""
    try:
        import datasets
    except ImportError:
        raise RuntimeError(
            "downloading needs the 'datasets' package (pip install datasets) and network access; "
            f"or write {jsonl_dir}/{{train,valid,test}}.jsonl yourself (docs/summarization.md)"
        ) from None
    loaded = datasets.load_dataset(*spec.hub)
    os.makedirs(jsonl_dir, exist_ok=True)
    names = {"train": "train", "validation": "valid", "test": "test"}
    if not spec.presplit:
        loaded = {"all": datasets.concatenate_datasets(list(loaded.values()))}
        names = {"all": "all"}
    for hub_split, split in names.items():
        loaded[hub_split].to_json(os.path.join(jsonl_dir, f"{split}.jsonl"), lines=True)


_HYPOTHESIS = re.compile(r"^D-(\d+)\t[^\t]*\t(.*)$")


def extract_hypotheses(generate_output: str, expect: int) -> List[str]:
    """The detokenised hypotheses (``D-`` lines) of a fairseq-generate log, in test-set order.

    Every one of the ``expect`` test examples must be there exactly once: a missing one
    (e.g. dropped by --skip-invalid-size-inputs-valid-test) would misalign the references.
    """
    found = {}
    with open(generate_output, encoding="utf-8") as f:
        for line in f:
            match = _HYPOTHESIS.match(line.rstrip("\n"))
            if match:
                found.setdefault(int(match.group(1)), match.group(2))
    missing = sorted(set(range(expect)) - set(found))
    if missing or len(found) != expect:
        raise ValueError(
            f"{generate_output}: {len(found)} hypotheses for {expect} test examples "
            f"(missing ids: {missing[:10]}{' ...' if len(missing) > 10 else ''})"
        )
    return [clean(found[i]) for i in range(expect)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="JSONL -> raw text, GPT-2 BPE, fairseq binaries")
    down = sub.add_parser("download", help="JSONL files from the datasets hub")
    for p in (prep, down):
        p.add_argument("dataset", choices=["cnn_dm", "gigaword", "reddit_tifu"])
        p.add_argument("jsonl_dir")
        p.add_argument("--variant", default="short", help="Reddit TIFU: short (title) or long (TL;DR)")
    prep.add_argument("out_dir")
    prep.add_argument("--encoder-json", required=True, help="GPT-2 BPE encoder.json")
    prep.add_argument("--vocab-bpe", required=True, help="GPT-2 BPE vocab.bpe (merges)")
    prep.add_argument("--dict", required=True, help="BART's fairseq dictionary (dict.txt)")
    prep.add_argument("--workers", type=int, default=1)
    hyp = sub.add_parser("hypotheses", help="fairseq-generate output -> one summary per line")
    hyp.add_argument("generate_output")
    hyp.add_argument("hypothesis_file")
    hyp.add_argument("--expect", type=int, required=True, help="number of test examples")
    args = parser.parse_args(argv)
    try:
        if args.command == "hypotheses":
            lines = extract_hypotheses(args.generate_output, args.expect)
            with open(args.hypothesis_file, "w", encoding="utf-8", newline="\n") as f:
                f.writelines(line + "\n" for line in lines)
            return 0
        spec = dataset_spec(args.dataset, args.variant)
        if args.command == "download":
            download_jsonl(spec, args.jsonl_dir)
            return 0
        raw_dir = os.path.join(args.out_dir, "raw")
        counts = write_raw(spec, args.jsonl_dir, raw_dir)
        binarize(
            raw_dir,
            os.path.join(args.out_dir, "bpe"),
            os.path.join(args.out_dir, "bin"),
            args.encoder_json,
            args.vocab_bpe,
            args.dict,
            args.workers,
        )
    except (OSError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{args.dataset}: {os.path.join(args.out_dir, 'bin')} " + " ".join(f"{s}={n}" for s, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
