"""What the noise adds over dropout: R3F across noise scales, against R-Drop and standard fine-tuning.

    python -m r3f_experiments.sigma_sweep run --task SST-2 --checkpoint CONVERTED/model.pt \\
        [--glue-bin glue_bin] [--out-dir sigma_sweep] [--seeds 1-3] [--sigmas 1e-4 1e-2 1e-1 3e-1 1] \\
        [--dropout-modes independent same] [--max-update N] [--lr LR] [--batch-size N] \\
        [--valid-every N] [--jobs 2] \\
        [-- EXTRA fairseq-train FLAGS]
    python -m r3f_experiments.sigma_sweep print  ...same options...    # one command per pending run
    python -m r3f_experiments.sigma_sweep report [--out-dir sigma_sweep] [--task SST-2]

For one pre-trained checkpoint and one GLUE task (any task scripts/glue/train.sh knows; the
data prepared with scripts/glue/prepare.sh), every seed runs

- ``std``: standard fine-tuning;
- ``rdrop``: R3F's loss without noise (``--noise-type none``: the passes differ by dropout only);
- ``rel<SIGMA>``: R3F with sigma relative to the token embeddings' RMS
  (``--noise-scale relative --eps SIGMA``), passes with independent dropout masks;
- ``rel<SIGMA>-same``: the same with ``--r3f-same-dropout`` (the KL is the noise's alone).

``--dropout-modes independent`` (or ``same``) runs only one of the two R3F variants per sigma.

Each run is ``PRESET=small bash scripts/glue/train.sh TASK {std|r3f} SEED SAVE_DIR -- FLAGS``:
the small preset of the GLUE recipes (the checkpoint's model flags and pair layout, its short
schedule, the paper's Table 6 for the rest), with --max-update, --lr, --batch-size and
--valid-every (validate every N updates) replacing the preset's where given, and the R3F
diagnostics every 10 updates (``noise_kl``: the KL the noise alone makes). Runs and logs live in
OUT_DIR/TASK/VARIANT/seedN/train.log, are skipped when finished and run through
``r3f_experiments.sweep`` (``--jobs N`` through submitit's local executor).

report: per variant, n seeds, the task's dev metric (best over the validations of a run): median
[min, max] and mean +- std, its paired difference to R-Drop and to standard over seeds (mean, and
[min, max] of the per-seed differences, and the sweep report's verdict: a difference is called one
only when a two-sided paired t-test gives p < 0.05 and the mean difference exceeds the larger of
the two variants' standard deviations over seeds),
and the mean ``noise_kl`` and ``symm_kl`` of the run's diagnosed steps; table.md, runs.csv and
figure.png / figure.svg (dev metric and noise_kl against sigma, each seed a point).
"""

import argparse
import csv
import os
import shlex
import statistics
import sys
from typing import Dict, List, Optional, Sequence

from . import fairseq_logs, sweep
from .paths import recipe
from .recipes import glue

SIGMAS = ("1e-4", "1e-2", "1e-1", "3e-1", "1")
DIAGNOSTICS_INTERVAL = 10
# independent: the passes differ by dropout masks and noise (R3F as trained); same: by the noise only
DROPOUT_MODES = ("independent", "same")
# One colour per variant family in every panel; R-Drop and standard as horizontal references.
COLOURS = {"independent": "tab:blue", "same": "tab:orange", "rdrop": "tab:green", "std": "tab:gray"}


def variants(sigmas: Sequence[str], dropout_modes: Sequence[str] = DROPOUT_MODES) -> Dict[str, List[str]]:
    """{variant name: (train.sh method, its extra fairseq-train flags)} in report order."""
    diagnostics = ["--r3f-diagnostics-interval", str(DIAGNOSTICS_INTERVAL)]
    out = {"std": ["std"], "rdrop": ["r3f", "--noise-type", "none", *diagnostics]}
    for sigma in sigmas:
        relative = ["r3f", "--noise-scale", "relative", "--eps", sigma, *diagnostics]
        if "independent" in dropout_modes:
            out[f"rel{sigma}"] = relative
        if "same" in dropout_modes:
            out[f"rel{sigma}-same"] = relative + ["--r3f-same-dropout"]
    return out


def sigma_of(variant: str) -> Optional[float]:
    return float(variant[3:].split("-same")[0]) if variant.startswith("rel") else None


def schedule_flags(args) -> List[str]:
    """Where the sweep departs from PRESET=small (its updates go through MAX_UPDATE, which moves
    warm-up and decay with them): the options given, and a train record at every diagnosed step."""
    given = [("--lr", args.lr), ("--batch-size", args.batch_size), ("--validate-interval-updates", args.valid_every)]
    return ["--log-interval", str(DIAGNOSTICS_INTERVAL),
            *(word for name, value in given if value is not None for word in (name, str(value)))]


def plan(args) -> List[sweep.Run]:
    env = {"PRESET": "small", "GLUE_BIN": args.glue_bin, "ROBERTA": args.checkpoint, "PRECISION": args.precision}
    if args.max_update is not None:
        env["MAX_UPDATE"] = str(args.max_update)

    def literal(text: str) -> str:  # the template is str.format-ed: keep literal braces
        return text.replace("{", "{{").replace("}", "}}")

    prefix = literal(" ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()))
    train_sh = literal(shlex.quote(recipe("glue", "train.sh")))
    runs = []
    for name, (method, *flags) in variants(args.sigmas, args.dropout_modes).items():
        fixed = literal(shlex.join([*schedule_flags(args), *flags, *args.extra]))
        command = f"{prefix} bash {train_sh} {{task}} {method} {{seed}} {{save_dir}} -- {fixed}"
        for seed in args.seeds:
            save_dir = os.path.join(args.out_dir, args.task, name, f"seed{seed}")
            runs.append(sweep.Run(args.task, name, seed, save_dir, command))
    return runs


def cmd_run(args) -> int:
    runs = plan(args)
    if args.dry_run:
        for run in runs:
            if not sweep.is_finished(run.log):
                print(sweep.scheduler_line("", run))
        return 0
    todo = [run for run in runs if not sweep.is_finished(run.log)]
    print(f"[sigma_sweep] {len(runs)} runs: {len(runs) - len(todo)} finished, {len(todo)} to run", flush=True)
    if args.jobs > 1 or args.cluster == "slurm":
        failed = sweep.run_with_submitit(args, todo)
    else:
        failed = []
        for run in todo:
            problem = sweep.run_one("", run)
            print(f"[sigma_sweep] {run.method} seed {run.seed}: {'FAILED (' + problem + ')' if problem else 'done'}",
                  flush=True)
            if problem:
                failed.append(run)
    print(f"[sigma_sweep] {len(todo) - len(failed)} done, {len(failed)} failed", flush=True)
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------- report --

def diagnosed_means(output: str) -> Dict[str, Optional[float]]:
    """Mean noise_kl, symm_kl, noise_to_embed and embed_rms over the run's training records that
    carry them (the log-interval records; the epoch records when the run logged no interval)."""
    logs = fairseq_logs.parse_json_logs(output)
    out = {}
    for key in ("noise_kl", "symm_kl", "noise_to_embed", "embed_rms"):
        values = [float(r[key]) for r in logs["train_inner"] if key in r] or \
            [float(r[f"train_{key}"]) for r in logs["train"] if f"train_{key}" in r]
        out[key] = statistics.fmean(values) if values else None
    return out


def read_runs(out_dir: str, task: str) -> List[dict]:
    """One record per finished run: variant, seed, best dev metric, diagnostics, wall time."""
    column = sweep.columns_for(task, {})[0]
    records = []
    task_dir = os.path.join(out_dir, task)
    for variant in sorted(os.listdir(task_dir)) if os.path.isdir(task_dir) else []:
        for seed_dir in sorted(os.listdir(os.path.join(task_dir, variant))):
            log = os.path.join(task_dir, variant, seed_dir, sweep.LOG_NAME)
            if not seed_dir.startswith("seed") or not sweep.is_finished(log):
                continue
            output = sweep.run_output(log)
            result = sweep.collect(output, [column])[column.label]
            records.append({"variant": variant, "sigma": sigma_of(variant), "seed": int(seed_dir[4:]),
                            "metric": column.name, "best": result.best, "best_update": result.best_update,
                            "seconds": fairseq_logs.training_seconds(output), **diagnosed_means(output)})
    return records


def _paired(records, variant, reference):
    """The variant against the reference, paired over seeds, with the sweep report's verdict."""
    mine = {r["seed"]: r["best"] for r in records if r["variant"] == variant}
    theirs = {r["seed"]: r["best"] for r in records if r["variant"] == reference}
    paired = sweep.paired_against(mine, theirs)
    if not paired.n or variant == reference:
        return "-"
    return f"{paired.mean:+.2f} [{paired.low:+.2f}, {paired.high:+.2f}], {paired.verdict()}"


def _fmt(value, digits=2):
    return "-" if value is None else f"{value:.{digits}g}" if abs(value) < 1e-2 and value else f"{value:.{digits}f}"


def table(records: List[dict], task: str, order: Sequence[str]) -> str:
    metric = records[0]["metric"] if records else "accuracy"
    lines = [f"## {task}: dev {metric} against sigma (relative to the token-embedding RMS)", "",
             "| variant | sigma / RMS | n | median [min, max] | mean +- std | vs R-Drop | vs standard "
             "| noise_kl | symm_kl | train s (median) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for variant in order:
        rows = [r for r in records if r["variant"] == variant]
        if not rows:
            continue
        best = [r["best"] for r in rows]
        spread = f"{statistics.median(best):.2f} [{min(best):.2f}, {max(best):.2f}]"
        mean = f"{statistics.fmean(best):.2f} +- {statistics.stdev(best):.2f}" if len(best) > 1 else f"{best[0]:.2f}"

        def mean_of(key):
            values = [r[key] for r in rows if r[key] is not None]
            return statistics.fmean(values) if values else None

        lines.append(f"| {variant} | {rows[0]['sigma'] if rows[0]['sigma'] is not None else '-'} | {len(rows)} "
                     f"| {spread} | {mean} | {_paired(records, variant, 'rdrop')} | {_paired(records, variant, 'std')} "
                     f"| {_fmt(mean_of('noise_kl'), 2)} | {_fmt(mean_of('symm_kl'), 2)} "
                     f"| {statistics.median(r['seconds'] for r in rows):.0f} |")
    lines += ["", "noise_kl: the symmetric KL the noise alone makes (diagnostic passes with the same dropout "
              "masks), mean over the run's diagnosed steps, per sentence; symm_kl: the trained KL term. "
              "vs R-Drop / vs standard: mean paired difference over seeds [min, max]; \"differs\" only when "
              "a two-sided paired t-test gives p < 0.05 and the mean difference exceeds the larger of the two "
              "variants' standard deviations over seeds."]
    return "\n".join(lines) + "\n"


def figure(records: List[dict], task: str, path_prefix: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (acc_ax, kl_ax) = plt.subplots(1, 2, figsize=(10, 5))
    sigmas = sorted({r["sigma"] for r in records if r["sigma"] is not None})
    for family, same in (("independent", False), ("same", True)):
        rows = [r for r in records if r["sigma"] is not None and r["variant"].endswith("-same") == same]
        label = "R3F, independent dropout" if not same else "R3F, same dropout (noise only)"
        counts = sorted({sum(r["sigma"] == s for r in rows) for s in {r["sigma"] for r in rows}})
        n = "/".join(map(str, counts))
        dodge = 1.08 if same else 1 / 1.08  # the two families side by side at each sigma (log axis)
        acc_ax.scatter([r["sigma"] * dodge for r in rows], [r["best"] for r in rows], color=COLOURS[family], s=14,
                       label=f"{label}, each seed (n={n} per sigma)")
        means = [(s * dodge, statistics.fmean([r["best"] for r in rows if r["sigma"] == s]))
                 for s in sigmas if any(r["sigma"] == s for r in rows)]
        acc_ax.plot([s for s, _ in means], [m for _, m in means], color=COLOURS[family], linewidth=1)
        kls = [(r["sigma"] * dodge, r["noise_kl"]) for r in rows if r["noise_kl"] and r["noise_kl"] > 0]
        kl_ax.scatter([s for s, _ in kls], [k for _, k in kls], color=COLOURS[family], s=14, label=label)
    for reference, label in (("rdrop", "R-Drop (no noise)"), ("std", "standard")):
        best = [r["best"] for r in records if r["variant"] == reference]
        if best:
            acc_ax.axhline(statistics.fmean(best), color=COLOURS[reference], linestyle="--",
                           label=f"{label}: mean, band [min, max] (n={len(best)})")
            acc_ax.axhspan(min(best), max(best), color=COLOURS[reference], alpha=0.12)
    rdrop_kl = [r["symm_kl"] for r in records if r["variant"] == "rdrop" and r["symm_kl"]]
    if rdrop_kl and statistics.fmean(rdrop_kl) > 0:
        kl_ax.axhline(statistics.fmean(rdrop_kl), color=COLOURS["rdrop"], linestyle="--",
                      label="R-Drop's symm_kl (dropout disagreement)")
    metric = records[0]["metric"] if records else "accuracy"
    for ax in (acc_ax, kl_ax):
        ax.set_xscale("log")
        ax.set_xlabel("sigma / token-embedding RMS")
    acc_ax.set_ylabel(f"best dev {metric} (%)")
    if kl_ax.lines or kl_ax.collections:
        kl_ax.set_yscale("log")  # noise_kl spans orders of magnitude; zeros (rounded away) are not drawn
    kl_ax.set_ylabel("noise_kl (nats per sentence)")
    for ax in (acc_ax, kl_ax):  # below the axes, where no point hides behind them
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1, frameon=False)
    acc_ax.set_title(f"{task}: dev metric")
    kl_ax.set_title(f"{task}: KL made by the noise alone")
    fig.tight_layout()
    fig.savefig(path_prefix + ".png", dpi=200)
    fig.savefig(path_prefix + ".svg")
    plt.close(fig)


def cmd_report(args) -> int:
    records = read_runs(args.out_dir, args.task)
    if not records:
        print(f"error: no finished run under {os.path.join(args.out_dir, args.task)}", file=sys.stderr)
        return 1
    report_dir = args.report_dir or os.path.join(args.out_dir, args.task, "report")
    os.makedirs(report_dir, exist_ok=True)
    found = sorted({r["variant"] for r in records}, key=lambda v: (sigma_of(v) or -1, v.endswith("-same"), v))
    order = [v for v in ("std", "rdrop") if v in found] + [v for v in found if v not in ("std", "rdrop")]
    text = table(records, args.task, order)
    with open(os.path.join(report_dir, "table.md"), "w") as f:
        f.write(text)
    with open(os.path.join(report_dir, "runs.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    if not args.no_plots:
        figure(records, args.task, os.path.join(report_dir, "figure"))
    print(text)
    print(f"[sigma_sweep] wrote {report_dir}/table.md, runs.csv" + ("" if args.no_plots else ", figure.png, figure.svg"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m r3f_experiments.sigma_sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="verb", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out-dir", default="sigma_sweep")
    common.add_argument("--task", required=True, help=f"a GLUE task of scripts/glue/train.sh ({' '.join(glue.TASKS)})")
    runs = argparse.ArgumentParser(add_help=False, parents=[common])
    runs.add_argument("--checkpoint", required=True, help="the pre-trained model.pt (e.g. a converted MiniLM)")
    runs.add_argument("--glue-bin", default="glue_bin", help="folder holding TASK-bin (scripts/glue/prepare.sh)")
    runs.add_argument("--seeds", nargs="+", default=["1-3"])
    runs.add_argument("--sigmas", nargs="+", default=list(SIGMAS), help="relative sigmas (fractions of the RMS)")
    runs.add_argument("--dropout-modes", nargs="+", choices=DROPOUT_MODES, default=list(DROPOUT_MODES),
                      help="R3F variants per sigma: independent dropout masks (rel<SIGMA>) and/or the same masks "
                           "in both passes (rel<SIGMA>-same)")
    preset = "default: PRESET=small's"
    runs.add_argument("--max-update", type=int, help=f"updates per run ({preset}, {glue.SMALL_MAX_UPDATE})")
    runs.add_argument("--lr", help=f"peak learning rate ({preset}, {glue.SMALL_LR})")
    runs.add_argument("--batch-size", type=int, help=f"sentences per update ({preset}, {glue.SMALL_BATCH_SIZE})")
    runs.add_argument("--valid-every", type=int,
                      help=f"validate every N updates ({preset}, {glue.SMALL_VALIDATE_INTERVAL_UPDATES})")
    runs.add_argument("--precision", default="", help='precision flags for train.sh (default "": fp32; "--amp" on a GPU)')
    runs.add_argument("--jobs", type=int, default=1, help="runs at a time (> 1: submitit's local executor)")
    runs.add_argument("--cluster", choices=["local", "slurm"], default="local")
    runs.add_argument("--partition")
    runs.add_argument("--gpus-per-node", type=int, default=1)
    runs.add_argument("--cpus-per-task", type=int, default=10)
    runs.add_argument("--timeout-min", type=int, default=24 * 60)
    runs.add_argument("--poll-seconds", type=float, default=10.0)
    sub.add_parser("run", parents=[runs], help="run the missing runs")
    sub.add_parser("print", parents=[runs], help="print one command line per pending run")
    report = sub.add_parser("report", parents=[common], help="table and figure from the logs")
    report.add_argument("--report-dir", help="default OUT_DIR/TASK/report")
    report.add_argument("--no-plots", action="store_true")
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.task not in glue.TASKS:
        parser.error(f"unknown --task {args.task} ({' '.join(glue.TASKS)})")
    if args.verb == "report":
        return cmd_report(args)
    args.extra, args.seeds, args.dry_run = extra, sweep.parse_seeds(args.seeds), args.verb == "print"
    args.command = ""
    # absolute: submitit's workers and train.sh may run elsewhere than this process's folder
    args.checkpoint, args.glue_bin, args.out_dir = map(os.path.abspath, (args.checkpoint, args.glue_bin, args.out_dir))
    if not os.path.isfile(args.checkpoint):
        parser.error(f"--checkpoint {args.checkpoint}: no such file")
    if not os.path.isfile(os.path.join(args.glue_bin, f"{args.task}-bin", "input0", "dict.txt")):
        parser.error(f"--glue-bin {args.glue_bin}: no prepared {args.task} (bash scripts/glue/prepare.sh)")
    return cmd_run(args)


if __name__ == "__main__":
    sys.exit(main())
