"""A small synthetic sentence-classification task in GLUE layout, binarised for fairseq.

It is synthetic, not a real dataset: sentences are drawn from a made-up vocabulary of
neutral words (w*), positive cue words (p*) and negative cue words (n*); by default
(rule ``sentiment``) the label is 1 when a sentence holds more positive than negative
cue words. ``--words english`` draws the same sentences from English words instead
(neutral nouns, and sentiment adjectives as the cues), for a pretrained model with a real
vocabulary (the MiniLM demo); every one of them is a single WordPiece token of BERT's
uncased vocabulary. A tiny Transformer learns the task in a few hundred updates on a CPU,
which makes it a quick, honest check that fine-tuning works end to end. Also writes an
unlabelled corpus for masked-LM pre-training of a tiny model, with the same dictionary.

Other labelling rules (``RULES``) over the same sentences give distinct tasks;
``make_tasks`` binarises several of them with one shared dictionary, so that one model
can be fine-tuned on them in sequence and probed on each (the probing experiments).

    python -m r3f_experiments.data.synthetic OUT_DIR [--train N] [--valid N] [--seed S] [--rule R]
        [--words made-up|english] [--wordpiece CONVERTED_DIR]

writes OUT_DIR/raw/{train,valid}.{input0,label}, OUT_DIR/raw/pretrain.txt and the
fairseq binaries OUT_DIR/bin/{input0,label} (for --task sentence_prediction) and
OUT_DIR/bin/pretrain (for --task masked_lm).
"""

import argparse
import os
import random
import sys
from typing import Dict, Optional, Sequence

from .preprocess import preprocess

NEUTRAL = [f"w{i}" for i in range(40)]
POSITIVE = [f"p{i}" for i in range(8)]
NEGATIVE = [f"n{i}" for i in range(8)]
VOCABULARY = NEUTRAL + POSITIVE + NEGATIVE
ENGLISH_NEUTRAL = (
    "table window river car book street house city morning water chair paper train garden door "
    "phone road tree music film story room food school office dog computer letter bridge market "
    "station kitchen village season coffee plate shirt bottle picture island"
).split()
ENGLISH_POSITIVE = "good great excellent wonderful happy lovely perfect amazing".split()
ENGLISH_NEGATIVE = "bad awful terrible horrible sad poor boring ugly".split()
# (neutral, positive, negative) word lists by --words
VOCABULARIES = {
    "made-up": (NEUTRAL, POSITIVE, NEGATIVE),
    "english": (ENGLISH_NEUTRAL, ENGLISH_POSITIVE, ENGLISH_NEGATIVE),
}
# The rules read cue and topic words of either vocabulary.
CUES_POSITIVE = set(POSITIVE) | set(ENGLISH_POSITIVE)
CUES_NEGATIVE = set(NEGATIVE) | set(ENGLISH_NEGATIVE)
TOPIC = {"w0", "w1", "w2", *ENGLISH_NEUTRAL[:3]}  # P(a sentence holds one) is about 1/2
LONG = 13  # about half of the sentences have at least this many words


def _sentiment(words) -> int:
    return int(sum(w in CUES_POSITIVE for w in words) > sum(w in CUES_NEGATIVE for w in words))


def _first_cue(words) -> int:
    """Word order matters: is the first cue word positive? (every sentence holds one)"""
    return int(next(w for w in words if w in CUES_POSITIVE or w in CUES_NEGATIVE) in CUES_POSITIVE)


def _topic(words) -> int:
    return int(any(w in TOPIC for w in words))


def _length(words) -> int:
    return int(len(words) >= LONG)


def _sentiment_exception(words) -> int:
    """The sentiment, flipped in long sentences that hold a topic word (about a fifth of them):
    the cue words give most of the label and an interaction of two other rules the rest, so a
    pretrained encoder does not solve it in a few dozen updates (each rule alone, MiniLM learns
    to 97-100% in 80 updates)."""
    return _sentiment(words) ^ (_topic(words) & _length(words))


# Binary labelling rules over the same sentences: distinct tasks with one vocabulary.
RULES = {
    "sentiment": _sentiment,
    "first_cue": _first_cue,
    "topic": _topic,
    "length": _length,
    "sentiment_exception": _sentiment_exception,
}


def make_sentence(rng: random.Random, rule: str = "sentiment", words: str = "made-up") -> tuple:
    """(sentence, label); the random draws do not depend on the rule."""
    neutral, positive, negative = VOCABULARIES[words]
    while True:
        n_pos, n_neg = rng.randint(0, 3), rng.randint(0, 3)
        if n_pos != n_neg:
            break
    words = [rng.choice(neutral) for _ in range(rng.randint(4, 14))]
    words += [rng.choice(positive) for _ in range(n_pos)] + [rng.choice(negative) for _ in range(n_neg)]
    rng.shuffle(words)
    return " ".join(words), RULES[rule](words)


def write_raw(
    raw_dir: str, n_train: int, n_valid: int, seed: int, rule: str = "sentiment", words: str = "made-up"
) -> None:
    if rule not in RULES:
        raise ValueError(f"unknown synthetic rule {rule!r} (known: {', '.join(RULES)})")
    if words not in VOCABULARIES:
        raise ValueError(f"unknown synthetic vocabulary {words!r} (known: {', '.join(VOCABULARIES)})")
    rng = random.Random(seed)
    os.makedirs(raw_dir, exist_ok=True)
    for split, n in (("train", n_train), ("valid", n_valid)):
        pairs = [make_sentence(rng, rule, words) for _ in range(n)]
        with open(os.path.join(raw_dir, f"{split}.input0"), "w") as f:
            f.writelines(s + "\n" for s, _ in pairs)
        with open(os.path.join(raw_dir, f"{split}.label"), "w") as f:
            f.writelines(f"{y}\n" for _, y in pairs)
    with open(os.path.join(raw_dir, "pretrain.txt"), "w") as f:
        f.writelines(make_sentence(rng, words=words)[0] + "\n" for _ in range(4 * n_train))


def write_dictionary(path: str) -> str:
    """A fairseq dict.txt holding the whole vocabulary in a fixed order (shared by tasks)."""
    with open(path, "w") as f:
        f.writelines(f"{word} 1\n" for word in VOCABULARY)
    return path


def binarize(raw_dir: str, bin_dir: str, srcdict: Optional[str] = None) -> None:
    """fairseq-preprocess into the layout --task sentence_prediction / masked_lm read.

    Without ``srcdict`` the dictionary is built from the pre-training corpus."""
    pretrain = os.path.join(bin_dir, "pretrain")
    preprocess(
        "--trainpref",
        os.path.join(raw_dir, "pretrain.txt"),
        "--validpref",
        os.path.join(raw_dir, "valid.input0"),
        "--destdir",
        pretrain,
        *(["--srcdict", srcdict] if srcdict else []),
    )
    preprocess(
        "--trainpref",
        os.path.join(raw_dir, "train.input0"),
        "--validpref",
        os.path.join(raw_dir, "valid.input0"),
        "--destdir",
        os.path.join(bin_dir, "input0"),
        "--srcdict",
        os.path.join(pretrain, "dict.txt"),
    )
    preprocess(
        "--trainpref",
        os.path.join(raw_dir, "train.label"),
        "--validpref",
        os.path.join(raw_dir, "valid.label"),
        "--destdir",
        os.path.join(bin_dir, "label"),
    )


def make_task(
    out_dir: str,
    n_train: int = 2000,
    n_valid: int = 400,
    seed: int = 1,
    rule: str = "sentiment",
    srcdict: Optional[str] = None,
    words: str = "made-up",
    wordpiece: Optional[str] = None,
) -> str:
    """Write and binarise the task under ``out_dir``; returns the data-bin directory.

    With ``wordpiece`` (a ``r3f_experiments.convert_hf`` output folder) the sentences are
    WordPiece-encoded and binarised with that folder's dict.txt, as GLUE's SST-2 would be
    (``r3f_experiments.data.glue_binarize``), and no masked-LM corpus is binarised."""
    raw_dir, bin_dir = os.path.join(out_dir, "raw"), os.path.join(out_dir, "bin")
    write_raw(raw_dir, n_train, n_valid, seed, rule, words)
    if wordpiece:
        from .glue import task_spec
        from .glue_binarize import binarize as binarize_glue

        binarize_glue(task_spec("SST-2"), raw_dir, bin_dir, wordpiece=wordpiece)
    else:
        binarize(raw_dir, bin_dir, srcdict)
    return bin_dir


def make_tasks(
    out_dir: str, rules: Sequence[str], n_train: int = 2000, n_valid: int = 400, seed: int = 1
) -> Dict[str, str]:
    """One task per rule under ``out_dir/RULE``, all binarised with ``out_dir/dict.txt``;
    returns {rule: data-bin directory}. Each task draws its own sentences (seed + i)."""
    os.makedirs(out_dir, exist_ok=True)
    srcdict = write_dictionary(os.path.join(out_dir, "dict.txt"))
    return {
        rule: make_task(os.path.join(out_dir, rule), n_train, n_valid, seed + i, rule, srcdict)
        for i, rule in enumerate(rules)
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--train", type=int, default=2000, help="training sentences")
    parser.add_argument("--valid", type=int, default=400, help="validation sentences")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rule", default="sentiment", choices=sorted(RULES), help="labelling rule")
    parser.add_argument(
        "--words", choices=sorted(VOCABULARIES), default="made-up", help="made-up words (w*, p*, n*) or English words"
    )
    parser.add_argument(
        "--wordpiece",
        metavar="FOLDER",
        default=None,
        help="WordPiece-encode and binarise with FOLDER/dict.txt (python -m r3f_experiments.convert_hf output)",
    )
    args = parser.parse_args(argv)
    print(
        make_task(
            args.out_dir, args.train, args.valid, args.seed, args.rule, words=args.words, wordpiece=args.wordpiece
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
