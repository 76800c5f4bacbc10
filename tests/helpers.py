"""What the tests share besides fixtures: test-size model flags, a runner for fairseq's real
command-line tools, in-process builders of fairseq's task / model / criterion, and the reader
of fairseq's JSON logs. Imported as ``tests.helpers``."""

import argparse
import os
import socket
import subprocess
import sys

from r3f_experiments.fairseq_logs import parse_json_logs as fairseq_logs  # noqa: F401  (re-exported)
from r3f_experiments.fairseq_setup import TINY_BART_FLAGS, TINY_ROBERTA_FLAGS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USER_DIR = os.path.join(REPO, "fairseq_r3f")

# 2 layers, 64 dims: small enough for every test to train on CPU in seconds.
ROBERTA_DIMS = TINY_ROBERTA_FLAGS
TINY_ROBERTA = [*ROBERTA_DIMS, "--init-token", "0", "--separator-token", "2"]
TINY_BART = [*TINY_BART_FLAGS, "--add-prev-output-tokens"]  # BART as a classifier
CLASSIFICATION = [
    "--task",
    "sentence_prediction",
    "--num-classes",
    "2",
    "--max-positions",
    "64",
    "--optimizer",
    "adam",
    "--adam-betas",
    "(0.9,0.98)",
    "--lr",
    "1e-3",
    "--batch-size",
    "16",
    "--cpu",
    "--num-workers",
    "0",
    "--seed",
    "1",
    "--log-format",
    "json",
    "--log-interval",
    "5",
    "--no-epoch-checkpoints",
]


def tiny_recipe_flags(updates: int) -> list:
    """What a test appends to a recipe script (after ``--``) to run it on the tiny model, on CPU,
    for ``updates`` updates with one of warm-up."""
    return [
        *ROBERTA_DIMS,
        *["--max-positions", "64", "--cpu", "--num-workers", "0"],
        *["--max-update", str(updates), "--warmup-updates", "1", "--total-num-update", str(updates)],
    ]


def run_fairseq(
    tool: str, *args: str, cwd=None, timeout: int = 600, check: bool = True, env=None
) -> subprocess.CompletedProcess:
    """Run a fairseq console script (fairseq-train, fairseq-hydra-train, ...)."""
    exe = os.path.join(os.path.dirname(sys.executable), tool)
    proc = subprocess.run(
        [exe, *args],
        cwd=cwd,
        timeout=timeout,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{tool} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def build_in_process(data_dir: str, *args: str, base=CLASSIFICATION):
    """(cfg, task, model, criterion) built by fairseq from fairseq-train style flags
    (``base``: the task and training flags the test-size runs share)."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    parser = options.get_training_parser()
    argv = [data_dir, "--user-dir", USER_DIR, *base, *args]
    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(parser, argv))
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    return cfg, task, model, criterion


def valid_batch(task, split: str = "valid", size: int = 8):
    """The first ``size`` examples of ``split`` as one fairseq sample."""
    task.load_dataset(split)
    dataset = task.dataset(split)
    return dataset.collater([dataset[i] for i in range(size)])


def checkpoint_body():
    """The non-configuration part of a fairseq checkpoint (weights, extra state, history)."""
    import torch

    return {
        "model": {"w": torch.ones(2, 2)},
        "extra_state": {"epoch": 3},
        "optimizer_history": [
            {"criterion_name": "MaskedLmLoss", "optimizer_name": "FairseqAdam", "best_loss": 2.0, "num_updates": 500000}
        ],
    }


def published_style_checkpoint(path, **extra):
    """Like the released RoBERTa/XLM-R/BART model.pt: weights plus an argparse.Namespace."""
    import torch

    args = argparse.Namespace(
        arch="roberta_large", lr=[1e-5], adam_betas="(0.9, 0.98)", dropout=0.1, max_positions=512, fp16=True, seed=1
    )
    torch.save({"args": args, **checkpoint_body(), **extra}, path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def launch_workers(tool: str, args: list, out_dir: str, world_size: int = 2, timeout: int = 600) -> list:
    """Run ``tool`` as ``world_size`` gloo workers on this machine; returns each rank's log.

    One process per rank with an explicit ``--distributed-rank`` (see module docstring
    for why fairseq's spawn and torchrun paths do not work without GPUs).
    """
    exe = os.path.join(os.path.dirname(sys.executable), tool)
    init = f"tcp://localhost:{free_port()}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs, paths = [], []
    for rank in range(world_size):
        path = os.path.join(out_dir, f"rank{rank}.log")
        with open(path, "w") as log:
            procs.append(
                subprocess.Popen(
                    [
                        exe,
                        *args,
                        "--distributed-world-size",
                        str(world_size),
                        "--distributed-rank",
                        str(rank),
                        "--distributed-init-method",
                        init,
                        "--distributed-no-spawn",
                        "--distributed-backend",
                        "gloo",
                        "--ddp-backend",
                        "legacy_ddp",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    text=True,
                    env=env,
                )
            )
        paths.append(path)
    try:
        codes = [p.wait(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    logs = [open(p).read() for p in paths]
    if any(codes):
        tails = "\n".join(f"--- rank {r} (exit {c}) ---\n{log[-5000:]}" for r, (c, log) in enumerate(zip(codes, logs)))
        raise AssertionError(f"{tool} with {world_size} workers failed:\n{tails}")
    return logs


def json_records(log: str, tag: str) -> list:
    """fairseq's json records of kind ``tag`` (train_inner, train, valid), values as floats."""
    return [{k: float(v) for k, v in record.items()} for record in fairseq_logs(log)[tag]]


def load_split(bin_dir, sub, split):
    """The sentences of a binarised split (``bin_dir/sub/split``), as fairseq's dictionary prints them."""
    from fairseq.data import Dictionary, data_utils

    dictionary = Dictionary.load(os.path.join(bin_dir, sub, "dict.txt"))
    dataset = data_utils.load_indexed_dataset(os.path.join(bin_dir, sub, split), dictionary)
    return [dictionary.string(dataset[i]) for i in range(len(dataset))]
