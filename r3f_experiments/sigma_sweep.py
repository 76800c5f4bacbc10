"""What the noise adds over dropout: R3F across noise scales relative to the token embeddings'
RMS, against R-Drop and standard fine-tuning, every seed a run of the GLUE recipes' small preset.
Manual and measured tables: docs/method.md#the-sigma-sweep-on-real-text."""

import argparse
import csv
import os
import shlex
import statistics
import sys
from typing import Dict, List, Optional, Sequence

from . import fairseq_logs, figures, runs
from .paths import recipe
from .recipes import glue
from .results import REPLACE_HELP, collect, columns_for, diagnosed_means, dropped_runs_error, paired_against

SIGMAS = ("1e-4", "1e-2", "1e-1", "3e-1", "1")
DIAGNOSTICS_INTERVAL = 10
# independent: the passes differ by dropout masks and noise (R3F as trained); same: by the noise only
DROPOUT_MODES = ("independent", "same")


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
    return [
        "--log-interval",
        str(DIAGNOSTICS_INTERVAL),
        *(word for name, value in given if value is not None for word in (name, str(value))),
    ]


def plan(args) -> List[runs.Run]:
    env = {"PRESET": "small", "GLUE_BIN": args.glue_bin, "ROBERTA": args.checkpoint, "PRECISION": args.precision}
    if args.max_update is not None:
        env["MAX_UPDATE"] = str(args.max_update)

    def literal(text: str) -> str:  # the template is str.format-ed: keep literal braces
        return text.replace("{", "{{").replace("}", "}}")

    prefix = literal(" ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()))
    train_sh = literal(shlex.quote(recipe("glue", "train.sh")))
    grid = []
    for name, (method, *flags) in variants(args.sigmas, args.dropout_modes).items():
        fixed = literal(shlex.join([*schedule_flags(args), *flags, *args.extra]))
        command = f"{prefix} bash {train_sh} {{task}} {method} {{seed}} {{save_dir}} -- {fixed}"
        for seed in args.seeds:
            save_dir = os.path.join(args.out_dir, args.task, name, f"seed{seed}")
            grid.append(runs.Run(args.task, name, seed, save_dir, command))
    return grid


def cmd_run(args) -> int:
    grid = plan(args)
    if args.dry_run:
        runs.print_pending(grid, "")
        return 0
    return runs.run_all(grid, "", args.launch, os.path.join(args.out_dir, ".submitit"), tag="sigma_sweep")


# ---------------------------------------------------------------------------------------- report --


def read_runs(out_dir: str, task: str) -> List[dict]:
    """One record per finished run: variant, seed, best dev metric, diagnostics, wall time."""
    column = columns_for(task, {})[0]
    records = []
    task_dir = os.path.join(out_dir, task)
    for variant in sorted(os.listdir(task_dir)) if os.path.isdir(task_dir) else []:
        for seed_dir in sorted(os.listdir(os.path.join(task_dir, variant))):
            log = os.path.join(task_dir, variant, seed_dir, fairseq_logs.LOG_NAME)
            if not seed_dir.startswith("seed") or not fairseq_logs.is_finished(log):
                continue
            output = fairseq_logs.run_output(log)
            result = collect(output, [column])[column.label]
            records.append(
                {
                    "variant": variant,
                    "sigma": sigma_of(variant),
                    "seed": int(seed_dir[4:]),
                    "metric": column.name,
                    "best": result.best,
                    "best_update": result.best_update,
                    "seconds": fairseq_logs.training_seconds(output),
                    **diagnosed_means(output),
                }
            )
    return records


def _paired(records, variant, reference):
    """The variant against the reference, paired over seeds, with the sweep report's verdict."""
    mine = {r["seed"]: r["best"] for r in records if r["variant"] == variant}
    theirs = {r["seed"]: r["best"] for r in records if r["variant"] == reference}
    paired = paired_against(mine, theirs)
    if not paired.n or variant == reference:
        return "-"
    return f"{paired.mean:+.2f} [{paired.low:+.2f}, {paired.high:+.2f}], {paired.verdict()}"


def _fmt(value, digits=2):
    return "-" if value is None else f"{value:.{digits}g}" if abs(value) < 1e-2 and value else f"{value:.{digits}f}"


def table(records: List[dict], task: str, order: Sequence[str]) -> str:
    metric = records[0]["metric"] if records else "accuracy"
    lines = [
        f"## {task}: dev {metric} against sigma (relative to the token-embedding RMS)",
        "",
        "| variant | sigma / RMS | n | median [min, max] | mean +- std | vs R-Drop | vs standard "
        "| noise_kl | symm_kl | train s (median) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
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

        lines.append(
            f"| {variant} | {rows[0]['sigma'] if rows[0]['sigma'] is not None else '-'} | {len(rows)} "
            f"| {spread} | {mean} | {_paired(records, variant, 'rdrop')} | {_paired(records, variant, 'std')} "
            f"| {_fmt(mean_of('noise_kl'), 2)} | {_fmt(mean_of('symm_kl'), 2)} "
            f"| {statistics.median(r['seconds'] for r in rows):.0f} |"
        )
    lines += [
        "",
        "noise_kl: the symmetric KL the noise alone makes (diagnostic passes with the same dropout "
        "masks), mean over the run's diagnosed steps, per sentence; symm_kl: the trained KL term. "
        'vs R-Drop / vs standard: mean paired difference over seeds [min, max]; "differs" only when '
        "a two-sided paired t-test gives p < 0.05 and the mean difference exceeds the larger of the two "
        "variants' standard deviations over seeds.",
    ]
    return "\n".join(lines) + "\n"


RUNS_CSV_TYPES = {
    "sigma": float,
    "seed": int,
    "best": float,
    "best_update": int,
    "seconds": float,
    "noise_kl": float,
    "symm_kl": float,
    "noise_to_embed": float,
    "embed_rms": float,
}


def read_runs_csv(path: str) -> List[dict]:
    """The records of an earlier report's runs.csv (empty cells: None)."""
    with open(path, newline="") as f:
        return [
            {k: (RUNS_CSV_TYPES[k](v) if v else None) if k in RUNS_CSV_TYPES else v for k, v in row.items()}
            for row in csv.DictReader(f)
        ]


def cmd_report(args) -> int:
    records = read_runs_csv(args.runs_csv) if args.runs_csv else read_runs(args.out_dir, args.task)
    if not records:
        print(f"error: no finished run in {args.runs_csv or os.path.join(args.out_dir, args.task)}", file=sys.stderr)
        return 1
    report_dir = args.report_dir or os.path.join(args.out_dir, args.task, "report")
    earlier = os.path.join(report_dir, "runs.csv")
    if not (args.runs_csv or args.replace) and os.path.exists(earlier):
        named = lambda rs: [f"{r['variant']} seed {r['seed']}" for r in rs]  # noqa: E731
        error = dropped_runs_error(earlier, named(read_runs_csv(earlier)), named(records), "their logs back in OUT_DIR")
        if error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    os.makedirs(report_dir, exist_ok=True)
    found = sorted({r["variant"] for r in records}, key=lambda v: (sigma_of(v) or -1, v.endswith("-same"), v))
    order = [v for v in ("std", "rdrop") if v in found] + [v for v in found if v not in ("std", "rdrop")]
    text = table(records, args.task, order)
    with open(os.path.join(report_dir, "table.md"), "w") as f:
        f.write(text)
    if not args.runs_csv:
        with open(os.path.join(report_dir, "runs.csv"), "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
    if not args.no_plots:
        figures.sigma_figure(records, args.task, os.path.join(report_dir, "figure"))
    print(text)
    print(
        f"[sigma_sweep] wrote {report_dir}/table.md"
        + ("" if args.runs_csv else ", runs.csv")
        + ("" if args.no_plots else ", figure.png, figure.svg")
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m r3f_experiments.sigma_sweep",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="verb", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out-dir", default="sigma_sweep")
    common.add_argument("--task", required=True, help=f"a GLUE task of scripts/glue/train.sh ({' '.join(glue.TASKS)})")
    grid = argparse.ArgumentParser(add_help=False, parents=[common])
    grid.add_argument("--checkpoint", required=True, help="the pre-trained model.pt (e.g. a converted MiniLM)")
    grid.add_argument("--glue-bin", default="glue_bin", help="folder holding TASK-bin (scripts/glue/prepare.sh)")
    grid.add_argument("--seeds", nargs="+", default=["1-3"])
    grid.add_argument("--sigmas", nargs="+", default=list(SIGMAS), help="relative sigmas (fractions of the RMS)")
    grid.add_argument(
        "--dropout-modes",
        nargs="+",
        choices=DROPOUT_MODES,
        default=list(DROPOUT_MODES),
        help="R3F variants per sigma: independent dropout masks (rel<SIGMA>) and/or the same masks "
        "in both passes (rel<SIGMA>-same)",
    )
    preset = "default: PRESET=small's"
    grid.add_argument("--max-update", type=int, help=f"updates per run ({preset}, {glue.SMALL_MAX_UPDATE})")
    grid.add_argument("--lr", help=f"peak learning rate ({preset}, {glue.SMALL_LR})")
    grid.add_argument("--batch-size", type=int, help=f"sentences per update ({preset}, {glue.SMALL_BATCH_SIZE})")
    grid.add_argument(
        "--valid-every", type=int, help=f"validate every N updates ({preset}, {glue.SMALL_VALIDATE_INTERVAL_UPDATES})"
    )
    grid.add_argument(
        "--precision", default="", help='precision flags for train.sh (default "": fp32; "--amp" on a GPU)'
    )
    runs.add_launch_arguments(grid)
    sub.add_parser("run", parents=[grid], help="run the missing runs")
    sub.add_parser("print", parents=[grid], help="print one command line per pending run")
    report = sub.add_parser("report", parents=[common], help="table and figure from the logs")
    report.add_argument("--report-dir", help="default OUT_DIR/TASK/report")
    report.add_argument(
        "--runs-csv", help="rebuild the table (and figure) from this runs.csv of an earlier report instead of the logs"
    )
    report.add_argument(
        "--replace",
        action="store_true",
        help=REPLACE_HELP,
    )
    report.add_argument("--no-plots", action="store_true")
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.task not in glue.TASKS:
        parser.error(f"unknown --task {args.task} ({' '.join(glue.TASKS)})")
    if args.verb == "report":
        return cmd_report(args)
    try:
        args.seeds, args.launch = runs.parse_seeds(args.seeds), runs.LaunchOptions.from_args(args)
    except argparse.ArgumentTypeError as e:
        parser.error(str(e))
    args.extra, args.dry_run = extra, args.verb == "print"
    # absolute: submitit's workers and train.sh may run elsewhere than this process's folder
    args.checkpoint, args.glue_bin, args.out_dir = map(os.path.abspath, (args.checkpoint, args.glue_bin, args.out_dir))
    if not os.path.isfile(args.checkpoint):
        parser.error(f"--checkpoint {args.checkpoint}: no such file")
    if not os.path.isfile(os.path.join(args.glue_bin, f"{args.task}-bin", "input0", "dict.txt")):
        parser.error(f"--glue-bin {args.glue_bin}: no prepared {args.task} (bash scripts/glue/prepare.sh)")
    return cmd_run(args)


if __name__ == "__main__":
    sys.exit(main())
