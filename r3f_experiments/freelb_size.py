#!/usr/bin/env python3
"""How large FreeLB's projection radius is against the sentences it perturbs, on one encoder.

    python -m r3f_experiments.freelb_size CONVERTED GLUE_BIN [TASK ...] [--max-norm X] [--split train]

FreeLB's ``--adv-max-norm`` is an l2 norm over a whole sentence (tokens x width), so one setting
is a different perturbation on encoders whose token embeddings differ in scale or width. For
each TASK-bin in GLUE_BIN (all of them by default) this prints, over the split's sentences as
the recipes feed them (``<s>`` + first segment, then ``</s>`` + second segment, the recipes'
init and separator tokens), the ratio radius / ||e||, e the sentence's clean token embeddings
from CONVERTED/model.pt: median [10th, 90th percentile]. The radius is the recipe's per-task
value (the FreeLB authors' settings) or ``--max-norm``. A training run logs what it reached
as ``adv_to_embed``.
"""

import argparse
import os
import sys
from typing import Dict, List, Optional, Sequence

from .recipes.run_spec import RecipeError
from .trim_vocab import TrimError, task_bins


def sentence_tokens(data_bin: str, split: str, dictionary):
    """Each example of DATA_BIN's SPLIT as one token list, as sentence_prediction concatenates it."""
    from fairseq.data import data_utils

    parts = []
    for folder in ("input0", "input1"):
        path = os.path.join(data_bin, folder)
        if os.path.isdir(path):
            dataset = data_utils.load_indexed_dataset(os.path.join(path, split), dictionary)
            if dataset is None:
                raise TrimError(f"{path} has no split {split}")
            parts.append(dataset)
    if not parts:
        raise TrimError(f"{data_bin} is not a classification data-bin (no input0/)")
    starts = (dictionary.bos(), dictionary.eos())  # the recipes' init_token 0 and separator_token 2
    for i in range(len(parts[0])):
        yield [t for start, part in zip(starts, parts) for t in [start, *part[i].tolist()]]


def radius_ratios(embedding, sentences, radius: float) -> List[float]:
    """radius / ||e|| for each sentence's token ids (embedding: the (vocabulary, width) matrix)."""
    import torch

    return [radius / embedding[torch.tensor(ids)].float().norm().clamp(min=1e-30).item() for ids in sentences]


def sizes(converted: str, glue_bin: str, tasks: Sequence[str] = (), max_norm: Optional[float] = None, split="train"):
    """{task: (radius, [radius / ||e|| per sentence])}; every task checked before any is read."""
    import torch
    from fairseq.data import Dictionary

    from fairseq_r3f.checkpoint_safety import allow_fairseq_checkpoints

    from .recipes.glue import ADV_MAX_NORM

    bins = task_bins(glue_bin, tasks)
    if max_norm is None:
        unknown = [t for t in bins if t not in ADV_MAX_NORM]
        if unknown:
            raise RecipeError(
                f"FreeLB has no per-task max norm for {' '.join(unknown)} (the authors' settings cover "
                f"{' '.join(ADV_MAX_NORM)}); give one with --max-norm"
            )
    elif not max_norm > 0:
        raise RecipeError(f"--max-norm must be > 0, got {max_norm}")
    model = os.path.join(converted, "model.pt")
    if not os.path.isfile(model):
        raise TrimError(f"{converted} has no model.pt: not a folder of python -m r3f_experiments.convert_hf")
    allow_fairseq_checkpoints()
    state = torch.load(model, map_location="cpu")["model"]
    embedding = state["encoder.sentence_encoder.embed_tokens.weight"]
    out: Dict[str, tuple] = {}
    for task, data_bin in bins.items():
        dictionary = Dictionary.load(os.path.join(data_bin, "input0", "dict.txt"))
        radius = max_norm if max_norm is not None else float(ADV_MAX_NORM[task])
        out[task] = (radius, radius_ratios(embedding, sentence_tokens(data_bin, split, dictionary), radius))
    return out


def table(found: Dict[str, tuple]) -> str:
    import numpy as np

    lines = ["| task | max norm | sentences | radius / ‖e‖, median [10th, 90th percentile] |", "|---|---|---|---|"]
    for task, (radius, ratios) in found.items():
        p10, p50, p90 = (100 * np.percentile(ratios, q) for q in (10, 50, 90))
        lines.append(f"| {task} | {radius:g} | {len(ratios)} | {p50:.1f}% [{p10:.1f}, {p90:.1f}] |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m r3f_experiments.freelb_size",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("converted", help="a folder of python -m r3f_experiments.convert_hf (model.pt)")
    parser.add_argument("glue_bin", help="the folder holding TASK-bin folders")
    parser.add_argument("tasks", nargs="*", help="tasks to measure (default: every TASK-bin)")
    parser.add_argument("--max-norm", type=float, help="the radius (default: the recipe's per-task value)")
    parser.add_argument("--split", default="train", help="the split whose sentences are measured (default train)")
    args = parser.parse_args(argv)
    try:
        found = sizes(args.converted, args.glue_bin, args.tasks, args.max_norm, args.split)
    except (TrimError, RecipeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(table(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
