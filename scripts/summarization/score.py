#!/usr/bin/env python3
"""Score a hypothesis file against a reference file (one summary per line) with ROUGE.

    python scripts/summarization/score.py HYPOTHESES REFERENCES [--lsum] [--json OUT]

Prints ROUGE-1/2/L F-measures (mean over lines, x 100; Porter stemming as in BART's
evaluation); ``--lsum`` adds summary-level ROUGE-Lsum with sentence splitting (the R-L
reported for CNN/DailyMail). Exits with a clear error when a file is empty or the two
files differ in their number of lines.
"""

import argparse
import importlib.util
import json
import os
import sys

# fairseq_r3f/rouge.py loaded by path: importing the package would import fairseq (seconds).
_spec = importlib.util.spec_from_file_location(
    "fairseq_r3f_rouge",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fairseq_r3f", "rouge.py"),
)
rouge = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rouge)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("hypotheses")
    parser.add_argument("references")
    parser.add_argument("--lsum", action="store_true", help="also rougeLsum (sentence-split)")
    parser.add_argument("--json", help="also write the scores to this JSON file")
    args = parser.parse_args(argv)
    rouge_types = rouge.ROUGE_TYPES + ((rouge.LSUM,) if args.lsum else ())
    try:
        scores = rouge.score_files(args.hypotheses, args.references, rouge_types)
    except (rouge.RougeInputError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(" ".join(f"{t}={v:.2f}" for t, v in scores.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(scores, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
