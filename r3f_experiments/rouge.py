"""ROUGE-1/2/L (and Lsum) of a hypothesis file against a reference file, with Google's
``rouge-score`` package (a re-implementation of ROUGE-1.5.5; Porter stemming on, as in
the BART and PEGASUS evaluations).

Scores are F-measures averaged over the lines, x 100. ``rougeLsum`` is summary-level
ROUGE-L: it treats each sentence of a summary separately, so both sides are split into
sentences first (``split_sentences``). The paper's CNN/DailyMail R-L is this summary-level
variant (the files2rouge / ROUGE-1.5.5 pipeline BART used splits sentences too).

    python -m r3f_experiments.rouge HYPOTHESES REFERENCES [--lsum] [--json OUT]

prints the F-measures (one summary per line in each file) and exits with a clear error when a
file is empty or the two differ in their number of lines.
"""

import argparse
import json
import re
import sys
from typing import Dict, List, Sequence

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
LSUM = "rougeLsum"

# A sentence ends at . ! or ? (optionally followed by closing quotes or brackets) before
# whitespace and an upper-case letter, digit or opening quote. An approximation of
# NLTK's Punkt splitter, whose model files cannot be fetched offline.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


class RougeInputError(ValueError):
    """The hypothesis and reference files cannot be scored as given."""


def split_sentences(text: str) -> str:
    """``text`` with one sentence per line, the form rouge-score's rougeLsum expects."""
    return "\n".join(s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip())


def read_lines(path: str, what: str) -> List[str]:
    """The lines of ``path`` (one summary per line), refusing an empty file."""
    with open(path, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f]
    if not lines:
        raise RougeInputError(f"{what} file {path} is empty")
    return lines


def score_pairs(
    hypotheses: Sequence[str],
    references: Sequence[str],
    rouge_types: Sequence[str] = ROUGE_TYPES,
    use_stemmer: bool = True,
) -> Dict[str, float]:
    """Mean F-measure x 100 per ROUGE type over aligned (hypothesis, reference) pairs."""
    from rouge_score import rouge_scorer

    if len(hypotheses) != len(references):
        raise RougeInputError(
            f"{len(hypotheses)} hypotheses but {len(references)} references: the files must be aligned line by line"
        )
    if not hypotheses:
        raise RougeInputError("nothing to score: no hypothesis/reference pairs")
    scorer = rouge_scorer.RougeScorer(list(rouge_types), use_stemmer=use_stemmer)
    totals = dict.fromkeys(rouge_types, 0.0)
    for hypothesis, reference in zip(hypotheses, references):
        if LSUM in rouge_types:
            hypothesis, reference = split_sentences(hypothesis), split_sentences(reference)
        # rouge-score's argument order is (target, prediction)
        for rouge_type, score in scorer.score(reference, hypothesis).items():
            totals[rouge_type] += score.fmeasure
    return {t: 100.0 * v / len(hypotheses) for t, v in totals.items()}


def score_files(
    hypothesis_path: str, reference_path: str, rouge_types: Sequence[str] = ROUGE_TYPES
) -> Dict[str, float]:
    """``score_pairs`` over two files with one summary per line."""
    hypotheses = read_lines(hypothesis_path, "hypothesis")
    references = read_lines(reference_path, "reference")
    if len(hypotheses) != len(references):
        raise RougeInputError(
            f"{hypothesis_path} has {len(hypotheses)} lines but {reference_path} has "
            f"{len(references)}: the files must be aligned line by line"
        )
    return score_pairs(hypotheses, references, rouge_types)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m r3f_experiments.rouge",
        description="ROUGE F-measures of a hypothesis file against a reference file",
    )
    parser.add_argument("hypotheses")
    parser.add_argument("references")
    parser.add_argument("--lsum", action="store_true", help="also rougeLsum (sentence-split)")
    parser.add_argument("--json", help="also write the scores to this JSON file")
    args = parser.parse_args(argv)
    rouge_types = ROUGE_TYPES + ((LSUM,) if args.lsum else ())
    try:
        scores = score_files(args.hypotheses, args.references, rouge_types)
    except (RougeInputError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(" ".join(f"{t}={v:.2f}" for t, v in scores.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(scores, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
