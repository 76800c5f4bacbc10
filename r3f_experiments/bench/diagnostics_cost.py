"""What R3F's diagnostics cost: a diagnosed training step against a plain one, interleaved.

    python -m r3f_experiments.bench.diagnostics_cost [--arch tiny|roberta_base] [--pairs 20] [--interval 100]

Builds the model and ``sentence_prediction_r3f`` in this process (fairseq's own builders, on a
synthetic task), then times pairs of training steps (forward, backward) on the same batch: one
with the diagnostics due, one without, in alternating order. Prints per-pair ratios of process
CPU time (one thread: robust to other load on the machine), their median [min, max], and the
overhead they imply at ``--r3f-diagnostics-interval`` N: (ratio - 1) / N of the step time.
"""

import argparse
import os
import statistics
import tempfile
import time

import torch

from ..data.synthetic import make_task
from ..fairseq_setup import r3f_classifier_on


def build(data_dir: str, arch: str):
    built = r3f_classifier_on(data_dir, arch, 1e-5, load_train=True)
    return built.task, built.model.train(), built.criterion


def step_seconds(criterion, model, sample, diagnose: bool) -> float:
    criterion.diagnostics.interval = 1 if diagnose else 0
    start = time.process_time()
    loss, _, _ = criterion(model, sample)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return time.process_time() - start


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(
        prog="python -m r3f_experiments.bench.diagnostics_cost", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--arch", default="tiny", choices=["tiny", "roberta_base"])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--interval", type=int, default=100, help="the interval whose overhead is reported")
    opts = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(1)
    with tempfile.TemporaryDirectory() as tmp:
        task, model, criterion = build(make_task(os.path.join(tmp, "data"), n_train=256, n_valid=16, seed=1), opts.arch)
        dataset = task.dataset("train")
        sample = dataset.collater([dataset[i] for i in range(opts.batch_size)])
        for diagnose in (True, False):  # warm-up
            step_seconds(criterion, model, sample, diagnose)
        ratios, plain = [], []
        for pair in range(opts.pairs):
            order = (True, False) if pair % 2 else (False, True)
            times = {d: step_seconds(criterion, model, sample, d) for d in order}
            ratios.append(times[True] / times[False])
            plain.append(times[False])
    median = statistics.median(ratios)
    text = (
        f"{opts.arch}, batch {opts.batch_size}, {len(sample['net_input']['src_tokens'][0])} tokens, 1 thread, "
        f"{opts.pairs} interleaved pairs\n"
        f"plain step (CPU time): median {statistics.median(plain) * 1000:.1f} ms\n"
        f"diagnosed / plain step: median {median:.2f}x [{min(ratios):.2f}, {max(ratios):.2f}]\n"
        f"overhead at --r3f-diagnostics-interval {opts.interval}: {100 * (median - 1) / opts.interval:.2f}% "
        f"[{100 * (min(ratios) - 1) / opts.interval:.2f}, {100 * (max(ratios) - 1) / opts.interval:.2f}] "
        "of the step time"
    )
    print(text)
    return text


if __name__ == "__main__":
    main()
