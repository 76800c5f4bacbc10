"""The cost of each method where users pay it: whole ``fairseq-train`` runs, not one in-process step.

For every config, each round runs ``fairseq-train`` for --long updates (validation and
checkpoints off, same data and seed), logging every --short updates, and reads the process's
CPU time (user + system, /proc) and the clock when the records of updates --short and --long
arrive, so that start-up, data loading and the first steps fall outside the measure:

    per-update CPU time = (CPU at long - CPU at short) / (long - short)
    updates/s           = (long - short) / (wall at long - wall at short)
    peak memory         = the run's peak resident set (on a GPU: the host's, not the device's)

The configs run interleaved (the order rotates every round), and every ratio is taken within a
round (ours / standard, ours / reference, ...) before the median over rounds: drifts of a
shared machine hit both sides of a ratio alike. The table gives the median [min, max] over
rounds of each figure and ratio.

    standard          fairseq's sentence_prediction
    reference         the authors' sentence_prediction_r3f (fairseq/examples/rxf/rxf_src)
    ours              sentence_prediction_r3f, the default (--r3f-passes auto: two on a CPU, stacked on CUDA)
    ours-two          --r3f-passes two          ours-stacked     --r3f-passes stacked
    ours-one-sided    --r3f-one-sided           r4f              ours + --spectral-norm-classification-head
    smart             sentence_prediction_smart --smart-steps 1
    freelb            --task sentence_prediction_adv --adv-steps 2 (standard criterion)

CPU (the default: 2-layer, 64-dim RoBERTa, one torch thread per run):

    python -m r3f_experiments.bench.train_cost --rounds 5

GPU: add ``--device cuda --arch roberta_large --amp`` (or ``--fp16``).
"""

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time

from ..paths import plugin_dir
from . import cost, step_time

R3F = ["--criterion", "sentence_prediction_r3f", "--r3f-lambda", "1.0", "--eps", "1e-5", "--noise-type", "uniform"]
CONFIGS = {
    "standard": ["--criterion", "sentence_prediction"],
    "reference": R3F,
    "ours": R3F,
    "ours-two": R3F + ["--r3f-passes", "two"],
    "ours-stacked": R3F + ["--r3f-passes", "stacked"],
    "ours-one-sided": R3F + ["--r3f-one-sided"],
    "r4f": R3F + ["--spectral-norm-classification-head"],
    "smart": cost.SMART + ["--smart-steps", "1"],
    "freelb": cost.FREELB + ["--adv-steps", "2"],
}
# The ratios the table reports for every config, each taken within a round.
BASELINES = ("standard", "reference")


def train_argv(config: str, data_bin: str, opts, fairseq_dir: str) -> list:
    user_dir = os.path.join(fairseq_dir, "examples", "rxf", "rxf_src") if config == "reference" else plugin_dir()
    return [
        "fairseq-train",
        *step_time.base_args(data_bin, opts),
        "--user-dir",
        user_dir,
        *CONFIGS[config],
        "--max-update",
        str(opts.long),
        "--disable-validation",
        "--no-save",
        "--log-format",
        "json",
        "--log-interval",
        str(opts.short),
    ]


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process so far (/proc/PID/stat, all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def measure_command(name: str, argv: list, opts) -> dict:
    """One fairseq-train run (``argv``, logging every --short updates to --long, JSON): CPU and
    wall time are read when the records of updates --short and --long arrive, so start-up, data
    loading and the first steps fall outside the difference; peak RSS from the kernel's
    accounting of the child; ``records``: the run's train_inner records (its logged metrics)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # each record as it is logged, not in blocks of a pipe buffer
    if opts.device == "cpu":
        env["OMP_NUM_THREADS"] = str(opts.threads)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    marks, tail, records = {}, [], []
    for line in proc.stdout:
        tail = (tail + [line])[-40:]
        start = line.find("{")
        if start < 0 or '"num_updates"' not in line:
            continue
        try:
            record = json.loads(line[start:])
            updates = int(record["num_updates"])
        except (ValueError, KeyError):
            continue
        records.append({k: v for k, v in record.items() if v is not None})
        if updates in (opts.short, opts.long) and updates not in marks:
            marks[updates] = (time.perf_counter(), process_cpu_seconds(proc.pid))
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or len(marks) != 2:
        raise RuntimeError(
            f"{name}: fairseq-train exited {proc.returncode} with records of updates "
            f"{sorted(marks)} (need {opts.short} and {opts.long}):\n{''.join(tail)}"
        )
    (wall_a, cpu_a), (wall_b, cpu_b) = marks[opts.short], marks[opts.long]
    updates = opts.long - opts.short
    return {
        "cpu_ms": 1000 * (cpu_b - cpu_a) / updates,
        "ups": updates / (wall_b - wall_a),
        "peak_mib": usage.ru_maxrss / 1024,
        "records": records,
    }


def measure(config: str, data_bin: str, opts, fairseq_dir: str) -> dict:
    """``measure_command`` of one config of this benchmark (its records left out)."""
    measured = measure_command(config, train_argv(config, data_bin, opts, fairseq_dir), opts)
    measured.pop("records")
    return measured


def run_rounds(opts, data_bin: str, fairseq_dir: str) -> list:
    """[{config: measure}] per round; the order rotates so no config always runs first."""
    rounds = []
    for r in range(opts.rounds):
        order = opts.only[r % len(opts.only) :] + opts.only[: r % len(opts.only)]
        measured = {}
        for config in order:
            measured[config] = measure(config, data_bin, opts, fairseq_dir)
            m = measured[config]
            print(
                f"[round {r + 1}/{opts.rounds}] {config}: {m['cpu_ms']:.1f} ms CPU/update, "
                f"{m['ups']:.2f} updates/s, {m['peak_mib']:.0f} MiB",
                file=sys.stderr,
                flush=True,
            )
        rounds.append(measured)
    return rounds


def spread(values) -> str:
    return f"{statistics.median(values):.2f} [{min(values):.2f}, {max(values):.2f}]"


def table(rounds: list, opts, env: dict) -> str:
    configs = [c for c in opts.only if all(c in r for r in rounds)]
    baselines = [b for b in BASELINES if b in configs]
    head = ["config", "CPU ms / update", "updates/s (wall)", "peak MiB"]
    for base in baselines:
        head += [f"CPU vs {base}", f"updates/s vs {base}"]
    lines = [
        f"device: {env['device']} | torch {env['torch']} | fairseq {env['fairseq']} | arch: {opts.arch}"
        f"{' fp16' * opts.fp16}{' amp' * opts.amp} | batch x seq-len: {opts.batch_size} x {opts.seq_len} | "
        f"per update: fairseq-train updates {opts.short + 1}-{opts.long} | {len(rounds)} interleaved rounds: "
        "median [min, max]; ratios taken within each round",
        "",
        "| " + " | ".join(head) + " |",
        "|---" * len(head) + "|",
    ]
    for config in configs:
        cells = [
            config,
            spread([r[config]["cpu_ms"] for r in rounds]),
            spread([r[config]["ups"] for r in rounds]),
            f"{statistics.median(r[config]['peak_mib'] for r in rounds):.0f}",
        ]
        for base in baselines:
            cells += [
                spread([r[config]["cpu_ms"] / r[base]["cpu_ms"] for r in rounds]) + "x",
                spread([r[config]["ups"] / r[base]["ups"] for r in rounds]) + "x",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    step_time.add_run_options(p)
    p.add_argument("--only", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (each: one run of every config)")
    p.add_argument("--short", type=int, default=40, help="updates before the measure starts (and the log interval)")
    p.add_argument("--long", type=int, default=160, help="updates of each run (a multiple of --short)")
    opts = p.parse_args(argv)
    step_time.complete_options(p, opts, list(CONFIGS))
    if not 0 < opts.short < opts.long or opts.long % opts.short:
        p.error(f"need 0 < --short < --long, --long a multiple of --short; got {opts.short} and {opts.long}")
    if opts.rounds < 1:
        p.error(f"--rounds must be >= 1, got {opts.rounds}")
    return opts


def main(argv=None) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)  # fairseq-preprocess's INFO off stdout
    opts = parse_args(argv)
    import fairseq

    fairseq_dir = os.path.dirname(fairseq.__file__)
    with tempfile.TemporaryDirectory(prefix="r3f_train_cost_") as tmp:
        # 50 batches: longer runs loop over epochs of the same full batches
        data_bin = step_time.make_data(tmp, opts.batch_size, opts.seq_len, 50, seed=1)
        rounds = run_rounds(opts, data_bin, fairseq_dir)
    env = step_time.environment(opts)
    text = table(rounds, opts, env)
    print(text)
    if opts.json_out:
        with open(opts.json_out, "w") as f:
            json.dump({"options": vars(opts), "environment": env, "rounds": rounds}, f, indent=2)


if __name__ == "__main__":
    main()
