"""WordPiece-encode text for a model converted from Hugging Face BERT.

    python -m r3f_experiments.data.wordpiece FOLDER < text > tokens

One line of WordPiece token strings per input line (see ``fairseq_r3f.wordpiece``); FOLDER is
the output of ``python -m r3f_experiments.convert_hf`` or a Hugging Face BERT folder.
"""

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m r3f_experiments.data.wordpiece",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folder", metavar="FOLDER", help="the tokenizer's folder (convert_hf output or HF BERT)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    from fairseq_r3f.wordpiece import WordPiece  # registers the BPE with fairseq: only when encoding

    for line in WordPiece(args.folder).encode_lines(sys.stdin):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
