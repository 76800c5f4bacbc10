"""Make GLUE's MRPC files (train.tsv, dev.tsv, test.tsv) from the MSR Paraphrase Corpus files.

    python -m r3f_experiments.data.mrpc msr_paraphrase_train.txt msr_paraphrase_test.txt mrpc_dev_ids.tsv OUT_DIR

GLUE does not host MRPC; its download script takes the corpus from SentEval's copy and moves the
pairs listed in ``mrpc_dev_ids.tsv`` (``#1 ID<TAB>#2 ID`` per line) from the training file to
dev.tsv. train.tsv and dev.tsv keep the corpus's header line as it is, byte-order mark included
(the quirk ``r3f_experiments.data.glue`` strips); test.tsv gets GLUE's header
``index  #1 ID  #2 ID  #1 String  #2 String`` and no labels. Fields are split on tabs only.
Standard library only.
"""

import os
import sys


def _rows(path):
    with open(path, "rb") as f:
        data = f.read().decode("utf-8")
    lines = data.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def format_mrpc(train_txt: str, test_txt: str, dev_ids_tsv: str, out_dir: str) -> dict:
    """Write OUT_DIR/{train,dev,test}.tsv; returns the number of rows written to each."""
    dev_ids = {tuple(line.split("\t")[:2]) for line in _rows(dev_ids_tsv) if line.strip()}
    header, *rows = _rows(train_txt)
    os.makedirs(out_dir, exist_ok=True)
    counts = {"train": 0, "dev": 0, "test": 0}
    with (
        open(os.path.join(out_dir, "train.tsv"), "w", encoding="utf-8", newline="\n") as train,
        open(os.path.join(out_dir, "dev.tsv"), "w", encoding="utf-8", newline="\n") as dev,
    ):
        train.write(header + "\n")
        dev.write(header + "\n")
        for row in rows:
            fields = row.split("\t")
            split = "dev" if tuple(fields[1:3]) in dev_ids else "train"
            (dev if split == "dev" else train).write(row + "\n")
            counts[split] += 1
    _, *test_rows = _rows(test_txt)
    with open(os.path.join(out_dir, "test.tsv"), "w", encoding="utf-8", newline="\n") as test:
        test.write("index\t#1 ID\t#2 ID\t#1 String\t#2 String\n")
        for i, row in enumerate(test_rows):
            test.write("\t".join([str(i), *row.split("\t")[1:]]) + "\n")
            counts["test"] += 1
    return counts


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__.strip().split("\n\n")[1])
    print(format_mrpc(*sys.argv[1:]))
