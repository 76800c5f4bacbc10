"""Per-update cost of the glue recipe's methods on a real checkpoint and data-bin, fp32 against
mixed precision (``--amp``: bfloat16 autocast on a CPU, fairseq's float16 autocast on a GPU),
with how much of R3F's noise each precision keeps.

Every config is a whole ``fairseq-train`` run of ``scripts/glue/train.sh TASK METHOD``
(PRESET=converged, its batch) for --long updates, validation and checkpoints off, timed between
the records of updates --short and --long (``train_cost.measure_command``). The configs run
interleaved, the order rotating every round; the ratio amp / fp32 is taken within a round, per
method, before the median over rounds. R3F's diagnostics run at its first update only (outside
the timed updates): ``noise_kl`` (the symmetric KL that the noise alone causes, dropout masks
shared) and ``noise_carried`` (the fraction of the noise in the first layer's input) show whether
the noise survives the precision.

    python -m r3f_experiments.bench.precision_cost --pretrained minilm/model.pt \\
        --data glue_bin/MRPC-bin --task MRPC --rounds 3
"""

import argparse
import json
import os
import statistics
import sys
import tempfile

from ..paths import plugin_dir
from ..recipes import glue
from . import train_cost

PRECISIONS = ("fp32", "amp")


def config_argv(method: str, precision: str, opts, save_dir: str) -> list:
    argv = glue.command(
        opts.task,
        method,
        fairseq_train="fairseq-train",
        data=opts.data,
        user_dir=plugin_dir(),
        pretrained=opts.pretrained,
        preset="converged",
        updates=opts.long,
        batch_size=opts.batch_size,
        save_dir=save_dir,
    )
    argv += ["--disable-validation", "--no-save", "--log-format", "json", "--log-interval", str(opts.short)]
    if method in glue.R3F_FAMILY:
        argv += ["--r3f-diagnostics-interval", str(opts.long)]  # update 1 only: untimed
    if opts.device == "cpu":
        argv += ["--cpu"]
    return argv + (["--amp"] if precision == "amp" else [])


def spread(values, digits: int = 2) -> str:
    return f"{statistics.median(values):.{digits}g} [{min(values):.{digits}g}, {max(values):.{digits}g}]"


def diagnostic(measured: dict, key: str):
    values = [float(r[key]) for r in measured["records"] if key in r]
    return values[0] if values else None


def run_rounds(opts) -> list:
    configs = [(m, p) for m in opts.methods for p in PRECISIONS]
    rounds = []
    with tempfile.TemporaryDirectory(prefix="r3f_precision_cost_") as tmp:
        for r in range(opts.rounds):
            shift = r % len(configs)
            measured = {}
            for method, precision in configs[shift:] + configs[:shift]:
                name = f"{method} {precision}"
                measured[name] = train_cost.measure_command(name, config_argv(method, precision, opts, tmp), opts)
                m = measured[name]
                print(
                    f"[round {r + 1}/{opts.rounds}] {name}: {m['cpu_ms']:.0f} ms CPU/update, {m['ups']:.3f} updates/s",
                    file=sys.stderr,
                    flush=True,
                )
            rounds.append(measured)
    return rounds


def table(rounds: list, opts) -> str:
    import torch

    lines = [
        f"{opts.task}, {opts.pretrained}, batch {opts.batch_size} | device {opts.device}, {opts.threads} thread(s), "
        f"torch {torch.__version__} | per update: updates {opts.short + 1}-{opts.long} | {len(rounds)} interleaved "
        "rounds: median [min, max]; amp / fp32 taken within each round | noise_kl, noise_carried: update 1",
        "",
        "| method | precision | CPU s / update | updates / s | amp / fp32 CPU | amp / fp32 updates/s"
        " | noise_kl | noise_carried |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method in opts.methods:
        for precision in PRECISIONS:
            name, base = f"{method} {precision}", f"{method} fp32"
            runs = [r[name] for r in rounds]
            ratios = ["", ""]
            if precision != "fp32":
                ratios = [
                    spread([r[name]["cpu_ms"] / r[base]["cpu_ms"] for r in rounds]) + "x",
                    spread([r[name]["ups"] / r[base]["ups"] for r in rounds]) + "x",
                ]
            cells = [method, "bf16 autocast" if precision == "amp" and opts.device == "cpu" else precision]
            cells += [spread([m["cpu_ms"] / 1000 for m in runs], 3), spread([m["ups"] for m in runs], 3), *ratios]
            for key in ("noise_kl", "noise_carried"):
                values = [v for v in (diagnostic(m, key) for m in runs) if v is not None]
                cells.append(spread(values, 3) if values else "")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m r3f_experiments.bench.precision_cost", description=__doc__.split("\n")[0]
    )
    p.add_argument("--pretrained", required=True, help="the converted checkpoint (model.pt)")
    p.add_argument("--data", required=True, help="a classification data-bin (GLUE_BIN/TASK-bin)")
    p.add_argument("--task", required=True, help="its task name (a GLUE task, or any: accuracy)")
    p.add_argument("--methods", nargs="+", default=["std", "r3f"], choices=list(glue.METHODS))
    p.add_argument("--batch-size", type=int, default=glue.CONVERGED_BATCH_SIZE)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--short", type=int, default=4, help="updates before the measure starts (and the log interval)")
    p.add_argument("--long", type=int, default=16, help="updates of each run (a multiple of --short)")
    p.add_argument("--threads", type=int, default=1, help="CPU: torch threads per run")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--json-out", help="also write every run here")
    opts = p.parse_args(argv)
    if not 0 < opts.short < opts.long or opts.long % opts.short:
        p.error(f"need 0 < --short < --long, --long a multiple of --short; got {opts.short} and {opts.long}")
    if opts.rounds < 1:
        p.error(f"--rounds must be >= 1, got {opts.rounds}")
    for path in (opts.pretrained, os.path.join(opts.data, "input0", "dict.txt")):
        if not os.path.exists(path):
            p.error(f"{path}: no such file")
    return opts


def main(argv=None) -> int:
    opts = parse_args(argv)
    try:
        glue.settings(opts.task, "std", data=opts.data, user_dir="-", pretrained=opts.pretrained, preset="converged")
    except glue.RecipeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    rounds = run_rounds(opts)
    print(table(rounds, opts))
    if opts.json_out:
        with open(opts.json_out, "w") as f:
            json.dump({"options": vars(opts), "rounds": rounds}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
