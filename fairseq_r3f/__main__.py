"""``python -m fairseq_r3f --flags``: every flag the plugin adds, with its help text and default
(``fairseq-train --help`` cannot list them, see ``flags``)."""

import argparse
import sys

from .flags import listing


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fairseq_r3f", description=__doc__.split("\n\n")[0])
    parser.add_argument("--flags", action="store_true", help="list the flags of the plugin's criterions, tasks and BPE")
    args = parser.parse_args(argv)
    if not args.flags:
        parser.print_help()
        return 2
    sys.stdout.write(listing())
    return 0


if __name__ == "__main__":
    sys.exit(main())
