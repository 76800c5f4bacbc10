"""Zero-shot XNLI end to end on a tiny multilingual fixture: parsing, a sentencepiece model the
test trains, prepare.sh, train.sh (R3F), evaluate.sh and Table 3's row."""

import os
import random
import re
import subprocess

import pytest

from r3f_experiments.data.xnli import read_eval, read_train
from r3f_experiments.fairseq_logs import parse_valid_subsets
from tests.helpers import REPO, fairseq_logs, tiny_recipe_flags

XNLI_HEADER = (
    "language gold_label sentence1_binary_parse sentence2_binary_parse sentence1_parse "
    "sentence2_parse sentence1 sentence2 promptID pairID genre label1 label2 label3 label4 "
    "label5 sentence1_tokenized sentence2_tokenized match"
).split()
WORDS = {
    "en": "the cat dog sees runs big small house".split(),
    "fr": "le chat chien voit court grand petit".split(),
    "de": "der katze hund sieht lauft gross klein".split(),
}
LABELS = ("entailment", "neutral", "contradiction")


def sentence(rng, lang):
    return " ".join(rng.choice(WORDS[lang]) for _ in range(rng.randint(3, 8)))


def write_fixture(root, per_language=24, n_train=96):
    rng = random.Random(0)
    xnli_dir = root / "XNLI-1.0"
    xnli_dir.mkdir()
    with open(xnli_dir / "xnli.dev.tsv", "w") as f:
        f.write("\t".join(XNLI_HEADER) + "\n")
        for lang in WORDS:
            for i in range(per_language):
                row = dict.fromkeys(XNLI_HEADER, "x")
                # an unbalanced quote must not confuse the parser (tab-split only)
                row.update(
                    language=lang,
                    gold_label=LABELS[i % 3],
                    sentence1='"' + sentence(rng, lang),
                    sentence2=sentence(rng, lang),
                    pairID=str(i),
                )
                f.write("\t".join(row[h] for h in XNLI_HEADER) + "\n")
    train = root / "multinli.train.en.tsv"
    with open(train, "w") as f:
        f.write("premise\thypo\tlabel\n")
        for i in range(n_train):
            label = ("entailment", "neutral", "contradictory")[i % 3]
            f.write(f"{sentence(rng, 'en')}\t{sentence(rng, 'en')}\t{label}\n")
    return xnli_dir, train


def tiny_xlmr(root):
    """A sentencepiece model trained here, and a fairseq dict.txt of its pieces (as XLM-R ships)."""
    import sentencepiece

    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(" ".join(words) for words in WORDS.values()) * 20 + "\n")
    xlmr = root / "xlmr"
    xlmr.mkdir()
    sentencepiece.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(xlmr / "sentencepiece.bpe"), vocab_size=60, model_type="bpe", minloglevel=2
    )
    sp = sentencepiece.SentencePieceProcessor(model_file=str(xlmr / "sentencepiece.bpe.model"))
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    (xlmr / "dict.txt").write_text("".join(f"{p} 1\n" for p in pieces if p not in ("<unk>", "<s>", "</s>")))
    return xlmr


def test_parsers_count_exactly_and_map_labels(tmp_path):
    xnli_dir, train = write_fixture(tmp_path)
    evaluation = read_eval(str(xnli_dir / "xnli.dev.tsv"))
    assert {lang: len(v) for lang, v in evaluation.items()} == {"en": 24, "fr": 24, "de": 24}
    assert evaluation["fr"][0][0].startswith('"le') or evaluation["fr"][0][0].startswith('"')
    examples = read_train(str(train))
    assert len(examples) == 96
    assert [e[2] for e in examples[:3]] == ["entailment", "neutral", "contradiction"]  # contradictory mapped


def test_parser_errors_name_the_problem(tmp_path):
    bad = tmp_path / "xnli.dev.tsv"
    bad.write_text("language\tsentence1\tsentence2\nen\ta\tb\n")
    with pytest.raises(ValueError, match="no column 'gold_label'"):
        read_eval(str(bad))
    bad.write_text("premise\thypo\tlabel\na\tb\n")
    with pytest.raises(ValueError, match=r":2: 2 fields, header has 3"):
        read_train(str(bad))
    bad.write_text("premise\thypo\tlabel\na\tb\tmaybe\n")
    with pytest.raises(ValueError, match="unknown label 'maybe'"):
        read_train(str(bad))


@pytest.mark.slow
def test_prepare_train_evaluate(tmp_path):
    """27 examples per language (not a multiple of 8): evaluate.sh scores each of them, and fails
    when fairseq-validate is made to drop a last partial batch (its default batch multiple of 8)."""
    xnli_dir, train = write_fixture(tmp_path, per_language=27)
    xlmr = tiny_xlmr(tmp_path)
    out = tmp_path / "xnli_bin"
    env = {**os.environ, "LANGUAGES": "en,fr,de", "PRECISION": "", "XLMR": ""}
    proc = subprocess.run(
        ["bash", os.path.join(REPO, "scripts", "xnli", "prepare.sh"), str(xnli_dir), str(train), str(xlmr), str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "valid2 (de): 27 examples" in proc.stdout and "train: 96 examples" in proc.stdout
    assert (out / "languages.txt").read_text().split() == ["en", "fr", "de"]
    assert (out / "input1" / "valid2.bin").exists()

    save = tmp_path / "save"
    tiny = tiny_recipe_flags(4)
    proc = subprocess.run(
        ["bash", os.path.join(REPO, "scripts", "xnli", "train.sh"), "r3f", "1", str(save), "--", *tiny],
        capture_output=True,
        text=True,
        env={**env, "XNLI_BIN": str(out)},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert float(fairseq_logs(proc.stdout + proc.stderr)["train"][-1]["train_symm_kl"]) > 0

    def evaluate(*extra):
        return subprocess.run(
            [
                "bash",
                os.path.join(REPO, "scripts", "xnli", "evaluate.sh"),
                str(save / "checkpoint_best.pt"),
                str(out),
                "--",
                "--cpu",
                "--num-workers",
                "0",
                *extra,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )

    proc = evaluate()
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "| en | fr | de | avg |"
    values = [float(v) for v in re.findall(r"[0-9.]+", lines[2])]
    assert len(values) == 4 and all(0 <= v <= 100 for v in values)
    assert values[3] == pytest.approx(sum(values[:3]) / 3, abs=0.06)
    # every example scored, in fairseq-validate's own count
    scored = parse_valid_subsets((save / "xnli_eval.log").read_text())
    assert {s: float(scored[s][-1][f"{s}_bsz"]) for s in ("valid", "valid1", "valid2")} == dict.fromkeys(
        ("valid", "valid1", "valid2"), 27
    )
    assert "every example scored: en 27, fr 27, de 27" in proc.stderr
    # fairseq's default multiple (8) drops 3 of each language's 27: the evaluation fails, naming the subset
    proc = evaluate("--required-batch-size-multiple", "8")
    assert proc.returncode == 1
    assert "valid (en): fairseq-validate scored 24 of the 27 examples" in proc.stderr, proc.stderr[-3000:]
    assert proc.stdout == ""
