"""Per-step training time and peak memory: standard fine-tuning against R3F (the authors'
reference and this plugin's modes), each in its own subprocess through fairseq's own trainer, on
synthetic batches of exactly --batch-size x --seq-len tokens.

    python -m r3f_experiments.bench.step_time --repeats 3

What each config is and how time and memory are measured: ``docs/cost.md``.
"""

import argparse
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

from ..fairseq_setup import TINY_ROBERTA_FLAGS, build_from_flags
from ..paths import plugin_dir

CONFIGS = ("standard", "reference", "ours", "ours-two", "ours-stacked", "ours-one-sided")
OUR_MODE_FLAGS = {
    "ours": [],
    "ours-two": ["--r3f-passes", "two"],
    "ours-stacked": ["--r3f-passes", "stacked"],
    "ours-one-sided": ["--r3f-one-sided"],
}
R3F_ARGS = ["--eps", "1e-5", "--r3f-lambda", "1.0", "--noise-type", "uniform"]
# The plugin's configs time the method alone: its diagnostics (extra passes at the first step, a
# warm-up step, and every 100th) have a benchmark of their own, diagnostics_cost.
NO_DIAGNOSTICS = ["--r3f-diagnostics-interval", "0"]
VOCAB = [f"w{i}" for i in range(100)]
MIB = 1024 * 1024


# ---------------------------------------------------------------- parent: data
def write_raw(raw_dir: str, n: int, words_per_sentence: int, seed: int) -> None:
    rng = random.Random(seed)
    with open(os.path.join(raw_dir, "train.input0"), "w") as f:
        for _ in range(n):
            f.write(" ".join(rng.choice(VOCAB) for _ in range(words_per_sentence)) + "\n")
    with open(os.path.join(raw_dir, "train.label"), "w") as f:
        f.writelines(f"{rng.randint(0, 1)}\n" for _ in range(n))


def binarize(raw_dir: str, bin_dir: str) -> None:
    """fairseq-preprocess into <bin>/input0 and <bin>/label, as --task sentence_prediction reads."""
    from r3f_experiments.data.preprocess import preprocess

    for name in ("input0", "label"):
        preprocess("--trainpref", os.path.join(raw_dir, f"train.{name}"), "--destdir", os.path.join(bin_dir, name))


def make_data(root: str, batch_size: int, seq_len: int, n_batches: int, seed: int) -> str:
    raw_dir, bin_dir = os.path.join(root, "raw"), os.path.join(root, "bin")
    os.makedirs(raw_dir)
    # Exactly n_batches full batches: one epoch covers every step, none is a short remainder.
    write_raw(raw_dir, batch_size * n_batches, seq_len - 2, seed)  # -2: <s> and </s>
    binarize(raw_dir, bin_dir)
    return bin_dir


# ---------------------------------------------------------------- parent: runs
def base_args(data_bin: str, opts) -> list:
    """The part of the fairseq-train command line every config shares (model, data, device)."""
    argv = [
        data_bin,
        "--task",
        "sentence_prediction",
        "--num-classes",
        "2",
        "--max-positions",
        "512",
        "--init-token",
        "0",
        "--separator-token",
        "2",
        *(TINY_ROBERTA_FLAGS if opts.arch == "tiny" else ["--arch", opts.arch]),
    ]
    return argv + step_flags(opts)


def step_flags(opts) -> list:
    """The optimiser, batch and device flags every timed config shares (classification or seq2seq)."""
    argv = ["--optimizer", "adam", "--lr", "1e-5", "--seed", "1", "--batch-size", str(opts.batch_size)]
    argv += ["--required-batch-size-multiple", "1", "--num-workers", "0"]
    return argv + ["--cpu"] * (opts.device == "cpu") + ["--fp16"] * opts.fp16 + ["--amp"] * opts.amp


def fairseq_args(config: str, data_bin: str, opts, fairseq_dir: str) -> list:
    """The fairseq-train command line of one config (without the program name)."""
    argv = base_args(data_bin, opts)
    if config == "standard":
        return argv + ["--criterion", "sentence_prediction"]
    user_dir = os.path.join(fairseq_dir, "examples", "rxf", "rxf_src") if config == "reference" else plugin_dir()
    return argv + [
        "--user-dir",
        user_dir,
        "--criterion",
        "sentence_prediction_r3f",
        *R3F_ARGS,
        *([] if config == "reference" else [*NO_DIAGNOSTICS, *OUR_MODE_FLAGS[config]]),
    ]


def run_one(config: str, argv: list, opts) -> dict:
    spec = {
        "config": config,
        "warmup": opts.warmup,
        "steps": opts.steps,
        "fairseq_args": argv,
        "count_passes": getattr(opts, "count_passes", False),
    }
    env = dict(os.environ)
    if opts.device == "cpu":
        env["OMP_NUM_THREADS"] = str(opts.threads)
    proc = subprocess.run(
        [sys.executable, "-m", "r3f_experiments.bench.step_time", "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{config} failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
    # fairseq may print to stdout too; the result is the last line.
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["batch_shapes"] != [[opts.batch_size, opts.seq_len]]:
        raise RuntimeError(
            f"{config}: batches of shape {result['batch_shapes']}, expected only {opts.batch_size} x {opts.seq_len}"
        )
    return result


def run_all(opts, argv_of) -> dict:
    """Every config opts.repeats times, interleaved so that drifts of the machine hit all alike.
    ``argv_of(config)`` gives a config's fairseq-train arguments."""
    runs = {config: [] for config in opts.only}
    for repeat in range(opts.repeats):
        for config in opts.only:
            result = run_one(config, argv_of(config), opts)
            print(
                f"[{repeat + 1}/{opts.repeats}] {config}: {result['step_ms']:.1f} ms/step, "
                f"criterion {result['criterion']}",
                file=sys.stderr,
            )
            runs[config].append(result)
    return runs


# ---------------------------------------------------------------- parent: report
def summarize(runs: dict) -> dict:
    """Per config: the median over runs of each measure, and the range of the step time."""
    summary = {}
    for config, results in runs.items():
        step_ms = [r["step_ms"] for r in results]
        summary[config] = {
            "step_ms": statistics.median(step_ms),
            "step_ms_min": min(step_ms),
            "step_ms_max": max(step_ms),
            "cpu_ms": statistics.median(r["cpu_ms"] for r in results),
            "peak_mib": statistics.median(r["peak_mib"] for r in results),
        }
        if "forward" in results[0]:  # counted by hooks: the same in every run
            summary[config].update(forward=results[0]["forward"], backward=results[0]["backward"])
    return summary


def ratio(value: float, base) -> str:
    return "-" if base is None else f"{value / base:.2f}x"


def markdown(summary: dict, opts, env: dict) -> str:
    cpu = opts.device == "cpu"
    memory = "process peak RSS (VmHWM), Python/torch/fairseq included" if cpu else "torch.cuda.max_memory_allocated"
    base = summary.get("standard", {})
    # Process CPU time is shown on CPU only: there it is robust to other load on the
    # machine, which inflates wall time; on GPU it would measure the host, not the work.
    measures = [("step time (ms)", "step_ms", 1)] + [("CPU time (ms)", "cpu_ms", 1)] * cpu
    measures.append(("peak memory (MiB)", "peak_mib", 0))
    passes = all("forward" in s for s in summary.values())
    lines = [
        f"device: {env['device']} | torch {env['torch']} | fairseq {env['fairseq']} | "
        f"arch: {opts.arch}{' fp16' * opts.fp16}{' amp' * opts.amp} | "
        f"batch x seq-len: {opts.batch_size} x {opts.seq_len} | "
        f"{opts.warmup} warmup + {opts.steps} timed steps | repeats: {opts.repeats} (median [min, max])",
        f"peak memory: {memory}",
        "",
        "| config | "
        + "forward / backward passes | " * passes
        + " | ".join(f"{name} | vs standard" for name, _, _ in measures)
        + " |",
        "|---" * (1 + passes + 2 * len(measures)) + "|",
    ]
    for config, s in summary.items():
        cells = []
        for _, key, digits in measures:
            value = f"{s[key]:.{digits}f}"
            if key == "step_ms" and opts.repeats > 1:
                value += f" [{s['step_ms_min']:.1f}, {s['step_ms_max']:.1f}]"
            cells += [value, ratio(s[key], base.get(key))]
        if passes:
            cells.insert(0, f"{s['forward']:g} / {s['backward']:g}")
        lines.append(f"| {config} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def environment(opts) -> dict:
    import fairseq
    import torch

    device = (
        torch.cuda.get_device_name(0)
        if opts.device == "cuda"
        else f"CPU, {os.cpu_count()} cores, {opts.threads} torch thread(s) per run"
    )
    return {"device": device, "torch": torch.__version__, "fairseq": fairseq.__version__}


# ---------------------------------------------------------------- worker (subprocess)
class PeakMemory:
    """Peak memory since the last reset(), in MiB."""

    def __init__(self, cuda: bool):
        self.cuda = cuda

    def reset(self) -> None:
        import torch

        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        else:
            # Linux: writing 5 resets the process's RSS high-water mark (VmHWM). Not
            # getrusage's ru_maxrss: a child also inherits its parent's peak through exec.
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")

    def peak_mib(self) -> float:
        import torch

        if self.cuda:
            return torch.cuda.max_memory_allocated() / MIB
        with open("/proc/self/status") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
        return kib / 1024


def build_trainer(fairseq_argv: list):
    from fairseq.trainer import Trainer

    # seeded as fairseq-train seeds, so every config starts from the same weights
    cfg, task, model, criterion = build_from_flags(fairseq_argv, load_train=True, seeded=True)
    return cfg, task, Trainer(cfg, task, model, criterion)


def batches(cfg, task, trainer):
    from fairseq import utils

    epoch_itr = task.get_batch_iterator(
        dataset=task.dataset("train"),
        max_tokens=cfg.dataset.max_tokens,
        max_sentences=cfg.dataset.batch_size,
        max_positions=utils.resolve_max_positions(task.max_positions(), trainer.model.max_positions()),
        required_batch_size_multiple=cfg.dataset.required_batch_size_multiple,
        seed=cfg.common.seed,
        num_workers=cfg.dataset.num_workers,
        epoch=1,
    )
    return epoch_itr.next_epoch_itr(shuffle=True)


def warmup_steps(spec: dict, trainer, itr) -> dict:
    """The untimed steps; with spec["count_passes"], the encoder passes that the last of them
    made (``pass_counter``, in units of its batch: a stacked 2n batch counts 2). The
    last one: --amp re-runs a step whose gradients overflow, which the first steps often do."""
    for _ in range(spec["warmup"] - spec["count_passes"]):
        trainer.train_step([next(itr)])
    if not spec["count_passes"]:
        return {}
    from .pass_counter import PassCounter

    sample = next(itr)
    with PassCounter(trainer.model) as counter:
        trainer.train_step([sample])
    rows = sample["net_input"]["src_tokens"].size(0)
    return {"forward": counter.forward_equivalents(rows), "backward": counter.backward_equivalents(rows)}


def run_worker(spec: dict) -> None:
    import torch

    cfg, task, trainer = build_trainer(spec["fairseq_args"])
    cuda = torch.cuda.is_available() and not cfg.common.cpu
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    memory = PeakMemory(cuda)
    itr = batches(cfg, task, trainer)
    trainer.begin_epoch(1)

    passes = warmup_steps(spec, trainer, itr)
    sync()
    memory.reset()
    seconds, cpu_seconds, shapes = 0.0, 0.0, set()
    for _ in range(spec["steps"]):
        sample = next(itr)
        shapes.add(tuple(sample["net_input"]["src_tokens"].shape))
        start, cpu_start = time.perf_counter(), time.process_time()
        trainer.train_step([sample])
        sync()  # CUDA kernels run asynchronously: wait for them before reading the clock
        seconds += time.perf_counter() - start
        cpu_seconds += time.process_time() - cpu_start

    criterion = type(trainer.criterion)
    print(
        json.dumps(
            {
                "config": spec["config"],
                "criterion": f"{criterion.__module__}.{criterion.__name__}",
                "step_ms": 1000 * seconds / spec["steps"],
                "cpu_ms": 1000 * cpu_seconds / spec["steps"],
                "threads": torch.get_num_threads(),
                "peak_mib": memory.peak_mib(),
                "batch_shapes": sorted(shapes),
                **passes,
            }
        )
    )


# ---------------------------------------------------------------- command line
def add_run_options(
    p, archs=("tiny", "roberta_base", "roberta_large"), tiny="roberta_base with 2 layers of 64 dims"
) -> None:
    """Model, batch, precision, device and repeat options (shared with ``cost``
    and ``seq2seq_step_time``)."""
    p.add_argument("--arch", choices=archs, default="tiny", help=f"tiny: {tiny} (CPU default)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=120, help="tokens per sentence, <s> and </s> included")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default: 30 on CPU, 70 on GPU)")
    precision = p.add_mutually_exclusive_group()
    precision.add_argument("--fp16", action="store_true", help="passed to fairseq (GPU only)")
    precision.add_argument("--amp", action="store_true", help="passed to fairseq (GPU only)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU only: torch threads per run (default 1: on a small or shared CPU, "
        "more threads make wall times swing with other load)",
    )
    p.add_argument("--repeats", type=int, default=1, help="runs per config, interleaved; median reported")
    p.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: cuda when a GPU is visible, else cpu"
    )
    p.add_argument("--json-out", help="also write every run and the summary here")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_run_options(p)
    p.add_argument("--only", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one run, in a subprocess
    opts = p.parse_args()
    if opts.worker is None:
        complete_options(p, opts, CONFIGS)
    return opts


def complete_options(parser, opts, configs) -> None:
    import torch

    if opts.device == "auto":
        opts.device = "cuda" if torch.cuda.is_available() else "cpu"
    elif opts.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA GPU")
    if (opts.fp16 or opts.amp) and opts.device == "cpu":
        parser.error("--fp16 / --amp need a CUDA GPU")
    if opts.seq_len < 3:
        parser.error("--seq-len counts <s> and </s>: it must be at least 3")
    if opts.steps is None:
        opts.steps = 70 if opts.device == "cuda" else 30
    # Standard first: it is the baseline of the ratios.
    opts.only = [c for c in configs if c in opts.only]


def run_and_report(opts, argv_of, data_maker=make_data) -> None:
    """Make the data (``data_maker``, default: sentence classification), run every config
    (``argv_of(config, data_bin)`` gives its fairseq-train arguments), print the table and
    write --json-out."""
    with tempfile.TemporaryDirectory(prefix="r3f_bench_") as tmp:
        data_bin = data_maker(tmp, opts.batch_size, opts.seq_len, opts.warmup + opts.steps, seed=1)
        runs = run_all(opts, lambda config: argv_of(config, data_bin))
    summary, env = summarize(runs), environment(opts)
    print(markdown(summary, opts, env))
    if opts.json_out:
        with open(opts.json_out, "w") as f:
            json.dump(
                {
                    "options": {k: v for k, v in vars(opts).items() if k != "worker"},
                    "environment": env,
                    "summary": summary,
                    "runs": runs,
                },
                f,
                indent=2,
            )


def main() -> None:
    # Before fairseq_cli.preprocess is imported: it would send its INFO logs to stdout,
    # which holds the table.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    opts = parse_args()
    if opts.worker is not None:
        run_worker(json.loads(opts.worker))
        return

    import fairseq

    fairseq_dir = os.path.dirname(fairseq.__file__)
    run_and_report(opts, lambda config, data_bin: fairseq_args(config, data_bin, opts, fairseq_dir))


if __name__ == "__main__":
    main()
