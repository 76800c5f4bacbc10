"""GPT-2 BPE- or WordPiece-encode and binarise the raw files of ``python -m r3f_experiments.data.glue`` for fairseq.

    python -m r3f_experiments.data.glue_binarize TASK RAW_DIR BIN_DIR \\
        --encoder-json encoder.json --vocab-bpe vocab.bpe --dict dict.txt [--workers N]
    python -m r3f_experiments.data.glue_binarize TASK RAW_DIR BIN_DIR --wordpiece CONVERTED_DIR

``--wordpiece`` is for a model converted from Hugging Face (``python -m r3f_experiments.convert_hf``):
the text is WordPiece-encoded with CONVERTED_DIR's tokenizer (``fairseq_r3f.wordpiece``) and
binarised with CONVERTED_DIR/dict.txt (unless ``--dict`` names another).

RAW_DIR holds ``{split}.input0``, ``{split}.input1`` (pair tasks) and ``{split}.label``
(split names train, valid, valid1, test, test1 as written by ``r3f_experiments.data.glue``). Writes:

* ``BPE_DIR/{split}.inputN`` (default BPE_DIR: ``RAW_DIR/bpe``): GPT-2 BPE ids (or WordPiece
  token strings), one line per example, encoded by fairseq's own RoBERTa encoder (the ``MultiprocessingEncoder`` of
  ``fairseq/examples/roberta/multiprocessing_bpe_encoder.py`` with ``--keep-empty``, so lines
  stay aligned across input0, input1 and label);
* ``BIN_DIR/input0``, ``BIN_DIR/input1``: ``fairseq-preprocess --only-source --srcdict DICT``;
* ``BIN_DIR/label``: classification labels binarised by ``fairseq-preprocess --only-source``
  (label dictionary built from the train labels, as in fairseq's RoBERTa GLUE example);
  for a regression task (STS-B) the text files ``label/{train,valid}.label`` with the score
  divided by 5 (range [0, 1]), as fairseq's example writes them for ``--regression-target``.

This is the layout ``fairseq-train --task sentence_prediction`` reads; MNLI's mismatched dev set
is ``valid1`` (``--valid-subset valid,valid1``). fairseq is imported once for all steps
(``fairseq-preprocess`` runs in this process), which saves several seconds per step.
"""

import argparse
import os
import shutil
import sys
from collections import Counter
from contextlib import ExitStack
from multiprocessing import Pool
from typing import Dict, List, NamedTuple, Optional

from r3f_experiments.data.glue import SOURCES_NAME, GlueFormatError, Task, task_spec
from r3f_experiments.data.preprocess import preprocess

STSB_SCALE = 5.0  # fairseq's example: score / 5, so regression targets lie in [0, 1]


def splits_present(task: Task, raw_dir: str) -> List[str]:
    """The task's splits, in its order (train, valid, valid1, test, test1), that RAW_DIR holds."""
    present = [s.name for s in task.splits if os.path.exists(os.path.join(raw_dir, f"{s.name}.input0"))]
    for required in (s.name for s in task.splits if s.required):
        if required not in present:
            raise FileNotFoundError(f"missing {os.path.join(raw_dir, required + '.input0')}")
    return present


def _lines(path: str) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def bpe_encode(inputs: List[str], outputs: List[str], encoder_json: str, vocab_bpe: str, workers: int = 1) -> Counter:
    """Encode parallel files (same line count) with fairseq's RoBERTa GPT-2 BPE encoder.

    Returns how often each BPE id was written."""
    from fairseq.examples.roberta.multiprocessing_bpe_encoder import MultiprocessingEncoder

    encoder = MultiprocessingEncoder(
        argparse.Namespace(encoder_json=encoder_json, vocab_bpe=vocab_bpe, keep_empty=True)
    )
    ids = Counter()
    with ExitStack() as stack:
        handles = [stack.enter_context(open(p, encoding="utf-8", newline="\n")) for p in inputs]
        outs = [stack.enter_context(open(p, "w", encoding="utf-8", newline="\n")) for p in outputs]
        if workers > 1:
            pool = stack.enter_context(Pool(workers, initializer=encoder.initializer))
            encoded = pool.imap(encoder.encode_lines, zip(*handles), 100)
        else:
            encoder.initializer()
            encoded = map(encoder.encode_lines, zip(*handles))
        for n, (status, lines) in enumerate(encoded, start=1):
            if status != "PASS":  # cannot happen with keep_empty; never drop a line silently
                raise RuntimeError(f"BPE encoder filtered line {n} of {inputs}: {status}")
            for line, out in zip(lines, outs):
                out.write(line + "\n")
                ids.update(line.split())
    return ids


def wordpiece_encode(inputs: List[str], outputs: List[str], folder: str) -> Counter:
    """Encode parallel files line by line with ``fairseq_r3f.wordpiece`` (FOLDER's tokenizer).

    Returns how often each token was written."""
    from fairseq_r3f.wordpiece import WordPiece

    wordpiece = WordPiece(folder)
    tokens = Counter()
    for source, target in zip(inputs, outputs):
        with open(source, encoding="utf-8", newline="\n") as f:
            lines = wordpiece.encode_lines(f)
        with open(target, "w", encoding="utf-8", newline="\n") as out:
            for line in lines:
                out.write(line + "\n")
                tokens.update(line.split())
    return tokens


class Origin(NamedTuple):
    """Where a raw split's examples came from: the source file, each example's line number in it,
    and the source column of each input (``input0``, ``input1``)."""

    path: str
    lines: List[int]
    columns: Dict[str, str]


def split_origin(task: Task, raw_dir: str, split: str) -> Optional[Origin]:
    """The Origin of RAW_DIR's SPLIT as ``r3f_experiments.data.glue`` recorded it (``sources.tsv``,
    ``{split}.line``), or None for raw files written otherwise."""
    sources, lines = os.path.join(raw_dir, SOURCES_NAME), os.path.join(raw_dir, f"{split}.line")
    if not (os.path.isfile(sources) and os.path.isfile(lines)):
        return None
    with open(sources, encoding="utf-8", newline="\n") as f:
        files = dict(line.rstrip("\n").split("\t", 1) for line in list(f)[1:] if "\t" in line)
    if split not in files:
        return None
    spec = next(s for s in task.splits if s.name == split)
    columns = {}
    for name, column in (("input0", spec.sentence1), ("input1", spec.sentence2)):
        if column is not None:
            columns[name] = f"'{column}'" if isinstance(column, str) else f"column {column + 1}"
    return Origin(files[split], [int(n) for n in _read(lines)], columns)


def check_no_empty_lines(paths: List[str], origin: Optional[Origin] = None) -> None:
    """A GlueFormatError naming the rows that encoded to no token at all: fairseq would binarise
    them as a lone </s>, a sentence with nothing in it. With ``origin`` (where the encoded split came
    from), the rows are named by their source file and line there; else by the lines (1-based) of
    the encoded file."""
    for path in paths:
        with open(path, encoding="utf-8", newline="\n") as f:
            empty = [n for n, line in enumerate(f, start=1) if not line.strip()]
        if not empty:
            continue
        field = os.path.basename(path).rsplit(".", 1)[-1]
        if origin is not None and len(origin.lines) >= empty[-1] and field in origin.columns:
            rows = [origin.lines[n - 1] for n in empty]
            shown = ", ".join(map(str, rows[:10])) + (" ..." if len(rows) > 10 else "")
            raise GlueFormatError(
                f"{origin.path}: {len(rows)} row(s) whose {origin.columns[field]} encodes to no token "
                f"(lines {shown}; encoded in {path}); remove those rows from {origin.path}"
            )
        shown = ", ".join(map(str, empty[:10])) + (" ..." if len(empty) > 10 else "")
        raise GlueFormatError(
            f"{path}: {len(empty)} line(s) encode to no token (lines {shown}); remove those rows from the source file"
        )


def check_dictionary(ids: Counter, dict_txt: str, max_unknown: float = 0.01, wordpiece: bool = False) -> int:
    """How many BPE (or WordPiece) tokens dict.txt lacks (fairseq-preprocess makes them <unk>).

    More than ``max_unknown`` of all tokens means the dictionary is not the encoder's: an error."""
    with open(dict_txt, encoding="utf-8") as f:
        symbols = {line.split(" ", 1)[0] for line in f}
    unknown = sum(count for token, count in ids.items() if token not in symbols)
    total = sum(ids.values())
    if total and unknown > max_unknown * total:
        if wordpiece:
            missing = sorted(t for t in ids if t not in symbols)[:10]
            raise ValueError(
                f"{dict_txt} lacks {unknown} of {total} WordPiece tokens ({' '.join(missing)} ...): "
                "the dictionary does not belong to this WordPiece vocabulary"
            )
        missing = sorted((t for t in ids if t not in symbols), key=int)[:10]
        raise ValueError(
            f"{dict_txt} lacks {unknown} of {total} BPE tokens (ids {' '.join(missing)} ...): "
            "the dictionary does not belong to this encoder.json"
        )
    return unknown


def binarize(
    task: Task,
    raw_dir: str,
    bin_dir: str,
    encoder_json: str = None,
    vocab_bpe: str = None,
    dict_txt: str = None,
    bpe_dir: str = None,
    workers: int = 1,
    wordpiece: str = None,
) -> List[str]:
    """BPE-encode (GPT-2 BPE, or WordPiece with ``wordpiece``) RAW_DIR into BPE_DIR, binarise into
    BIN_DIR; returns the splits written."""
    if wordpiece:
        if encoder_json or vocab_bpe:
            raise ValueError("--wordpiece replaces --encoder-json/--vocab-bpe: give one or the other")
        if not os.path.isdir(wordpiece):
            raise FileNotFoundError(f"--wordpiece: no folder {wordpiece}")
        dict_txt = dict_txt or os.path.join(wordpiece, "dict.txt")
        required = ((dict_txt, "--dict"),)
    else:
        required = ((encoder_json, "--encoder-json"), (vocab_bpe, "--vocab-bpe"), (dict_txt, "--dict"))
    for path, what in required:
        if not path or not os.path.isfile(path):
            raise FileNotFoundError(f"{what}: no file {path}")
    splits = splits_present(task, raw_dir)
    inputs = ["input0", "input1"] if task.pair else ["input0"]
    labelled = [s.name for s in task.splits if s.label is not None and s.name in splits]

    # Line counts must agree, or fairseq would pair sentences with the wrong labels.
    for split in splits:
        files = [f"{split}.{x}" for x in inputs] + ([f"{split}.label"] if split in labelled else [])
        counts = {f: _lines(os.path.join(raw_dir, f)) for f in files}
        if len(set(counts.values())) != 1:
            raise ValueError(f"{raw_dir}: line counts differ: {counts}")
    if not task.regression:
        train_labels = set(_read(os.path.join(raw_dir, "train.label")))
        for split in labelled:
            unseen = set(_read(os.path.join(raw_dir, f"{split}.label"))) - train_labels
            if unseen:
                raise ValueError(
                    f"{split}.label holds labels absent from train.label: {sorted(unseen)} "
                    "(fairseq builds the label dictionary from train)"
                )

    bpe_dir = bpe_dir or os.path.join(raw_dir, "bpe")
    os.makedirs(bpe_dir, exist_ok=True)
    ids = Counter()
    for split in splits:
        sources = [os.path.join(raw_dir, f"{split}.{x}") for x in inputs]
        targets = [os.path.join(bpe_dir, f"{split}.{x}") for x in inputs]
        if wordpiece:
            ids += wordpiece_encode(sources, targets, wordpiece)
        else:
            ids += bpe_encode(sources, targets, encoder_json, vocab_bpe, workers)
        check_no_empty_lines(targets, split_origin(task, raw_dir, split))
    unknown = check_dictionary(ids, dict_txt, wordpiece=bool(wordpiece))
    if unknown:
        print(
            f"warning: {unknown} of {sum(ids.values())} tokens are not in {dict_txt} and become <unk>", file=sys.stderr
        )

    os.makedirs(bin_dir, exist_ok=True)
    for sub in ("input0", "input1", "label"):
        shutil.rmtree(os.path.join(bin_dir, sub), ignore_errors=True)
    common = ("--workers", str(workers))
    for x in inputs:
        args = ["--trainpref", os.path.join(bpe_dir, f"train.{x}")]
        valid = [os.path.join(bpe_dir, f"{s}.{x}") for s in splits if s.startswith("valid")]
        test = [os.path.join(bpe_dir, f"{s}.{x}") for s in splits if s.startswith("test")]
        args += ["--validpref", ",".join(valid)] if valid else []
        args += ["--testpref", ",".join(test)] if test else []
        preprocess(*args, "--destdir", os.path.join(bin_dir, x), "--srcdict", dict_txt, *common)

    label_dir = os.path.join(bin_dir, "label")
    if task.regression:
        os.makedirs(label_dir)
        for split in labelled:
            with open(os.path.join(label_dir, f"{split}.label"), "w", encoding="utf-8", newline="\n") as f:
                f.writelines(f"{float(v) / STSB_SCALE:.6g}\n" for v in _read(os.path.join(raw_dir, f"{split}.label")))
    else:
        valid = [os.path.join(raw_dir, f"{s}.label") for s in labelled if s.startswith("valid")]
        args = ["--trainpref", os.path.join(raw_dir, "train.label")]
        args += ["--validpref", ",".join(valid)] if valid else []
        preprocess(*args, "--destdir", label_dir, *common)
    return splits


def _read(path: str) -> List[str]:
    with open(path, encoding="utf-8", newline="\n") as f:
        return [line.rstrip("\n") for line in f]


def train_flags(task: Task, splits: List[str]) -> str:
    """The fairseq-train flags this data-bin needs."""
    flags = [f"--num-classes {task.num_classes}"]
    if task.regression:
        flags.append("--regression-target --criterion sentence_prediction")
    valid = [s for s in splits if s.startswith("valid")]
    if valid != ["valid"]:
        flags.append(f"--valid-subset {','.join(valid)}")
    return " ".join(flags)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("task")
    parser.add_argument("raw_dir")
    parser.add_argument("bin_dir")
    parser.add_argument("--encoder-json", help="GPT-2 BPE encoder.json")
    parser.add_argument("--vocab-bpe", help="GPT-2 BPE vocab.bpe (merges)")
    parser.add_argument(
        "--dict", help="the model's fairseq dictionary (dict.txt); default with --wordpiece: WORDPIECE/dict.txt"
    )
    parser.add_argument(
        "--wordpiece",
        metavar="CONVERTED_DIR",
        default=None,
        help="WordPiece-encode with the tokenizer in CONVERTED_DIR (python -m r3f_experiments.convert_hf "
        "output) instead of GPT-2 BPE",
    )
    parser.add_argument("--bpe-dir", default=None, help="where the BPE ids go (default RAW_DIR/bpe)")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    if not args.wordpiece and not (args.encoder_json and args.vocab_bpe and args.dict):
        parser.error("give --encoder-json, --vocab-bpe and --dict (GPT-2 BPE), or --wordpiece CONVERTED_DIR")
    try:
        task = task_spec(args.task)
        splits = binarize(
            task,
            args.raw_dir,
            args.bin_dir,
            args.encoder_json,
            args.vocab_bpe,
            args.dict,
            args.bpe_dir,
            args.workers,
            args.wordpiece,
        )
    except (OSError, ValueError, GlueFormatError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{task.name}: {args.bin_dir} ({', '.join(splits)}); fairseq-train flags: {train_flags(task, splits)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
