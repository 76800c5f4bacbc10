"""WordPiece-encode text for a model converted from Hugging Face BERT.

    python -m r3f_experiments.data.wordpiece FOLDER < text > tokens

One line of WordPiece token strings per input line (see ``fairseq_r3f.wordpiece``); FOLDER is
the output of ``python -m r3f_experiments.convert_hf`` or a Hugging Face BERT folder.
"""

import sys


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__.split("\n\n")[1].strip(), file=sys.stderr)
        return 2
    from fairseq_r3f.wordpiece import WordPiece  # registers the BPE with fairseq: only when encoding

    for line in WordPiece(argv[0]).encode_lines(sys.stdin):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
