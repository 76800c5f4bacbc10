"""The cost of robust fine-tuning methods per training step (the paper's Table 1, measured).

Standard fine-tuning, R3F (its modes), R4F, SMART and FreeLB train the same model on the same
data with the same seed, each in its own process through fairseq's own trainer
(``step_time`` does the runs; this script picks the configs). For each:

- forward / backward passes per step, counted by hooks on the encoder's last layer during the
  last warm-up step (``r3f_experiments.bench.pass_counter``: a backward is a gradient reaching a pass's
  output, from ``loss.backward()`` or ``torch.autograd.grad``; a stacked batch of 2n counts 2);
- step time and peak memory, as ratios to standard.

    standard         fairseq's sentence_prediction                      (1 fwd + 1 bwd)
    r3f              sentence_prediction_r3f, default (--r3f-passes auto: stacked on CUDA, two on CPU)
    r3f-two          --r3f-passes two                                   (2 + 2)
    r3f-one-sided    --r3f-one-sided (noised pass without graph)        (2 + 1: the paper's count)
    r3f-stacked      --r3f-passes stacked (one batch of 2n)             (2 + 2, as one pass)
    r4f              r3f + --spectral-norm-classification-head
    smart-K1/K2      sentence_prediction_smart --smart-steps K          (K + 2 each)
    freelb-K1/K2/K3  --task sentence_prediction_adv --adv-steps K       (K + 1 each)

CPU (default: 2-layer, 64-dim RoBERTa, one torch thread per run):

    python -m r3f_experiments.bench.cost --repeats 3

GPU (RoBERTa-large, random init, half precision; every measure synchronises the device
before reading the clock, peak memory is torch.cuda.max_memory_allocated):

    python -m r3f_experiments.bench.cost --arch roberta_large --fp16 --device cuda --batch-size 16 --seq-len 120
"""

import argparse
import logging
import sys

from ..paths import plugin_dir
from . import step_time  # the runs, timing and memory

R3F = ["--criterion", "sentence_prediction_r3f", "--r3f-lambda", "1.0", "--eps", "1e-5", "--noise-type", "uniform"]
R3F += step_time.NO_DIAGNOSTICS  # the method alone (diagnostics_cost times the diagnostics)
# SMART: MT-DNN's defaults (lambda_s 1, eta 1e-3, sigma 1e-5, inf-norm); FreeLB: the authors'
# MNLI settings for RoBERTa-large (adv-lr 0.1, init mag 0.1, max norm 0.3, l2). The cost does
# not depend on these values, only on K.
SMART = ["--criterion", "sentence_prediction_smart", "--smart-lambda", "1.0"]
FREELB = [
    "--task",
    "sentence_prediction_adv",
    "--criterion",
    "sentence_prediction",
    "--adv-lr",
    "0.1",
    "--adv-init-mag",
    "0.1",
    "--adv-max-norm",
    "0.3",
]
CONFIGS = {
    "standard": ["--criterion", "sentence_prediction"],
    "r3f": R3F,
    "r3f-one-sided": R3F + ["--r3f-one-sided"],
    "r3f-two": R3F + ["--r3f-passes", "two"],
    "r3f-stacked": R3F + ["--r3f-passes", "stacked"],
    "r4f": R3F + ["--spectral-norm-classification-head"],
    **{f"smart-K{k}": SMART + ["--smart-steps", str(k)] for k in (1, 2)},
    **{f"freelb-K{k}": FREELB + ["--adv-steps", str(k)] for k in (1, 2, 3)},
}
USER_DIR = plugin_dir()


def fairseq_args(config: str, data_bin: str, opts) -> list:
    # --user-dir for every config (standard too), so every run imports the same code
    return step_time.base_args(data_bin, opts) + ["--user-dir", USER_DIR] + CONFIGS[config]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    step_time.add_run_options(p)
    p.add_argument("--only", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    opts = p.parse_args()
    if opts.warmup < 1:
        p.error("--warmup must be >= 1: the passes are counted in the last warm-up step")
    step_time.complete_options(p, opts, list(CONFIGS))
    opts.count_passes = True
    return opts


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    opts = parse_args()
    step_time.run_and_report(opts, lambda config, data_bin: fairseq_args(config, data_bin, opts))


if __name__ == "__main__":
    main()
