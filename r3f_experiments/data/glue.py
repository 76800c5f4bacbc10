"""Read the official GLUE TSV files into (input0, input1, label) examples, one list per split.

    python -m r3f_experiments.data.glue TASK GLUE_DIR OUT_RAW_DIR

writes ``OUT_RAW_DIR/{split}.input0``, ``.input1`` and ``.label``, ``{split}.line`` (each example's
line number in its source file) and ``sources.tsv`` (each split's source file), so that later steps
name a row by its source; plus ``skipped.tsv`` (every row left out, with its reason). Standard
library only. Split names and the files' quirks this parser handles: ``docs/glue.md``.
"""

import argparse
import os
import sys
import unicodedata
from dataclasses import dataclass, field
from typing import Dict, List, NamedTuple, Optional, Tuple, Union

Column = Union[str, int]  # a header name, or a 0-based index in files without a header

# Characters that str.splitlines (and, for \r, Python's text-mode files) treat as line ends.
_LINE_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_BREAKS_TO_SPACE = str.maketrans({c: " " for c in _LINE_BREAKS})
_BOM = b"\xef\xbb\xbf"


class Split(NamedTuple):
    """One GLUE file and where its fields are."""

    name: str  # fairseq split name it is written as: train, valid, valid1, test, test1
    file: str  # file name in the task folder
    sentence1: Column
    sentence2: Optional[Column]  # None: single-sentence task
    label: Optional[Column]  # None: unlabelled (test)
    header: bool = True
    num_columns: Optional[int] = None  # files without a header: the expected column count
    required: bool = True  # test files are optional


class Task(NamedTuple):
    name: str  # GLUE's spelling, also the folder name
    labels: Optional[Tuple[str, ...]]  # None: regression
    splits: Tuple[Split, ...]
    score_range: Optional[Tuple[float, float]] = None  # regression only

    @property
    def pair(self) -> bool:
        return self.splits[0].sentence2 is not None

    @property
    def regression(self) -> bool:
        return self.labels is None

    @property
    def num_classes(self) -> int:
        """fairseq's --num-classes (1 for a regression target)."""
        return 1 if self.labels is None else len(self.labels)


def _standard(s1, s2, label, test=None, labels=None):
    """train.tsv, dev.tsv (labelled, header) and the optional test.tsv (header, no label)."""
    t1, t2 = test or (s1, s2)
    return (
        Split("train", "train.tsv", s1, s2, label),
        Split("valid", "dev.tsv", s1, s2, label),
        Split("test", "test.tsv", t1, t2, None, required=False),
    )


_MNLI_COLUMNS = ("sentence1", "sentence2")

# The GLUE tasks as distributed by GLUE's download script (the files fairseq's RoBERTa example reads).
TASKS: Dict[str, Task] = {
    "MNLI": Task(
        "MNLI",
        ("contradiction", "entailment", "neutral"),
        (
            Split("train", "train.tsv", *_MNLI_COLUMNS, "gold_label"),
            Split("valid", "dev_matched.tsv", *_MNLI_COLUMNS, "gold_label"),
            Split("valid1", "dev_mismatched.tsv", *_MNLI_COLUMNS, "gold_label"),
            Split("test", "test_matched.tsv", *_MNLI_COLUMNS, None, required=False),
            Split("test1", "test_mismatched.tsv", *_MNLI_COLUMNS, None, required=False),
        ),
    ),
    "QQP": Task("QQP", ("0", "1"), _standard("question1", "question2", "is_duplicate")),
    "QNLI": Task("QNLI", ("entailment", "not_entailment"), _standard("question", "sentence", "label")),
    "RTE": Task("RTE", ("entailment", "not_entailment"), _standard("sentence1", "sentence2", "label")),
    "WNLI": Task("WNLI", ("0", "1"), _standard("sentence1", "sentence2", "label")),
    "MRPC": Task("MRPC", ("0", "1"), _standard("#1 String", "#2 String", "Quality")),
    "STS-B": Task("STS-B", None, _standard("sentence1", "sentence2", "score"), score_range=(0.0, 5.0)),
    "SST-2": Task("SST-2", ("0", "1"), _standard("sentence", None, "label")),
    # CoLA's train and dev files have no header: source, label, original mark, sentence.
    "CoLA": Task(
        "CoLA",
        ("0", "1"),
        (
            Split("train", "train.tsv", 3, None, 1, header=False, num_columns=4),
            Split("valid", "dev.tsv", 3, None, 1, header=False, num_columns=4),
            Split("test", "test.tsv", "sentence", None, None, required=False),
        ),
    ),
}
# What `all` means in scripts/glue/prepare.sh: the eight tasks of fairseq's RoBERTa GLUE example.
ALL_TASKS = ("MNLI", "QQP", "QNLI", "MRPC", "RTE", "SST-2", "CoLA", "STS-B")


class GlueFormatError(Exception):
    """A required file is missing, or its header lacks a column the task needs."""


@dataclass
class SplitResult:
    split: str
    path: str
    examples: List[Tuple[str, Optional[str], Optional[str]]] = field(default_factory=list)
    lines: List[int] = field(default_factory=list)  # each example's 1-based line number in the file
    read: int = 0  # data rows (header excluded)
    skipped: List[Tuple[int, str]] = field(default_factory=list)  # (1-based line number, reason)
    normalised: int = 0  # rows kept after line-break characters in a field became spaces

    @property
    def written(self) -> int:
        return len(self.examples)


def task_spec(name: str) -> Task:
    """The task named ``name`` (case and hyphen insensitive: ``sst2``, ``sts-b``, ``cola``)."""
    key = name.replace("-", "").lower()
    for task in TASKS.values():
        if task.name.replace("-", "").lower() == key:
            return task
    raise GlueFormatError(f"unknown GLUE task '{name}' (known: {' '.join(TASKS)})")


def task_dir(glue_dir: str, task: Task) -> str:
    """``glue_dir/TASK`` when it exists, else ``glue_dir`` itself when it holds the task's train file."""
    sub = os.path.join(glue_dir, task.name)
    if os.path.isdir(sub):
        return sub
    if os.path.isfile(os.path.join(glue_dir, task.splits[0].file)):
        return glue_dir
    raise GlueFormatError(f"{task.name}: no folder {sub} (nor {os.path.join(glue_dir, task.splits[0].file)})")


def _column_index(header: List[str], column: Column, path: str) -> int:
    if isinstance(column, int):
        return column
    if column not in header:
        raise GlueFormatError(f"{path}: header lacks column '{column}' (header: {' | '.join(header)})")
    return header.index(column)


def _visible(text: str) -> bool:
    """Whether ``text`` has a character other than controls, format characters (e.g. U+200B)
    and separators: WordPiece (BERT's tokenizer) drops all of those, leaving an empty sentence."""
    return any(not unicodedata.category(ch).startswith(("C", "Z")) for ch in text)


def _check_label(task: Task, label: str) -> Optional[str]:
    """Why ``label`` is not a valid label of ``task``, or None."""
    if task.labels is not None:
        if label not in task.labels:
            return f"label '{label}' not in {{{', '.join(task.labels)}}}"
        return None
    try:
        value = float(label)
    except ValueError:
        return f"label '{label}' is not a number"
    low, high = task.score_range
    if not low <= value <= high:  # also refuses nan
        return f"label {label} outside [{low:g}, {high:g}]"
    return None


def parse_split(task: Task, spec: Split, path: str) -> SplitResult:
    """Read one GLUE file; see the module's docstring for the rules."""
    result = SplitResult(spec.name, path)
    if not os.path.isfile(path):
        raise GlueFormatError(f"{task.name}: missing file {path}")
    wanted = [("sentence1", spec.sentence1), ("sentence2", spec.sentence2), ("label", spec.label)]
    with open(path, "rb") as f:
        columns = spec.num_columns
        indices = None
        for line_no, raw in enumerate(f, start=1):
            if line_no == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            raw = raw[:-1] if raw.endswith(b"\n") else raw
            raw = raw[:-1] if raw.endswith(b"\r") else raw
            if line_no == 1 and spec.header:
                header = [h.strip() for h in raw.decode("utf-8", errors="replace").split("\t")]
                columns = len(header)
                indices = [None if col is None else _column_index(header, col, path) for _, col in wanted]
                continue
            if indices is None:
                indices = [col for _, col in wanted]
            result.read += 1
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                result.skipped.append((line_no, f"not valid UTF-8 ({e.reason} at byte {e.start})"))
                continue
            if not text.strip():
                result.skipped.append((line_no, "blank line"))
                continue
            fields = text.split("\t")
            if len(fields) != columns:
                result.skipped.append((line_no, f"expected {columns} columns, found {len(fields)}"))
                continue
            values = [None if index is None else fields[index].strip() for index in indices]
            empty = [
                f"'{col}'" if isinstance(col, str) else f"{what} (column {col + 1})"
                for (what, col), value in zip(wanted, values)
                if value is not None and not _visible(value)
            ]
            if empty:
                invisible = any(v and not _visible(v) for v in values)
                result.skipped.append(
                    (line_no, f"empty field {', '.join(empty)}" + (" (no visible character)" if invisible else ""))
                )
                continue
            s1, s2, label = values
            if label is not None:
                reason = _check_label(task, label)
                if reason:
                    result.skipped.append((line_no, reason))
                    continue
            cleaned = [None if v is None else v.translate(_BREAKS_TO_SPACE).strip() for v in (s1, s2)]
            if cleaned != [s1, s2]:
                result.normalised += 1
            result.examples.append((cleaned[0], cleaned[1], label))
            result.lines.append(line_no)
    if spec.header and indices is None:
        raise GlueFormatError(f"{path}: empty file, expected a header line")
    if not result.examples:
        reasons = "; ".join(f"line {n}: {why}" for n, why in result.skipped[:3])
        raise GlueFormatError(
            f"{path}: no usable rows ({result.read} data rows read, {len(result.skipped)} skipped"
            + (f": {reasons}" if reasons else "")
            + "); fairseq cannot train or validate on an empty split"
        )
    return result


def parse_task(task, glue_dir: str) -> Dict[str, SplitResult]:
    """Every split of ``task`` (a name or a Task) found under ``glue_dir``, by fairseq split name.

    Raises GlueFormatError when a required file is missing or a header lacks a column."""
    task = task_spec(task) if isinstance(task, str) else task
    folder = task_dir(glue_dir, task)
    results = {}
    for spec in task.splits:
        path = os.path.join(folder, spec.file)
        if not spec.required and not os.path.exists(path):
            continue
        results[spec.name] = parse_split(task, spec, path)
    return results


SOURCES_NAME = "sources.tsv"


def write_raw(task: Task, results: Dict[str, SplitResult], out_dir: str) -> None:
    """``{split}.input0``, ``{split}.input1`` (pair tasks), ``{split}.label``, ``{split}.line``,
    ``sources.tsv`` and ``skipped.tsv``."""
    os.makedirs(out_dir, exist_ok=True)
    for split, result in results.items():
        columns = [("input0", 0)] + ([("input1", 1)] if task.pair else [])
        if _labelled(task, split):
            columns.append(("label", 2))
        for suffix, k in columns:
            with open(os.path.join(out_dir, f"{split}.{suffix}"), "w", encoding="utf-8", newline="\n") as f:
                f.writelines(example[k] + "\n" for example in result.examples)
        with open(os.path.join(out_dir, f"{split}.line"), "w", encoding="utf-8", newline="\n") as f:
            f.writelines(f"{n}\n" for n in result.lines)
    with open(os.path.join(out_dir, SOURCES_NAME), "w", encoding="utf-8", newline="\n") as f:
        f.write("split\tfile\n")
        f.writelines(f"{split}\t{result.path}\n" for split, result in results.items())
    with open(os.path.join(out_dir, "skipped.tsv"), "w", encoding="utf-8", newline="\n") as f:
        f.write("file\tline\treason\n")
        for result in results.values():
            for line_no, reason in result.skipped:
                f.write(f"{result.path}\t{line_no}\t{reason}\n")


def _labelled(task: Task, split: str) -> bool:
    return any(s.name == split and s.label is not None for s in task.splits)


def count_table(task: Task, results: Dict[str, SplitResult]) -> str:
    rows = [("split", "file", "read", "written", "skipped", "normalised")]
    for split, r in results.items():
        rows.append(
            (split, os.path.basename(r.path), str(r.read), str(r.written), str(len(r.skipped)), str(r.normalised))
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"{task.name}"]
    for row in rows:
        lines.append(
            "  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m r3f_experiments.data.glue",
        description="Read a GLUE task's TSV files and write {split}.input0/.input1/.label for fairseq.",
    )
    parser.add_argument("task", help=f"one of {' '.join(TASKS)} (case-insensitive)")
    parser.add_argument("glue_dir", help="GLUE data folder holding TASK/ (or the task folder itself)")
    parser.add_argument("out_raw_dir", help="where to write {split}.input0, .input1, .label")
    parser.add_argument(
        "--max-report", type=int, default=20, help="skipped rows printed per split (all are in OUT_RAW_DIR/skipped.tsv)"
    )
    args = parser.parse_args(argv)
    try:
        task = task_spec(args.task)
        results = parse_task(task, args.glue_dir)
    except GlueFormatError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    write_raw(task, results, args.out_raw_dir)
    for r in results.values():
        for line_no, reason in r.skipped[: args.max_report]:
            print(f"skipped {r.path}:{line_no}: {reason}")
        if len(r.skipped) > args.max_report:
            print(
                f"skipped ... {len(r.skipped) - args.max_report} more rows of {r.path}, "
                f"see {os.path.join(args.out_raw_dir, 'skipped.tsv')}"
            )
    print(count_table(task, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
