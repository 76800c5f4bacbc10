"""Zero-shot XNLI (paper, Table 3): train on English MultiNLI, evaluate on 15 languages.

    python -m r3f_experiments.data.xnli prepare --xnli-dir XNLI-1.0 --train-file multinli.train.en.tsv \\
        --spm-model xlmr.large/sentencepiece.bpe.model --dict xlmr.large/dict.txt --out xnli_bin
    python -m r3f_experiments.data.xnli table validate.log --data xnli_bin   # Table 3's row, every example counted

``prepare`` reads XNLI's ``xnli.dev.tsv`` (and ``xnli.test.tsv`` with ``--split test``) by
header names (``language``, ``gold_label``, ``sentence1``, ``sentence2``), splitting on tabs
only, and the English training file of XNLI-MT (``premise``, ``hypo``, ``label``; its
``contradictory`` is XNLI's ``contradiction``). Text is encoded with XLM-R's sentencepiece
model and binarised with fairseq-preprocess and XLM-R's dictionary. Each language becomes
one validation subset: ``valid`` is the first of ``--languages``, ``valid1`` the second, ...
(``OUT/languages.txt`` records the order), so ``--valid-subset valid,valid1,...`` evaluates
them all in one ``fairseq-validate`` run. ``table --data`` checks that the run scored every example
of every language (fairseq's default ``--required-batch-size-multiple 8`` drops a last batch of fewer
than 8 sentences).
"""

import argparse
import os
import statistics
import sys
from typing import Dict, List, Tuple

from ..fairseq_logs import parse_valid_subsets
from .preprocess import binarized_size

# Table 3's column order
LANGUAGES = ("en", "fr", "es", "de", "el", "bg", "ru", "tr", "ar", "vi", "th", "zh", "hi", "sw", "ur")
LABELS = ("contradiction", "entailment", "neutral")
_LABEL_ALIASES = {"contradictory": "contradiction"}

Example = Tuple[str, str, str]


def _rows(path: str):
    """(line number, {header: field}) for each data line of a tab-separated file with a header."""
    with open(path, encoding="utf-8-sig") as f:
        header = f.readline().rstrip("\n").split("\t")
        for number, line in enumerate(f, start=2):
            line = line.rstrip("\n")
            if line:
                yield number, header, line.split("\t")


def _field(header, fields, name, path, number):
    if name not in header:
        raise ValueError(f"{path}: header has no column {name!r} (columns: {header})")
    if len(fields) != len(header):
        raise ValueError(f"{path}:{number}: {len(fields)} fields, header has {len(header)}")
    return fields[header.index(name)].strip()


def _label(raw: str, path: str, number: int) -> str:
    label = _LABEL_ALIASES.get(raw, raw)
    if label not in LABELS:
        raise ValueError(f"{path}:{number}: unknown label {raw!r}")
    return label


def read_eval(path: str) -> Dict[str, List[Example]]:
    """XNLI dev/test: {language: [(premise, hypothesis, label)]}."""
    by_language: Dict[str, List[Example]] = {}
    for number, header, fields in _rows(path):
        get = lambda name: _field(header, fields, name, path, number)  # noqa: E731
        example = (get("sentence1"), get("sentence2"), _label(get("gold_label"), path, number))
        by_language.setdefault(get("language"), []).append(example)
    return by_language


def read_train(path: str) -> List[Example]:
    """XNLI-MT's multinli.train.en.tsv: [(premise, hypothesis, label)]."""
    examples = []
    for number, header, fields in _rows(path):
        get = lambda name: _field(header, fields, name, path, number)  # noqa: E731
        examples.append((get("premise"), get("hypo"), _label(get("label"), path, number)))
    return examples


def _write_split(raw_dir: str, split: str, examples: List[Example], encode) -> None:
    for column, suffix in ((0, "input0"), (1, "input1")):
        with open(os.path.join(raw_dir, f"{split}.{suffix}"), "w", encoding="utf-8") as f:
            f.writelines(encode(e[column]) + "\n" for e in examples)
    with open(os.path.join(raw_dir, f"{split}.label"), "w", encoding="utf-8") as f:
        f.writelines(e[2] + "\n" for e in examples)


def prepare(
    xnli_dir: str, train_file: str, spm_model: str, dictionary: str, out: str, languages=LANGUAGES, split: str = "dev"
) -> Dict[str, int]:
    """Encode and binarise; returns the number of examples per split."""
    import sentencepiece

    from .preprocess import preprocess

    sp = sentencepiece.SentencePieceProcessor(model_file=spm_model)

    def encode(text):
        return " ".join(sp.encode(text, out_type=str))

    evaluation = read_eval(os.path.join(xnli_dir, f"xnli.{split}.tsv"))
    missing = [lang for lang in languages if lang not in evaluation]
    if missing:
        raise ValueError(f"xnli.{split}.tsv has no examples for {missing}; it has {sorted(evaluation)}")
    raw_dir = os.path.join(out, "raw")
    os.makedirs(raw_dir, exist_ok=True)
    train = read_train(train_file)
    _write_split(raw_dir, "train", train, encode)
    counts = {"train": len(train)}
    subsets = []
    for i, lang in enumerate(languages):
        subset = "valid" if i == 0 else f"valid{i}"
        _write_split(raw_dir, f"{subset}", evaluation[lang], encode)
        counts[f"{subset} ({lang})"] = len(evaluation[lang])
        subsets.append(os.path.join(raw_dir, subset))
    for suffix in ("input0", "input1", "label"):
        extra = [] if suffix == "label" else ["--srcdict", dictionary]
        preprocess(
            "--trainpref",
            os.path.join(raw_dir, f"train.{suffix}"),
            "--validpref",
            ",".join(f"{s}.{suffix}" for s in subsets),
            "--destdir",
            os.path.join(out, suffix),
            *extra,
        )
    with open(os.path.join(out, "languages.txt"), "w") as f:
        f.writelines(lang + "\n" for lang in languages)
    return counts


def accuracy_table(log_text: str, languages) -> Tuple[Dict[str, float], str]:
    """Per-language accuracy from a fairseq-validate json log over valid, valid1, ..."""
    subsets = parse_valid_subsets(log_text)
    accuracy = {}
    for i, lang in enumerate(languages):
        subset = "valid" if i == 0 else f"valid{i}"
        if subset not in subsets:
            raise ValueError(f"no {subset} ({lang}) records in the log: did fairseq-validate run on every subset?")
        accuracy[lang] = float(subsets[subset][-1][f"{subset}_accuracy"])
    average = statistics.mean(accuracy.values())
    header = "| " + " | ".join(languages) + " | avg |"
    rule = "|" + "---|" * (len(languages) + 1)
    row = "| " + " | ".join(f"{accuracy[lang]:.1f}" for lang in languages) + f" | {average:.1f} |"
    return {**accuracy, "avg": average}, "\n".join((header, rule, row))


def check_all_scored(log_text: str, languages, data: str) -> Dict[str, int]:
    """{language: examples scored}, after checking that fairseq-validate scored every example of each
    language: its ``<subset>_bsz`` (the sentences of all the subset's batches) against the subset's
    size in DATA/input0/<subset>.idx. A difference raises ValueError naming the subset."""
    subsets = parse_valid_subsets(log_text)
    scored = {}
    for i, lang in enumerate(languages):
        subset = "valid" if i == 0 else f"valid{i}"
        idx = os.path.join(data, "input0", f"{subset}.idx")
        size = binarized_size(idx)
        if subset not in subsets:
            raise ValueError(f"no {subset} ({lang}) records in the log: did fairseq-validate run on every subset?")
        record = subsets[subset][-1]
        if f"{subset}_bsz" not in record:
            raise ValueError(f"{subset} ({lang}): no {subset}_bsz in the log, so the examples scored are unknown")
        count = round(float(record[f"{subset}_bsz"]))
        if count != size:
            raise ValueError(
                f"{subset} ({lang}): fairseq-validate scored {count} of the {size} examples in {idx}; "
                "every example must be scored (--required-batch-size-multiple 1: fairseq's default of 8 "
                "drops a last batch of fewer than 8)"
            )
        scored[lang] = count
    return scored


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="encode and binarise XNLI for fairseq")
    p.add_argument("--xnli-dir", required=True, help="folder with xnli.dev.tsv / xnli.test.tsv")
    p.add_argument("--train-file", required=True, help="XNLI-MT multinli.train.en.tsv")
    p.add_argument("--spm-model", required=True, help="XLM-R's sentencepiece.bpe.model")
    p.add_argument("--dict", required=True, help="XLM-R's dict.txt")
    p.add_argument("--out", required=True)
    p.add_argument("--split", default="dev", choices=["dev", "test"])
    p.add_argument("--languages", default=",".join(LANGUAGES))
    t = sub.add_parser("table", help="print Table 3's row from a fairseq-validate log")
    t.add_argument("log")
    t.add_argument("--languages-file", help="languages.txt written by prepare (default: Table 3's 15)")
    t.add_argument("--data", help="the data-bin evaluated: fail unless the log scored each of its examples")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        counts = prepare(
            args.xnli_dir,
            args.train_file,
            args.spm_model,
            args.dict,
            args.out,
            tuple(args.languages.split(",")),
            args.split,
        )
        for split, n in counts.items():
            print(f"{split}: {n} examples")
    else:
        languages = LANGUAGES
        if args.languages_file:
            with open(args.languages_file) as f:
                languages = tuple(line.strip() for line in f if line.strip())
        with open(args.log) as f:
            log_text = f.read()
        try:
            if args.data:
                scored = check_all_scored(log_text, languages, args.data)
                counts = ", ".join(f"{lang} {n}" for lang, n in scored.items())
                print(f"[xnli] every example scored: {counts}", file=sys.stderr)
            print(accuracy_table(log_text, languages)[1])
        except (OSError, ValueError) as e:
            sys.exit(f"error: {e}")


if __name__ == "__main__":
    main(sys.argv[1:])
