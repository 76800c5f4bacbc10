"""GLUE data preparation: the TSV parser (r3f_experiments.data.glue) on one fixture per quirk of the
official files, the BPE + binarisation step (r3f_experiments.data.glue_binarize), MRPC's formatting, and
scripts/glue/prepare.sh end to end with a local tiny GPT-2 BPE, then a seed sweep with the real
scripts/glue/train.sh and its Table 2 report."""

import contextlib
import functools
import http.server
import os
import subprocess
import sys
import threading
import zipfile

import pytest

from r3f_experiments.data import glue
from r3f_experiments.data.glue import GlueFormatError, parse_task
from r3f_experiments.fairseq_logs import parse_valid_subsets
from tests.helpers import REPO, ROBERTA_DIMS, load_split

PREPARE = os.path.join(REPO, "scripts", "glue", "prepare.sh")
FORMAT_MRPC = [sys.executable, "-m", "r3f_experiments.data.mrpc"]
BOM = "\ufeff"


def write(folder, name, text, encoding="utf-8"):
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    with open(path, "w", encoding=encoding, newline="") as f:
        f.write(text)
    return path


def rows(*lines, end="\n"):
    return "\n".join("\t".join(cells) for cells in lines) + end


def counts(result):
    return result.read, result.written, len(result.skipped)


# ---- the parser, one fixture per quirk ------------------------------------------------------

MRPC_HEADER = ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String")


def test_mrpc_bom_header_and_unbalanced_quotes(tmp_path):
    folder = tmp_path / "MRPC"
    text = BOM + rows(
        MRPC_HEADER,
        ("1", "702876", "702977", 'He said "yes.', "He agreed."),
        ("0", "2108705", "2108831", "Shares rose 5 %.", 'Shares "fell.'),
        ("1", "1330381", "1330521", "It ended.", "It was over."),
    )
    write(folder, "train.tsv", text)
    write(folder, "dev.tsv", BOM + rows(MRPC_HEADER, ("0", "1", "2", 'a "b', "c")))
    results = parse_task("MRPC", str(tmp_path))
    assert list(results) == ["train", "valid"]  # no test.tsv: skipped (optional)
    train = results["train"]
    assert counts(train) == (3, 3, 0)
    assert train.examples == [
        ('He said "yes.', "He agreed.", "1"),
        ("Shares rose 5 %.", 'Shares "fell.', "0"),
        ("It ended.", "It was over.", "1"),
    ]
    assert results["valid"].examples == [('a "b', "c", "0")]


def test_mrpc_header_without_bom_handling_would_miss_quality(tmp_path):
    # with the BOM kept, the first header name would be '\ufeffQuality' and the label column unknown
    write(tmp_path / "MRPC", "train.tsv", BOM + rows(MRPC_HEADER, ("1", "1", "2", "x", "y")))
    write(tmp_path / "MRPC", "dev.tsv", BOM + rows(MRPC_HEADER, ("0", "3", "4", "u", "v")))
    results = parse_task("mrpc", str(tmp_path))
    assert results["train"].examples == [("x", "y", "1")]
    assert counts(results["valid"]) == (1, 1, 0)


def test_cola_no_header_four_columns_and_dev_without_final_newline(tmp_path):
    folder = tmp_path / "CoLA"
    write(
        folder,
        "train.tsv",
        rows(
            ("gj04", "1", "", "Our friends won't buy this analysis."),
            ("gj04", "0", "*", "One more pseudo generalization and I'm giving up."),
            ("gj04", "1", "", "They drank the pub.", "extra"),
        ),
    )
    write(
        folder,
        "dev.tsv",
        rows(
            ("gj04", "1", "", "The sailors rode the breeze clear of the rocks."),
            ("gj04", "0", "*", "The more we study verbs, the crazier they get."),
            end="",
        ),
    )
    results = parse_task("CoLA", str(tmp_path))
    train, valid = results["train"], results["valid"]
    assert counts(train) == (3, 2, 1)
    assert train.examples == [
        ("Our friends won't buy this analysis.", None, "1"),
        ("One more pseudo generalization and I'm giving up.", None, "0"),
    ]
    assert train.skipped == [(3, "expected 4 columns, found 5")]  # no header: line 1 is a row
    assert counts(valid) == (2, 2, 0)
    assert valid.examples[-1] == ("The more we study verbs, the crazier they get.", None, "0")


def test_sst2_space_before_tab_is_stripped(tmp_path):
    folder = tmp_path / "SST-2"
    write(
        folder,
        "train.tsv",
        rows(
            ("sentence", "label"),
            ("hide new secretions from the parental units ", "0"),
            ("contains no wit , only labored gags ", "0"),
            ("a gorgeous film ", "1"),
        ),
    )
    write(folder, "dev.tsv", rows(("sentence", "label"), ("it 's a charming journey . ", "1")))
    write(folder, "test.tsv", rows(("index", "sentence"), ("0", "uneasy mishmash of styles ")))
    results = parse_task("sst2", str(tmp_path))
    assert list(results) == ["train", "valid", "test"]
    assert results["train"].examples == [
        ("hide new secretions from the parental units", None, "0"),
        ("contains no wit , only labored gags", None, "0"),
        ("a gorgeous film", None, "1"),
    ]
    assert results["valid"].examples == [("it 's a charming journey .", None, "1")]
    assert results["test"].examples == [("uneasy mishmash of styles", None, None)]
    assert [counts(r) for r in results.values()] == [(3, 3, 0), (1, 1, 0), (1, 1, 0)]


@pytest.mark.parametrize(
    "task,header,label",
    [
        ("QNLI", ("index", "question", "sentence", "label"), "not_entailment"),
        ("RTE", ("index", "sentence1", "sentence2", "label"), "entailment"),
    ],
)
def test_unbalanced_quotes_do_not_join_lines(tmp_path, task, header, label):
    # csv's default quoting would read from the first '"' to the next one, two lines further down
    write(
        tmp_path / task,
        "train.tsv",
        rows(
            header,
            ("0", 'What did "Bob say?', "He left.", label),
            ("1", "Who?", "Nobody.", label),
            ("2", "Why?", 'He said "no.', label),
        ),
    )
    write(tmp_path / task, "dev.tsv", rows(header, ("0", "Dev?", "Yes.", label)))
    train = parse_task(task, str(tmp_path))["train"]
    assert counts(train) == (3, 3, 0)
    assert train.examples == [
        ('What did "Bob say?', "He left.", label),
        ("Who?", "Nobody.", label),
        ("Why?", 'He said "no.', label),
    ]


STSB_HEADER = (
    "index",
    "genre",
    "filename",
    "year",
    "old_index",
    "source1",
    "source2",
    "sentence1",
    "sentence2",
    "score",
)


def stsb_row(i, s1, s2, score):
    return (str(i), "main-captions", "MSRvid", "2012test", "0001", "none", "none", s1, s2, score)


def test_stsb_quotes_and_scores(tmp_path):
    write(
        tmp_path / "STS-B",
        "train.tsv",
        rows(
            STSB_HEADER,
            stsb_row(0, 'A "plane.', "A plane.", "5.000"),
            stsb_row(1, "A man.", "A woman.", "0.500"),
            stsb_row(2, "x", "y", "5.2"),
            stsb_row(3, "x", "y", "high"),
        ),
    )
    write(tmp_path / "STS-B", "dev.tsv", rows(STSB_HEADER, stsb_row(0, "a", "b", "3.800")))
    results = parse_task("STS-B", str(tmp_path))
    train = results["train"]
    assert counts(train) == (4, 2, 2)
    assert train.examples == [('A "plane.', "A plane.", "5.000"), ("A man.", "A woman.", "0.500")]
    assert train.skipped == [(4, "label 5.2 outside [0, 5]"), (5, "label 'high' is not a number")]
    assert results["valid"].examples == [("a", "b", "3.800")]


QQP_HEADER = ("id", "qid1", "qid2", "question1", "question2", "is_duplicate")


def test_qqp_malformed_rows_are_counted_and_reported(tmp_path):
    folder = tmp_path / "QQP"
    write(
        folder,
        "train.tsv",
        rows(
            QQP_HEADER,
            ("133273", "213221", "213222", "How is the life of a math student?", "Which level of math?", "0"),
            ("402555", "536040", "536041", "How do I control my horny emotions?"),  # question split by a newline:
            ("How do I control it?", "1"),  # two short rows
            ("360472", "364011", "490273", "What causes stool color to change?", "", "0"),  # empty question2
            ("150662", "155721", "7256", "What is the best way?", "Best way?", "2"),  # unknown label
            ("1", "2", "3", "Is it?", "Is it not?", "1", "surplus"),  # 7 columns
            ("19", "20", "21", "Is this fine?", "Yes it is.", "1"),
        ),
    )
    with open(folder / "train.tsv", "ab") as f:
        f.write(b"20\t22\t23\tbad \xff byte?\tok?\t0\n\n")  # not UTF-8, then a blank line
    write(folder, "dev.tsv", rows(QQP_HEADER, ("7", "8", "9", "Same?", "Same!", "1")))
    results = parse_task("QQP", str(tmp_path))
    train = results["train"]
    assert counts(train) == (9, 2, 7)
    assert train.read == train.written + len(train.skipped)
    assert train.examples == [
        ("How is the life of a math student?", "Which level of math?", "0"),
        ("Is this fine?", "Yes it is.", "1"),
    ]
    assert [line for line, _ in train.skipped] == [3, 4, 5, 6, 7, 9, 10]
    reasons = dict(train.skipped)
    assert reasons[3] == "expected 6 columns, found 4"
    assert reasons[4] == "expected 6 columns, found 2"
    assert reasons[5] == "empty field 'question2'"
    assert reasons[6] == "label '2' not in {0, 1}"
    assert reasons[7] == "expected 6 columns, found 7"
    assert reasons[9].startswith("not valid UTF-8")
    assert reasons[10] == "blank line"

    out = tmp_path / "raw"
    assert glue.main(["QQP", str(tmp_path), str(out), "--max-report", "3"]) == 0
    with open(out / "skipped.tsv", encoding="utf-8") as f:
        report = [line.rstrip("\n").split("\t") for line in f]
    assert report[0] == ["file", "line", "reason"]
    assert [(r[1], r[2]) for r in report[1:4]] == [
        ("3", "expected 6 columns, found 4"),
        ("4", "expected 6 columns, found 2"),
        ("5", "empty field 'question2'"),
    ]
    assert len(report) == 1 + 7 and all(r[0] == str(folder / "train.tsv") for r in report[1:])


def test_cli_prints_skipped_rows_and_count_table(tmp_path, capsys):
    folder = tmp_path / "QQP"
    write(
        folder,
        "train.tsv",
        rows(
            QQP_HEADER, ("1", "1", "2", "a?", "b?", "0"), ("2", "3", "4", "c?", "1"), ("3", "5", "6", "e?", "f?", "1")
        ),
    )
    write(folder, "dev.tsv", rows(QQP_HEADER, ("4", "7", "8", "g?", "h?", "1")))
    out = tmp_path / "raw"
    assert glue.main(["QQP", str(tmp_path), str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"skipped {folder / 'train.tsv'}:3: expected 6 columns, found 5"
    table = printed[-3:]  # the table comes last
    assert table[0].split() == ["split", "file", "read", "written", "skipped", "normalised"]
    assert table[1].split() == ["train", "train.tsv", "3", "2", "1", "0"]
    assert table[2].split() == ["valid", "dev.tsv", "1", "1", "0", "0"]
    assert sorted(os.listdir(out)) == [
        "skipped.tsv",
        "sources.tsv",
        "train.input0",
        "train.input1",
        "train.label",
        "train.line",
        "valid.input0",
        "valid.input1",
        "valid.label",
        "valid.line",
    ]
    # each example's line in its source file (line 3 was skipped), for messages about a row
    assert (out / "train.line").read_text() == "2\n4\n" and (out / "valid.line").read_text() == "2\n"
    assert (
        out / "sources.tsv"
    ).read_text() == f"split\tfile\ntrain\t{folder / 'train.tsv'}\nvalid\t{folder / 'dev.tsv'}\n"
    assert (out / "train.input0").read_text() == "a?\ne?\n"
    assert (out / "train.input1").read_text() == "b?\nf?\n"
    assert (out / "train.label").read_text() == "0\n1\n"


MNLI_TRAIN = (
    "index",
    "promptID",
    "pairID",
    "genre",
    "sentence1_binary_parse",
    "sentence2_binary_parse",
    "sentence1_parse",
    "sentence2_parse",
    "sentence1",
    "sentence2",
    "label1",
    "gold_label",
)
MNLI_DEV = MNLI_TRAIN[:-1] + ("label2", "label3", "label4", "label5", "gold_label")
MNLI_TEST = MNLI_TRAIN[:10]


def mnli_row(i, s1, s2, *labels):
    return (str(i), "1", f"{i}n", "fiction", "( x )", "( y )", "(ROOT x)", "(ROOT y)", s1, s2, *labels)


def write_mnli(root):
    folder = os.path.join(root, "MNLI")
    write(
        folder,
        "train.tsv",
        rows(
            MNLI_TRAIN,
            mnli_row(0, "He ran.", "He moved.", "entailment", "entailment"),
            mnli_row(1, "He ran.", "He sat.", "contradiction", "contradiction"),
            mnli_row(2, 'He said "go.', "He spoke.", "neutral", "neutral"),
        ),
    )
    write(
        folder,
        "dev_matched.tsv",
        rows(MNLI_DEV, mnli_row(3, "A.", "B.", *["neutral"] * 6), mnli_row(4, "C.", "D.", *["entailment"] * 6)),
    )
    write(folder, "dev_mismatched.tsv", rows(MNLI_DEV, mnli_row(5, "E.", "F.", *["contradiction"] * 6)))
    write(folder, "test_matched.tsv", rows(MNLI_TEST, mnli_row(6, "G.", "H.")))
    return folder


def test_mnli_matched_and_mismatched_dev_sets(tmp_path):
    write_mnli(tmp_path)
    results = parse_task("MNLI", str(tmp_path))
    # valid = dev_matched, valid1 = dev_mismatched (fairseq-preprocess --validpref a,b; --valid-subset valid,valid1)
    assert list(results) == ["train", "valid", "valid1", "test"]
    assert {k: os.path.basename(r.path) for k, r in results.items()} == {
        "train": "train.tsv",
        "valid": "dev_matched.tsv",
        "valid1": "dev_mismatched.tsv",
        "test": "test_matched.tsv",
    }
    assert results["train"].examples[2] == ('He said "go.', "He spoke.", "neutral")
    assert results["valid"].examples == [("A.", "B.", "neutral"), ("C.", "D.", "entailment")]
    assert results["valid1"].examples == [("E.", "F.", "contradiction")]
    assert results["test"].examples == [("G.", "H.", None)]
    assert [counts(r) for r in results.values()] == [(3, 3, 0), (2, 2, 0), (1, 1, 0), (1, 1, 0)]


def test_line_breaks_inside_fields_become_spaces_and_crlf_is_accepted(tmp_path):
    header = ("index", "sentence1", "sentence2", "label")
    write(
        tmp_path / "RTE",
        "train.tsv",
        "\r\n".join(
            "\t".join(r) for r in (header, ("0", "a\rb", "c\u2028d", "entailment"), ("1", "e", "f", "not_entailment"))
        )
        + "\r\n",
    )
    write(tmp_path / "RTE", "dev.tsv", rows(header, ("0", "g", "h", "entailment")))
    train = parse_task("RTE", str(tmp_path))["train"]
    assert train.examples == [("a b", "c d", "entailment"), ("e", "f", "not_entailment")]
    assert (train.read, train.written, train.skipped, train.normalised) == (2, 2, [], 1)


def test_missing_file_and_missing_column_are_errors_naming_the_file(tmp_path, capsys):
    header = ("index", "sentence1", "sentence2", "label")
    write(tmp_path / "RTE", "train.tsv", rows(header, ("0", "a", "b", "entailment")))
    with pytest.raises(GlueFormatError, match="missing file .*dev.tsv"):
        parse_task("RTE", str(tmp_path))
    assert glue.main(["RTE", str(tmp_path), str(tmp_path / "out")]) == 1
    assert f"error: RTE: missing file {tmp_path / 'RTE' / 'dev.tsv'}" in capsys.readouterr().err

    write(tmp_path / "RTE", "dev.tsv", rows(("index", "sentence1", "sentence_2", "label")))
    assert glue.main(["RTE", str(tmp_path), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert f"error: {tmp_path / 'RTE' / 'dev.tsv'}: header lacks column 'sentence2'" in err

    write(tmp_path / "RTE", "dev.tsv", rows(header, ("0", "a", "b", "yes")))
    assert glue.main(["RTE", str(tmp_path), str(tmp_path / "out")]) == 1
    assert (
        f"error: {tmp_path / 'RTE' / 'dev.tsv'}: no usable rows (1 data rows read, 1 skipped: line 2: "
        "label 'yes' not in {entailment, not_entailment})"
    ) in capsys.readouterr().err

    assert glue.main(["XNLI", str(tmp_path), str(tmp_path / "out")]) == 1
    assert "unknown GLUE task 'XNLI'" in capsys.readouterr().err
    assert glue.main(["CoLA", str(tmp_path), str(tmp_path / "out")]) == 1
    assert "CoLA: no folder" in capsys.readouterr().err


def test_task_table_is_consistent():
    assert set(glue.ALL_TASKS) | {"WNLI"} == set(glue.TASKS)
    for name, task in glue.TASKS.items():
        assert task.name == name
        names = [s.name for s in task.splits]
        assert names[0] == "train" and "valid" in names
        assert all(s.required == (s.label is not None) for s in task.splits)
        assert all((s.sentence2 is None) == (not task.pair) for s in task.splits)
    assert glue.TASKS["MNLI"].num_classes == 3 and glue.TASKS["STS-B"].num_classes == 1
    assert glue.TASKS["STS-B"].regression and not glue.TASKS["RTE"].regression


def test_format_mrpc_from_the_corpus_files(tmp_path):
    header = BOM + "\t".join(MRPC_HEADER)
    train_txt = write(
        tmp_path,
        "msr_paraphrase_train.txt",
        "\r\n".join([header, '1\t10\t11\ta "b\tc', "0\t20\t21\td\te", "1\t30\t31\tf\tg"]) + "\r\n",
    )
    test_txt = write(tmp_path, "msr_paraphrase_test.txt", "\r\n".join([header, "1\t40\t41\th\ti"]) + "\r\n")
    dev_ids = write(tmp_path, "mrpc_dev_ids.tsv", "20\t21\n")
    proc = subprocess.run(
        [*FORMAT_MRPC, train_txt, test_txt, dev_ids, str(tmp_path / "glue" / "MRPC")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.strip() == "{'train': 2, 'dev': 1, 'test': 1}"
    assert (tmp_path / "glue" / "MRPC" / "dev.tsv").read_bytes().startswith(BOM.encode())
    results = parse_task("MRPC", str(tmp_path / "glue"))
    assert results["train"].examples == [('a "b', "c", "1"), ("f", "g", "1")]
    assert results["valid"].examples == [("d", "e", "0")]
    assert results["test"].examples == [("h", "i", None)]


# ---- BPE encoding and binarisation ------------------------------------------------------------


def test_binarize_mnli_valid1_and_stsb_regression_labels(tmp_path, tiny_bpe, capsys):
    from r3f_experiments.data import glue_binarize

    write_mnli(tmp_path / "glue")
    raw, bin_dir = tmp_path / "raw", tmp_path / "MNLI-bin"
    assert glue.main(["MNLI", str(tmp_path / "glue"), str(raw)]) == 0
    args = [
        "--encoder-json",
        tiny_bpe["BPE_ENCODER"],
        "--vocab-bpe",
        tiny_bpe["BPE_VOCAB"],
        "--dict",
        tiny_bpe["ROBERTA_DICT"],
    ]
    assert glue_binarize.main(["MNLI", str(raw), str(bin_dir), *args, "--workers", "2"]) == 0  # with a Pool
    for sub in ("input0", "input1"):
        assert sorted(f for f in os.listdir(bin_dir / sub) if f.endswith(".bin")) == [
            "test.bin",
            "train.bin",
            "valid.bin",
            "valid1.bin",
        ]
    assert sorted(f for f in os.listdir(bin_dir / "label") if f.endswith(".bin")) == [
        "train.bin",
        "valid.bin",
        "valid1.bin",
    ]
    # E. -> 'E' '.', F. -> 'F' '.'
    assert load_split(bin_dir, "input0", "valid1") == [f"{ord('E')} {ord('.')}"]
    assert load_split(bin_dir, "input1", "valid1") == [f"{ord('F')} {ord('.')}"]
    assert load_split(bin_dir, "label", "valid1") == ["contradiction"]
    assert load_split(bin_dir, "label", "valid") == ["neutral", "entailment"]
    assert (
        glue_binarize.train_flags(glue.TASKS["MNLI"], ["train", "valid", "valid1", "test"])
        == "--num-classes 3 --valid-subset valid,valid1"
    )

    write(
        tmp_path / "glue" / "STS-B",
        "train.tsv",
        rows(STSB_HEADER, stsb_row(0, "the a", "b", "3.800"), stsb_row(1, "c", "d", "5.000")),
    )
    write(tmp_path / "glue" / "STS-B", "dev.tsv", rows(STSB_HEADER, stsb_row(0, "e", "f", "0.25")))
    raw, bin_dir = tmp_path / "raw-stsb", tmp_path / "STS-B-bin"
    assert glue.main(["STS-B", str(tmp_path / "glue"), str(raw)]) == 0
    assert glue_binarize.main(["STS-B", str(raw), str(bin_dir), *args]) == 0
    assert (bin_dir / "label" / "train.label").read_text() == "0.76\n1\n"
    assert (bin_dir / "label" / "valid.label").read_text() == "0.05\n"
    assert not (bin_dir / "label" / "dict.txt").exists()
    assert load_split(bin_dir, "input0", "train") == ["257 32 97", "99"]  # 'the' merged, ' ' 'a'

    # a dictionary that is not the encoder's: refused before binarising
    small = write(tmp_path, "small_dict.txt", "".join(f"{i} 1\n" for i in range(50)))
    capsys.readouterr()
    assert glue_binarize.main(["STS-B", str(raw), str(tmp_path / "x"), *args[:4], "--dict", small]) == 1
    assert "lacks 7 of 8 BPE tokens (ids 97 98 99 100 101 102 257 ...)" in capsys.readouterr().err


# ---- scripts/glue/prepare.sh -------------------------------------------------------------------

RTE_HEADER = ("index", "sentence1", "sentence2", "label")
RTE_TRAIN = [
    ("the cat sat on the mat.", "a cat sat.", "entailment"),
    ("the dog ran home.", "the dog slept.", "not_entailment"),
    ('He said "the end.', "He spoke.", "entailment"),
    ("the sun is hot.", "the sun is cold.", "not_entailment"),
    ("birds fly south.", "birds move.", "entailment"),
    ("the river is dry.", "the river is full.", "not_entailment"),
]
RTE_DEV = [
    ("the cat sat.", "a cat sat.", "entailment"),
    ("the dog ran.", 'a "dog slept.', "not_entailment"),
    ("the sky is blue.", "the sky is red.", "not_entailment"),
]


def prepare(*args, env=None, timeout=300):
    return subprocess.run(
        ["bash", PREPARE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHON": sys.executable, "WORKERS": "1", **(env or {})},
    )


def test_prepare_without_glue_dir_explains_a_failed_download(tmp_path, tiny_bpe):
    proc = prepare("RTE", "", str(tmp_path / "out"), env={**tiny_bpe, "GLUE_URL": "http://127.0.0.1:1"})
    assert proc.returncode != 0
    assert "could not download http://127.0.0.1:1/RTE.zip" in proc.stderr
    assert "pass its folder: bash scripts/glue/prepare.sh TASK GLUE_DIR" in proc.stderr
    assert not os.path.exists(tmp_path / "out" / "RTE-bin")

    (tmp_path / "glue").mkdir()  # apart from OUT_DIR: an OUT_DIR inside GLUE_DIR is refused first
    proc = prepare(
        "RTE",
        str(tmp_path / "glue"),
        str(tmp_path / "out"),
        env={"GPT2_BPE_URL": "http://127.0.0.1:1", "BPE_ENCODER": "", "BPE_VOCAB": "", "ROBERTA_DICT": ""},
    )
    assert proc.returncode != 0
    assert "could not download http://127.0.0.1:1/encoder.json" in proc.stderr
    assert "Set BPE_ENCODER, BPE_VOCAB and ROBERTA_DICT" in proc.stderr

    proc = prepare("XNLI", str(tmp_path), env=tiny_bpe)
    assert proc.returncode == 1 and "unknown TASK 'XNLI'" in proc.stderr


@pytest.mark.slow
def test_prepare_rte_end_to_end_then_fairseq_train(tmp_path, tiny_bpe):
    glue_dir, out = tmp_path / "glue_data", tmp_path / "glue_bin"
    write(glue_dir / "RTE", "train.tsv", rows(RTE_HEADER, *[(str(i), *r) for i, r in enumerate(RTE_TRAIN)]))
    write(
        glue_dir / "RTE",
        "dev.tsv",
        rows(RTE_HEADER, *[(str(i), *r) for i, r in enumerate(RTE_DEV)]),
    )
    proc = prepare("rte", str(glue_dir), str(out), env=tiny_bpe)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = proc.stdout.splitlines()
    assert ["train", "train.tsv", "6", "6", "0", "0"] in [line.split() for line in table]
    assert ["valid", "dev.tsv", "3", "3", "0", "0"] in [line.split() for line in table]
    assert table[-1] == f"RTE: {out / 'RTE-bin'} (train, valid); fairseq-train flags: --num-classes 2"

    data = out / "RTE-bin"
    for sub, files in (("input0", ["train", "valid"]), ("input1", ["train", "valid"]), ("label", ["train", "valid"])):
        for split in files:
            assert (data / sub / f"{split}.bin").is_file() and (data / sub / f"{split}.idx").is_file()
        assert (data / sub / "dict.txt").is_file()
    # ids: 'the' = 257 (merged), ' ' = 32, bytes = their value; fairseq's encoder, aligned line by line
    assert (out / "bpe" / "RTE" / "valid.input0").read_text().splitlines()[0] == " ".join(
        str(i) for i in [257, 32, *b"cat", 32, *b"sat", ord(".")]
    )
    assert load_split(str(data), "input1", "valid")[1] == " ".join(str(b) for b in b'a "dog slept.')
    assert load_split(str(data), "label", "valid") == [r[2] for r in RTE_DEV]
    assert len(load_split(str(data), "input0", "train")) == len(RTE_TRAIN)

    # the chain a researcher runs: prepare -> sweep (the real scripts/glue/train.sh, 2 seeds x
    # 2 methods, shrunk to a tiny model) -> report (Table 2 and a figure)
    tiny = [
        *ROBERTA_DIMS,
        "--cpu",
        "--num-workers",
        "0",
        "--batch-size",
        "4",
        "--max-update",
        "3",
        "--warmup-updates",
        "1",
        "--total-num-update",
        "3",
        "--log-interval",
        "1",
    ]
    command = (
        f"GLUE_BIN={out} ROBERTA= PRECISION= bash {os.path.join(REPO, 'scripts', 'glue', 'train.sh')} "
        "{task} {method} {seed} {save_dir} -- " + " ".join(tiny)
    )
    sweep_dir = tmp_path / "sweep"
    sweep = [sys.executable, "-m", "r3f_experiments.sweep"]
    proc = subprocess.run(
        [
            *sweep,
            "run",
            "--out-dir",
            str(sweep_dir),
            "--tasks",
            "RTE",
            "--methods",
            "std",
            "r3f",
            "--seeds",
            "1-2",
            "--command",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    proc = subprocess.run([*sweep, "report", "--out-dir", str(sweep_dir)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = (sweep_dir / "report" / "table2.md").read_text().split("\n## ")[0]
    for method in ("std", "r3f"):
        bests = []
        for seed in (1, 2):
            log = (sweep_dir / "RTE" / method / f"seed{seed}" / "train.log").read_text()
            assert "done training in" in log
            bests.append(max(float(r["valid_accuracy"]) for r in parse_valid_subsets(log)["valid"]))
        low, median, high = min(bests), sum(bests) / 2, max(bests)
        assert f"| {method} | {low:.1f} / {median:.1f} / {high:.1f} (2) |" in table
    figure = sweep_dir / "report" / "figure1.png"
    assert figure.stat().st_size > 0 and figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- bad input: refused before any work, or skipped and listed; nothing of the user's deleted -----


def write_sst2(folder, train=(("a gorgeous film", "1"), ("no wit", "0")), dev=(("a charming journey", "1"),)):
    write(folder, "train.tsv", rows(("sentence", "label"), *train))
    write(folder, "dev.tsv", rows(("sentence", "label"), *dev))


def test_header_only_splits_are_refused_naming_the_file(tmp_path):
    write_sst2(tmp_path / "SST-2", dev=())
    with pytest.raises(GlueFormatError, match=r"dev.tsv: no usable rows \(0 data rows read"):
        parse_task("SST-2", str(tmp_path))
    write_sst2(tmp_path / "SST-2", train=())
    with pytest.raises(GlueFormatError, match=r"SST-2/train.tsv: no usable rows"):
        parse_task("SST-2", str(tmp_path))


def test_sentences_without_a_visible_character_are_skipped_and_listed(tmp_path):
    write_sst2(
        tmp_path / "SST-2", train=(("a gorgeous film", "1"), ("\u200b\u200b", "0"), ("\x07 \x1b", "1"), ("no wit", "0"))
    )
    train = parse_task("SST-2", str(tmp_path))["train"]
    assert counts(train) == (4, 2, 2)
    assert [n for n, _ in train.skipped] == [3, 4]
    assert all("no visible character" in why for _, why in train.skipped)


def test_lines_that_encode_to_no_token_are_refused(tmp_path):
    from r3f_experiments.data.glue_binarize import check_no_empty_lines

    good, bad = write(tmp_path, "good.bpe", "31 42\n7\n"), write(tmp_path, "bad.bpe", "31 42\n\n7\n \n")
    check_no_empty_lines([good])
    with pytest.raises(GlueFormatError, match=r"bad.bpe: 2 line\(s\) encode to no token \(lines 2, 4\)"):
        check_no_empty_lines([good, bad])


def test_prepare_never_deletes_the_source_or_foreign_folders(tmp_path, tiny_bpe):
    out = tmp_path / "d"
    write_sst2(out / "raw" / "SST-2")  # GLUE_DIR = OUT_DIR/raw: the source is OUT_DIR/raw/SST-2
    proc = prepare("SST-2", str(out / "raw"), str(out), env=tiny_bpe)
    assert proc.returncode != 0 and "is, holds or lies inside the source folder" in proc.stderr
    assert sorted(os.listdir(out / "raw" / "SST-2")) == ["dev.tsv", "train.tsv"]

    source, foreign = tmp_path / "glue", tmp_path / "out" / "SST-2-bin"
    write_sst2(source / "SST-2")
    write(foreign, "notes.txt", "mine")
    proc = prepare("SST-2", str(source), str(tmp_path / "out"), env=tiny_bpe)
    assert proc.returncode != 0 and "exists and was not written by prepare.sh" in proc.stderr
    assert (foreign / "notes.txt").read_text() == "mine"


def test_prepare_download_mode_never_deletes_a_task_folder_it_did_not_download(tmp_path, tiny_bpe):
    """OUT_DIR/glue_data/TASK without the download's marker is the user's: it was deleted before the
    download (and offline nothing replaced it)."""
    out = tmp_path / "out"
    mine = out / "glue_data" / "SST-2"
    write_sst2(mine)
    proc = prepare("SST-2", "-", str(out), env={**tiny_bpe, "GLUE_URL": "http://127.0.0.1:1"})
    assert proc.returncode == 1
    assert f"{mine} exists and was not downloaded by prepare.sh" in proc.stderr
    assert "downloading" not in proc.stderr  # refused before any download
    assert sorted(os.listdir(mine)) == ["dev.tsv", "train.tsv"]
    assert os.listdir(out) == ["glue_data"] and os.listdir(out / "glue_data") == ["SST-2"]
    # the way on that the message names: the folder as GLUE_DIR
    advice = f"bash scripts/glue/prepare.sh SST-2 {out / 'glue_data'} {out}"
    assert advice in proc.stderr
    proc = prepare(*advice.split()[2:], env=tiny_bpe)
    assert proc.returncode == 0, proc.stderr
    assert (out / "SST-2-bin" / "input0" / "valid.bin").exists()
    assert sorted(os.listdir(mine)) == ["dev.tsv", "train.tsv"]


@contextlib.contextmanager
def served(folder):
    """FOLDER over HTTP on this machine (no network): yields the base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_prepare_downloads_into_a_marked_folder_and_reuses_it(tmp_path, tiny_bpe):
    site = tmp_path / "site"
    write_sst2(site / "SST-2")
    with zipfile.ZipFile(site / "SST-2.zip", "w") as archive:
        for name in ("train.tsv", "dev.tsv"):
            archive.write(site / "SST-2" / name, f"SST-2/{name}")
    out = tmp_path / "out"
    with served(site) as url:
        proc = prepare("SST-2", "-", str(out), env={**tiny_bpe, "GLUE_URL": url})
        assert proc.returncode == 0, proc.stderr
        assert f"downloading {url}/SST-2.zip" in proc.stderr
        assert os.listdir(out / "glue_data") == ["SST-2"]  # no temporary folder left
        assert sorted(os.listdir(out / "glue_data" / "SST-2")) == [".downloaded", "dev.tsv", "train.tsv"]
        proc = prepare("SST-2", "-", str(out), env={**tiny_bpe, "GLUE_URL": url})
        assert proc.returncode == 0, proc.stderr
        assert "downloading" not in proc.stderr  # the marked download is reused
    assert (out / "SST-2-bin" / "label" / "valid.bin").exists()


def test_prepare_never_writes_into_a_foreign_bpe_folder(tmp_path, tiny_bpe):
    """OUT_DIR/bpe/TASK is guarded as raw/TASK and TASK-bin are: BPE files were written into any
    folder found there."""
    source, out = tmp_path / "glue", tmp_path / "out"
    write_sst2(source / "SST-2")
    mine = out / "bpe" / "SST-2"
    write(mine, "train.input0", "my own ids\n")
    write(mine, "notes.txt", "mine")
    proc = prepare("SST-2", str(source), str(out), env=tiny_bpe)
    assert proc.returncode == 1
    assert f"SST-2: {mine} exists and was not written by prepare.sh" in proc.stderr
    assert (mine / "train.input0").read_text() == "my own ids\n" and (mine / "notes.txt").read_text() == "mine"
    assert os.listdir(out) == ["bpe"]  # refused before any work
    # holding only the BPE step's files (as written before the marker existed), it is rewritten, then marked
    (mine / "notes.txt").unlink()
    for _ in range(2):
        proc = prepare("SST-2", str(source), str(out), env=tiny_bpe)
        assert proc.returncode == 0, proc.stderr
        assert sorted(os.listdir(mine)) == [".written-by-prepare.sh", "train.input0", "valid.input0"]
        assert (mine / "train.input0").read_text() != "my own ids\n"
