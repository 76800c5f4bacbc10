"""Per-step training time and peak memory of summarization fine-tuning (BART, --task translation):

    standard    fairseq's --criterion label_smoothed_cross_entropy
    reference   the authors' label_smoothed_cross_entropy_r3f (fairseq/examples/rxf/rxf_src)
    ours        this plugin's label_smoothed_cross_entropy_r3f (--user-dir fairseq_r3f)

The runs, timing, memory and the table are ``step_time``'s (each config in
its own process, fairseq's own Trainer.train_step); only the data and the command lines differ.
Every source has ``--seq-len`` tokens (</s> included) and every target ``--target-len``, so all
batches are equal.

    python -m r3f_experiments.bench.seq2seq_step_time --repeats 3                     # CPU, tiny BART
    python -m r3f_experiments.bench.seq2seq_step_time --arch bart_large --fp16 --batch-size 8 \\
        --seq-len 512 --target-len 64                                        # GPU
"""

import argparse
import logging
import os
import random
import sys

from ..fairseq_setup import TINY_BART_FLAGS
from ..paths import plugin_dir
from . import step_time  # the runs, timing and memory

CONFIGS = ("standard", "reference", "ours")
# the recipes' criterion settings (scripts/summarization/common.sh); lambda does not change the cost
CRITERION_ARGS = ["--label-smoothing", "0.1"]
R3F_ARGS = ["--eps", "1e-5", "--r3f-lambda", "1.0", "--noise-type", "uniform"]


def seq2seq_data(target_len: int):
    """A ``make_data`` for step_time.run_and_report: random source/target word pairs,
    binarised with one joined dictionary (BART shares its embeddings)."""

    def make(root: str, batch_size: int, seq_len: int, n_batches: int, seed: int) -> str:
        from r3f_experiments.data.preprocess import preprocess

        rng = random.Random(seed)
        raw, data_bin = os.path.join(root, "raw"), os.path.join(root, "bin")
        os.makedirs(raw)
        n = batch_size * n_batches
        for side, length in (("src", seq_len - 1), ("tgt", target_len - 1)):  # -1: </s>
            with open(os.path.join(raw, f"train.{side}"), "w") as f:
                for _ in range(n):
                    f.write(" ".join(rng.choice(step_time.VOCAB) for _ in range(length)) + "\n")
        preprocess(
            "--source-lang",
            "src",
            "--target-lang",
            "tgt",
            "--trainpref",
            os.path.join(raw, "train"),
            "--destdir",
            data_bin,
            "--joined-dictionary",
            only_source=False,
        )
        return data_bin

    return make


def fairseq_args(config: str, data_bin: str, opts, fairseq_dir: str) -> list:
    argv = [
        data_bin,
        "--task",
        "translation",
        "--source-lang",
        "src",
        "--target-lang",
        "tgt",
        *(TINY_BART_FLAGS if opts.arch == "tiny" else ["--arch", opts.arch]),
        "--max-source-positions",
        "1024",
        "--max-target-positions",
        "1024",
        *step_time.step_flags(opts),
        *CRITERION_ARGS,
    ]
    if config == "standard":
        return argv + ["--criterion", "label_smoothed_cross_entropy"]
    user_dir = os.path.join(fairseq_dir, "examples", "rxf", "rxf_src") if config == "reference" else plugin_dir()
    argv += ["--user-dir", user_dir, "--criterion", "label_smoothed_cross_entropy_r3f", *R3F_ARGS]
    return argv if config == "reference" else argv + step_time.NO_DIAGNOSTICS


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    step_time.add_run_options(
        p, archs=("tiny", "bart_base", "bart_large"), tiny="bart_base with 2 + 2 layers of 64 dims"
    )
    p.add_argument("--target-len", type=int, default=32, help="target tokens, </s> included")
    p.add_argument("--only", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    opts = p.parse_args()
    step_time.complete_options(p, opts, CONFIGS)
    if opts.target_len < 2:
        p.error("--target-len counts </s>: it must be at least 2")

    import fairseq

    fairseq_dir = os.path.dirname(fairseq.__file__)
    step_time.run_and_report(
        opts,
        lambda config, data_bin: fairseq_args(config, data_bin, opts, fairseq_dir),
        data_maker=seq2seq_data(opts.target_len),
    )


if __name__ == "__main__":
    main()
