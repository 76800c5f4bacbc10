#!/usr/bin/env python3
"""A task's data-bin with a fixed random subset of its training set: for a schedule a CPU can
afford on a large task (e.g. SST-2's 67k sentences), every other split kept whole.

    python -m r3f_experiments.subsample_bin GLUE_BIN TASK N OUT [--seed 0]

writes OUT/TASK-bin: train holds N examples of GLUE_BIN/TASK-bin's train, drawn with ``--seed``
and kept in their original order (input0, input1 and label rows stay aligned); the dictionaries
and every other split are copied byte for byte; OUT/TASK-bin/subsample.json records the source,
N, the seed and the rows taken. ``GLUE_BIN=OUT bash scripts/glue/train.sh TASK METHOD`` then
trains on the subset (PRESET=converged counts its epochs from it). OUT/TASK-bin must not exist.
"""

import argparse
import json
import os
import shutil
import sys
from typing import List

from .recipes.run_spec import RecipeError

FOLDERS = ("input0", "input1", "label")  # a sentence_prediction data-bin's parts


class SubsampleError(ValueError):
    """Inputs that cannot be subsampled as asked; raised before anything is written."""


def rows(size: int, n: int, seed: int) -> List[int]:
    """The ``n`` training rows kept: a seeded draw, in the order of the source."""
    import numpy as np

    return sorted(np.random.RandomState(seed).permutation(size)[:n].tolist())


def subsample(glue_bin: str, task: str, n: int, out: str, seed: int = 0) -> str:
    from fairseq.data import Dictionary, data_utils, indexed_dataset

    from .recipes.glue import train_size

    source = os.path.join(glue_bin, f"{task}-bin")
    target = os.path.join(out, f"{task}-bin")
    if not os.path.isfile(os.path.join(source, "input0", "dict.txt")):
        raise SubsampleError(f"{source}: not a data-bin (no input0/dict.txt; scripts/glue/prepare.sh writes one)")
    if os.path.exists(target):
        raise SubsampleError(f"{target} exists; it is never overwritten (remove it or choose another OUT)")
    size = train_size(source)
    if not 1 <= n < size:
        raise SubsampleError(f"N must be between 1 and the training set's {size - 1}, got {n}")
    kept = rows(size, n, seed)
    tmp = f"{target}.tmp{os.getpid()}"
    os.makedirs(out, exist_ok=True)
    for folder in (f for f in FOLDERS if os.path.isdir(os.path.join(source, f))):
        os.makedirs(os.path.join(tmp, folder))
        for name in os.listdir(os.path.join(source, folder)):
            if not name.startswith("train."):
                shutil.copy2(os.path.join(source, folder, name), os.path.join(tmp, folder, name))
        dictionary = Dictionary.load(os.path.join(source, folder, "dict.txt"))
        dataset = data_utils.load_indexed_dataset(os.path.join(source, folder, "train"), dictionary)
        if dataset is None or len(dataset) != size:
            shutil.rmtree(tmp)
            raise SubsampleError(f"{source}/{folder}/train: missing, or not {size} rows as input0/train")
        prefix = os.path.join(tmp, folder, "train")
        builder = indexed_dataset.make_builder(prefix + ".bin", impl="mmap", vocab_size=len(dictionary))
        for i in kept:
            builder.add_item(dataset[i])
        builder.finalize(prefix + ".idx")
    with open(os.path.join(tmp, "subsample.json"), "w") as f:
        json.dump({"source": os.path.abspath(source), "train": size, "kept": n, "seed": seed, "rows": kept}, f)
    os.rename(tmp, target)  # whole or not at all
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m r3f_experiments.subsample_bin",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("glue_bin", help="the folder holding TASK-bin")
    parser.add_argument("task")
    parser.add_argument("n", type=int, help="training examples to keep")
    parser.add_argument("out", help="OUT/TASK-bin is written")
    parser.add_argument("--seed", type=int, default=0, help="the draw of the subset (default 0)")
    args = parser.parse_args(argv)
    try:
        target = subsample(args.glue_bin, args.task, args.n, args.out, args.seed)
    except (SubsampleError, RecipeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"[subsample_bin] {target}: {args.n} training examples of {args.task}, the other splits whole")
    return 0


if __name__ == "__main__":
    sys.exit(main())
