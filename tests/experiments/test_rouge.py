"""Summarization with R3F: the criterion's KL (pads, noise, normalisation), ROUGE scoring,
and the CNN/DailyMail recipe end to end on a tiny BART (prepare -> train -> resume ->
fairseq-generate -> score.py)."""

import json
import os
import random
import subprocess
import sys

import pytest
import torch

from tests.helpers import REPO, TINY_BART, build_in_process

SCORE = [sys.executable, "-m", "r3f_experiments.rouge"]
RECIPE = os.path.join(REPO, "scripts", "summarization", "cnn_dm")
WORDS = ["the", "cat", "dog", "ran", "sat", "red", "big", "sun", "hat", "box", "fox", "old",
         "new", "cup", "map", "pen", "car", "bus", "toy", "bed"]
# a tiny BART for --task translation (the sentence-prediction flag left out)
TINY_SEQ2SEQ = [f for f in TINY_BART if f != "--add-prev-output-tokens"]
SEQ2SEQ = [
    "--task", "translation", "--source-lang", "source", "--target-lang", "target",
    "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "4096", "--cpu", "--num-workers", "0",
    "--seed", "1", "--share-all-embeddings",
]
NO_DROPOUT = ["--dropout", "0", "--attention-dropout", "0", "--activation-dropout", "0"]


def write_jsonl(path, n, rng):
    """CNN/DailyMail-shaped records; the summary is the article's first four words."""
    with open(path, "w") as f:
        for _ in range(n):
            article = [rng.choice(WORDS) for _ in range(rng.randint(8, 14))]
            f.write(json.dumps({"article": " ".join(article) + " .",
                                "highlights": " ".join(article[:4]) + " ."}) + "\n")


def run_script(script, *args, env=None, timeout=600):
    proc = subprocess.run(["bash", script, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
    if proc.returncode != 0:
        raise AssertionError(f"{script} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, tiny_bpe):
    """The recipe's prepare.sh on synthetic JSONL with a local toy GPT-2 BPE."""
    root = tmp_path_factory.mktemp("cnn_dm")
    rng = random.Random(0)
    os.makedirs(root / "jsonl")
    for split, n in (("train", 160), ("valid", 16), ("test", 6)):
        write_jsonl(root / "jsonl" / f"{split}.jsonl", n, rng)
    run_script(os.path.join(RECIPE, "prepare.sh"), str(root / "jsonl"), str(root / "data"),
               env={**tiny_bpe, "WORKERS": "1"})
    return str(root / "data")


# ---- the criterion, in-process ---------------------------------------------------------------

def build(prepared, *flags):
    """(task, model, criterion) of a tiny BART with label_smoothed_cross_entropy_r3f."""
    torch.manual_seed(0)
    _, task, model, criterion = build_in_process(
        os.path.join(prepared, "bin"), *TINY_SEQ2SEQ, "--criterion", "label_smoothed_cross_entropy_r3f",
        "--label-smoothing", "0.1", *flags, base=SEQ2SEQ)
    task.load_dataset("valid")
    model.train()  # the noised pass runs in training mode only
    return task, model, criterion


def batch(task, indices):
    dataset = task.dataset("valid")
    return dataset.collater([dataset[i] for i in indices])


def run(criterion, model, sample, seed=0):
    torch.manual_seed(seed)  # the same noise draw for the same source batch
    _, sample_size, out = criterion(model, sample)
    return sample_size, out


def right_pad_targets(sample, extra, pad):
    """The same batch with ``extra`` more pad columns after every target."""
    padded = dict(sample, net_input=dict(sample["net_input"]))
    for holder, key in ((padded, "target"), (padded["net_input"], "prev_output_tokens")):
        t = holder[key]
        holder[key] = torch.cat([t, t.new_full((t.size(0), extra), pad)], dim=1)
    return padded










# ---- ROUGE ----------------------------------------------------------------------------------

PAIRS = [
    ("the cat sat on the mat. It was happy!", "the cat sat on a mat. It was glad."),
    ("police arrested two men running", "two men were arrested by the police"),
    ("", "an empty hypothesis scores zero"),
    ("Markets fell sharply. Oil rose 3%. Gold was flat.", "Oil rose. Markets fell. Gold flat."),
]






# ---- the recipe end to end ----------------------------------------------------------------------


def test_scorer_agrees_with_rouge_score_called_directly():
    from rouge_score import rouge_scorer

    from r3f_experiments.rouge import score_pairs, split_sentences

    hyps, refs = zip(*PAIRS)
    ours = score_pairs(hyps, refs, ("rouge1", "rouge2", "rougeL", "rougeLsum"))
    direct = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    for rouge_type in ("rouge1", "rouge2", "rougeL"):
        want = 100 * sum(direct.score(r, h)[rouge_type].fmeasure for h, r in PAIRS) / len(PAIRS)
        assert ours[rouge_type] == pytest.approx(want, abs=1e-9)
    want = 100 * sum(direct.score(split_sentences(r), split_sentences(h))["rougeLsum"].fmeasure
                     for h, r in PAIRS) / len(PAIRS)
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
