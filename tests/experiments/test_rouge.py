"""ROUGE scoring (r3f_experiments.rouge): equal to rouge-score called directly, and clear errors
for misaligned or empty files."""

import json
import subprocess
import sys

import pytest

SCORE = [sys.executable, "-m", "r3f_experiments.rouge"]


PAIRS = [
    ("the cat sat on the mat. It was happy!", "the cat sat on a mat. It was glad."),
    ("police arrested two men running", "two men were arrested by the police"),
    ("", "an empty hypothesis scores zero"),
    ("Markets fell sharply. Oil rose 3%. Gold was flat.", "Oil rose. Markets fell. Gold flat."),
]


def test_scorer_agrees_with_rouge_score_called_directly():
    from rouge_score import rouge_scorer

    from r3f_experiments.rouge import score_pairs, split_sentences

    hyps, refs = zip(*PAIRS)
    ours = score_pairs(hyps, refs, ("rouge1", "rouge2", "rougeL", "rougeLsum"))
    direct = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    for rouge_type in ("rouge1", "rouge2", "rougeL"):
        want = 100 * sum(direct.score(r, h)[rouge_type].fmeasure for h, r in PAIRS) / len(PAIRS)
        assert ours[rouge_type] == pytest.approx(want, abs=1e-9)
    want = (
        100
        * sum(direct.score(split_sentences(r), split_sentences(h))["rougeLsum"].fmeasure for h, r in PAIRS)
        / len(PAIRS)
    )
    assert ours["rougeLsum"] == pytest.approx(want, abs=1e-9)
    assert split_sentences(PAIRS[3][0]) == "Markets fell sharply.\nOil rose 3%.\nGold was flat."
    # summary-level L differs from plain L when the sentence order differs
    assert ours["rougeLsum"] != pytest.approx(ours["rougeL"])
    same = score_pairs(refs, refs, ("rouge1", "rouge2", "rougeL", "rougeLsum"))
    assert same == {"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0, "rougeLsum": 100.0}


def test_score_py_refuses_misaligned_or_empty_files(tmp_path):
    hyp, ref, empty = tmp_path / "hyp", tmp_path / "ref", tmp_path / "empty"
    hyp.write_text("a b\nc d\n")
    ref.write_text("a b\n")
    empty.write_text("")

    def score(*paths):
        return subprocess.run([*SCORE, *map(str, paths)], capture_output=True, text=True)

    proc = score(hyp, ref)
    assert proc.returncode == 2 and f"{hyp} has 2 lines but {ref} has 1" in proc.stderr
    proc = score(empty, ref)
    assert proc.returncode == 2 and f"hypothesis file {empty} is empty" in proc.stderr
    proc = score(hyp, hyp, "--json", tmp_path / "s.json")
    assert proc.returncode == 0 and "rouge1=100.00 rouge2=100.00 rougeL=100.00" in proc.stdout
    assert json.loads((tmp_path / "s.json").read_text())["rougeL"] == 100.0
