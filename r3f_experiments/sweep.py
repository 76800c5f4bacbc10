#!/usr/bin/env python3
"""Seed sweeps over GLUE tasks x methods through ``scripts/glue/train.sh``, and the paper's
Table 2 and Figures 1-2 from their logs (Aghajanyan et al., ICLR 2021). Manual and definitions:
docs/glue.md#seeds-table-2-and-figures-1-2."""

import argparse
import csv
import os
import shlex
import sys
from typing import Sequence

from . import dev_scores, figures, runs
from .fairseq_logs import LOG_NAME
from .paths import recipe
from .recipes.glue import CHECKPOINT_PRESETS
from .results import (
    BASELINE,
    METHODS,
    REPLACE_HELP,
    TASKS,
    Column,
    Paired,
    collect_all,
    columns_for,
    comparisons,
    discover,
    dropped_runs_error,
    fmt,
    mean_std,
    ordered,
    parse_metric_overrides,
    read_runs_csv,
    seed_bests,
    summarise,
    table_rows,
    write_runs_csv,
)

DEFAULT_COMMAND = "bash " + shlex.quote(recipe("glue", "train.sh")) + " {task} {method} {seed} {save_dir}"


class SweepError(ValueError):
    """A sweep that cannot run as asked; raised before anything runs."""


def checkpoint_preset_task(task: str) -> bool:
    """train.sh with PRESET=small or converged (from the environment, as train.sh reads it)
    fine-tunes any classification data-bin GLUE_BIN/TASK-bin."""
    glue_bin = os.environ.get("GLUE_BIN", "glue_bin")
    return os.environ.get("PRESET") in CHECKPOINT_PRESETS and os.path.isdir(os.path.join(glue_bin, f"{task}-bin"))


def check_names(args) -> None:
    """--tasks and --methods must be named for a real run and, with train.sh's template, be names
    the recipes know: a typo would otherwise fail once per seed, its reason in each log."""
    if args.tasks is None or args.methods is None:
        if not args.dry_run:
            raise SweepError(
                "name the runs: --tasks (e.g. RTE MRPC) and --methods (e.g. std r3f); all of "
                f"{len(TASKS)} tasks x {len(METHODS)} methods x 10 seeds would be "
                f"{len(TASKS) * len(METHODS) * 10} runs"
            )
        args.tasks, args.methods = args.tasks or TASKS, args.methods or METHODS
    if args.command == DEFAULT_COMMAND:
        for what, names, known in (("task", args.tasks, TASKS), ("method", args.methods, METHODS)):
            unknown = [n for n in names if n not in known and not (what == "task" and checkpoint_preset_task(n))]
            if unknown:
                raise SweepError(
                    f"unknown {what}(s) {' '.join(unknown)}; scripts/glue/train.sh takes "
                    f"{' '.join(known)}"
                    + (
                        " (and, with PRESET=small or converged, any TASK whose GLUE_BIN/TASK-bin exists)"
                        if what == "task"
                        else ""
                    )
                )


def cmd_run(args) -> int:
    check_names(args)
    grid = runs.plan(args.out_dir, args.tasks, args.methods, args.seeds)
    if args.dry_run:
        runs.print_pending(grid, args.command, include_finished=args.all)
        return 0
    return runs.run_all(grid, args.command, args.launch, os.path.join(args.out_dir, ".submitit"))


# ---------------------------------------------------------------------------------- report --


def reference_cell(ref, col: Column, decimals: int) -> str:
    """A reference row's value in a column; its metric beside it when not the column's."""
    if col.label not in ref.values:
        return "-"
    value, metric = ref.values[col.label]
    return f"{value:.{decimals}f}" + ("" if metric == col.name else f" ({metric})")


def write_markdown(
    path: str, rows, columns: Sequence[Column], decimals: int, bests=None, captions=(), references=(), versus=None
) -> str:
    """table2.md: min / median / max over seeds (the paper's Table 2 reports max and median),
    mean +- std, each method against std (paired over seeds, or Welch's test for another
    implementation's runs; Holm-adjusted), wall time to best, seeds per cell, reference rows
    (majority class, published numbers) and the figures' captions."""
    labels = [c.label for c in columns]
    bests = bests or {}
    versus = comparisons(bests, columns) if versus is None else versus
    header = "| method | " + " | ".join(labels) + " |\n|---|" + "---|" * len(labels) + "\n"
    reference_lines = [
        "| " + ref.name + " | " + " | ".join(reference_cell(ref, c, decimals) for c in columns) + " |\n"
        for ref in references
    ]
    lines = [
        "## Table 2: GLUE dev, min / median / max over seeds (n)\n\n",
        "Metric per column: " + ", ".join(f"{c.label} = {c.subset} {c.name}" for c in columns) + ".\n\n",
        header,
    ]
    for m, stats in rows:
        cells = []
        for c in columns:
            best, median, _, n, worst = stats[c.label]
            low, high = (worst, best) if c.maximize else (best, worst)
            cells.append(
                "-" if not n else f"{fmt(low, decimals)} / {fmt(median, decimals)} / {fmt(high, decimals)} ({n})"
            )
        lines.append("| " + m + " | " + " | ".join(cells) + " |\n")
    lines += reference_lines
    lines += ["\n## Mean +- standard deviation over seeds\n\n", header]
    for method, _ in rows:
        cells = []
        for c in labels:
            mean, std = mean_std(list(bests.get(c, {}).get(method, {}).values()))
            cells.append("-" if mean is None else f"{mean:.{decimals}f} +- {fmt(std, decimals)}")
        lines.append("| " + method + " | " + " | ".join(cells) + " |\n")
    lines += reference_lines
    if references:
        lines += ["\nReference rows: " + "; ".join(f"{r.name}: {r.source}" for r in references) + ".\n"]
    tested = sum(1 for d in versus.values() if d.p is not None)
    lines += [
        f"\n## Against {BASELINE}\n\n",
        f"Per column: the mean difference (method - {BASELINE}, positive = better). Paired over the seeds "
        "both ran (seed N of both shares data order and head initialisation): [min, max] of the per-seed "
        "differences and a two-sided paired t-test. Welch (n=a+b), for runs of another implementation, whose "
        "seeds pair with nothing: the 95% interval of the difference and Welch's unpaired t-test. "
        f"p-values are Holm-adjusted over the {tested} comparison{'' if tested == 1 else 's'} of this table. "
        '"differs" when the adjusted p < 0.05 and the mean difference exceeds the seed spread (the larger of '
        'the two standard deviations), "consistent, below the seed spread" when only the test passes, else '
        '"within seed noise".\n\n',
        header,
    ]
    for method, _ in rows:
        if method == BASELINE:
            continue
        cells = []
        for col in columns:
            d = versus.get((method, col.label))
            if d is None or d.mean is None:
                cells.append("-")
                continue
            interval = "" if d.low is None else f" [{d.low:+.{decimals + 1}f}, {d.high:+.{decimals + 1}f}]"
            cells.append(
                f"{d.mean:+.{decimals + 1}f}{interval}, {d.n_label}"
                + (", Welch" if d.test == "welch" else "")
                + f", {d.verdict()}"
            )
        lines.append("| " + method + " | " + " | ".join(cells) + " |\n")
    lines += ["\n## Wall time to best checkpoint, median over seeds (s)\n\n", header]
    lines += ["| " + m + " | " + " | ".join(fmt(s[c][2], 0) for c in labels) + " |\n" for m, s in rows]
    lines += ["\n## Seeds per cell\n\n", header]
    lines += ["| " + m + " | " + " | ".join(str(s[c][3]) for c in labels) + " |\n" for m, s in rows]
    if captions:
        lines += ["\n## Figures\n\n"] + [f"- `{name}`: {caption}\n" for name, caption in captions]
    text = "".join(lines)
    with open(path, "w") as f:
        f.write(text)
    return text


def write_table_csv(path: str, rows, columns: Sequence[Column], bests, versus=None) -> None:
    versus = comparisons(bests, columns) if versus is None else versus
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["method"]
            + [
                f"{c.label} {what}"
                for c in columns
                for what in (
                    "best",
                    "median",
                    "median wall to best (s)",
                    "seeds",
                    "worst",
                    "mean",
                    "std",
                    f"mean difference to {BASELINE}",
                    "test",
                    "p",
                    "Holm-adjusted p",
                )
            ]
        )
        for method, stats in rows:
            values = []
            for c in columns:
                mean, std = mean_std(list(bests.get(c.label, {}).get(method, {}).values()))
                d = versus.get((method, c.label), Paired(0, None, None, None, None, test=""))
                values += [
                    *stats[c.label],
                    mean,
                    std,
                    d.mean,
                    d.test if d.mean is not None else None,
                    d.p,
                    d.p_adjusted,
                ]
            w.writerow([method] + ["" if v is None else (round(v, 6) if isinstance(v, float) else v) for v in values])


FIGURE_CAPTIONS = {
    "figure1": "Figure 1: wall time from the start of training to the first validation that reached the run's "
    "best, per seed (s); one panel per column, {box}; n per method under its name.",
    "figure2": "Figure 2: best dev metric per seed, one panel and y axis per column (the task's metric, in %), "
    "{box}; n per method under its name; reference rows in the column's metric as dashed lines.",
}


def add_earlier_runs(rows, paths, out_dir, tasks=None, methods=None):
    """``rows`` and the runs of earlier reports' runs.csv files (runs whose logs are gone, e.g. made
    on another machine). A run (column, method, seed) found twice counts once if both places give it
    the same best value at the same update, and is an error otherwise, never a silent pick."""
    scored = lambda r: None if r.result is None else (r.result.best, r.result.best_update)  # noqa: E731
    merged, where = list(rows), {}
    for r in rows:
        where[(r.column.label, r.method, r.seed)] = (r, r.log)
    for path in paths:
        for r in read_runs_csv(path, out_dir):
            if (tasks and r.column.task not in tasks) or (methods and r.method not in methods):
                continue
            key = (r.column.label, r.method, r.seed)
            if key in where:
                there, place = where[key]
                if scored(there) != scored(r):
                    raise ValueError(
                        f"{path}: {r.column.label} {r.method} seed {r.seed} (best, update) {scored(r)} there and "
                        f"{scored(there)} in {place}: not the same run; keep one of the two (move the log away "
                        "or leave that runs.csv out)"
                    )
                continue  # the same run found again
            where[key] = (r, path)
            merged.append(r)
    return merged


def cmd_report(args) -> int:
    published = []
    for path in args.references:
        try:
            published += dev_scores.read_references(path)
        except (OSError, ValueError) as e:
            print(f"error: --references: {e}", file=sys.stderr)
            return 1
    if args.runs_csv:
        rows = read_runs_csv(args.runs_csv, args.out_dir)
        if args.tasks:
            rows = [r for r in rows if r.column.task in args.tasks]
        if args.methods:
            rows = [r for r in rows if r.method in args.methods]
        columns = list(dict.fromkeys(r.column for r in rows))
    else:
        found = discover(args.out_dir)
        if args.tasks:
            found = {t: v for t, v in found.items() if t in args.tasks}
        if args.methods:
            found = {t: {m: s for m, s in v.items() if m in args.methods} for t, v in found.items()}
        if not any(found.values()) and not args.add_runs:
            print(f"error: no {args.out_dir}/TASK/METHOD/seedN/{LOG_NAME}", file=sys.stderr)
            return 1
        overrides = parse_metric_overrides(args.metric)
        columns_by_task = {task: columns_for(task, overrides) for task in found}
        columns = [c for task in ordered(found, TASKS) for c in columns_by_task[task]]
        rows = collect_all(found, columns_by_task, args.include_unfinished)
    if args.add_runs:
        try:
            rows = add_earlier_runs(rows, args.add_runs, args.out_dir, args.tasks, args.methods)
        except (OSError, ValueError) as e:
            print(f"error: --add-runs: {e}", file=sys.stderr)
            return 1
        joined = list(dict.fromkeys([*columns, *(r.column for r in rows)]))
        # Table 2's column order, wherever a task's runs come from (logs or an earlier runs.csv)
        rank = {task: i for i, task in enumerate(ordered({c.task for c in joined}, TASKS))}
        columns = sorted(joined, key=lambda c: rank[c.task])
    if not rows:
        print(f"error: no run in {args.runs_csv}", file=sys.stderr)
        return 1
    for row in rows:
        if row.problem and row.problem != "unfinished (included)":
            print(
                f"[report] {row.column.label} {row.method} seed {row.seed} not counted: {row.problem}", file=sys.stderr
            )
    cells = summarise(rows)
    table = table_rows(cells, columns)
    bests = seed_bests(rows)
    versus = comparisons(bests, columns, args.independent or ())
    references = []
    if args.majority_from:
        majority = dev_scores.majority_reference(args.majority_from, columns)
        if majority is None:
            print(
                f"error: --majority-from {args.majority_from}: no TASK-bin/label of these tasks there", file=sys.stderr
            )
            return 1
        references.append(majority)
    references += published
    report_dir = args.report_dir or os.path.join(args.out_dir, "report")
    earlier = os.path.join(report_dir, "runs.csv")
    if not (args.runs_csv or args.replace) and os.path.exists(earlier):
        try:
            named = [f"{r.column.label} {r.method} seed {r.seed}" for r in read_runs_csv(earlier, args.out_dir)]
        except ValueError as e:
            print(f"error: --report-dir: {e}", file=sys.stderr)
            return 1
        kept = [f"{r.column.label} {r.method} seed {r.seed}" for r in rows]
        error = dropped_runs_error(earlier, named, kept, f"--add-runs {earlier}")
        if error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    os.makedirs(report_dir, exist_ok=True)
    captions = []
    if not args.no_plots:
        try:
            import logging

            logging.getLogger("matplotlib").setLevel(logging.WARNING)  # fairseq's import sets DEBUG logging
            import matplotlib  # noqa: F401
        except ImportError:
            print("error: figures need matplotlib (pip install matplotlib), or pass --no-plots", file=sys.stderr)
            return 1
        metrics = ", ".join(sorted({c.name for c in columns}))
        figures.distributions(
            os.path.join(report_dir, "figure1.png"),
            cells,
            columns,
            lambda r: r.wall_to_best,
            "wall time to best checkpoint (s)",
        )
        figures.distributions(
            os.path.join(report_dir, "figure2.png"),
            cells,
            columns,
            lambda r: r.best,
            f"best dev metric (%: {metrics})",
            references,
        )
        box = f"boxes where a method has {figures.BOX_FROM} seeds or more, else the median as a bar"
        captions = [(f"{name}.png / .svg", caption.format(box=box)) for name, caption in FIGURE_CAPTIONS.items()]
    text = write_markdown(
        os.path.join(report_dir, "table2.md"), table, columns, args.decimals, bests, captions, references, versus
    )
    write_table_csv(os.path.join(report_dir, "table2.csv"), table, columns, bests, versus)
    if not args.runs_csv:
        write_runs_csv(os.path.join(report_dir, "runs.csv"), rows, args.out_dir)
    print(text)
    print(
        f"[report] wrote {report_dir}/table2.md, table2.csv"
        + ("" if args.runs_csv else ", runs.csv")
        + ("" if args.no_plots else ", figure1.png/.svg, figure2.png/.svg")
    )
    return 0


# ------------------------------------------------------------------------------------ CLI --


def check_template(template: str) -> str:
    try:
        runs.format_command(template, runs.Run("T", "m", 1, "d"))
    except (KeyError, IndexError, ValueError) as e:
        raise argparse.ArgumentTypeError(
            f"bad --command template ({e!r}): fields are {{task}} {{method}} {{seed}} {{save_dir}} {{log}}"
        ) from e
    return template


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m r3f_experiments.sweep",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command_name", required=True)
    out = argparse.ArgumentParser(add_help=False)
    out.add_argument("--out-dir", default="checkpoints/glue", help="runs go to OUT_DIR/TASK/METHOD/seedSEED")
    sweep = argparse.ArgumentParser(add_help=False, parents=[out])
    sweep.add_argument("--tasks", nargs="+", help=f"required for run ({' '.join(TASKS)})")
    sweep.add_argument("--methods", nargs="+", help=f"required for run ({' '.join(METHODS)})")
    sweep.add_argument("--seeds", nargs="+", default=["1-10"], help="seeds: N, FIRST-LAST or a list (default 1-10)")
    sweep.add_argument(
        "--command",
        type=check_template,
        default=DEFAULT_COMMAND,
        help="bash command template; fields {task} {method} {seed} {save_dir} {log}",
    )
    sweep.add_argument("--all", action="store_true", help="with --dry-run: print finished runs too")
    runs.add_launch_arguments(sweep)
    run = sub.add_parser("run", parents=[sweep], help="run the sweep")
    run.add_argument("--dry-run", action="store_true", help="print one command line per pending run instead")
    sub.add_parser("print", parents=[sweep], help="= run --dry-run")
    report = sub.add_parser("report", parents=[out], help="Table 2 and Figures 1-2 from the logs")
    report.add_argument("--report-dir", help="default OUT_DIR/report")
    report.add_argument(
        "--metric",
        action="append",
        default=[],
        help="TASK=[SUBSET:]NAME[,...], e.g. CoLA=mcc, MNLI=accuracy,valid1:accuracy",
    )
    report.add_argument("--tasks", nargs="+", help="only these tasks (default: every task found)")
    report.add_argument("--methods", nargs="+", help="only these methods (default: every method found)")
    report.add_argument(
        "--include-unfinished",
        action="store_true",
        help="count runs without fairseq's 'done training' line (best so far)",
    )
    report.add_argument(
        "--runs-csv",
        help="rebuild the tables from this runs.csv of an earlier report instead of "
        "the logs (its metrics and counted runs as they were)",
    )
    report.add_argument(
        "--add-runs",
        nargs="+",
        default=[],
        metavar="RUNS_CSV",
        help="add the runs of earlier reports (their runs.csv) to those of the logs, e.g. runs whose logs "
        "are gone; a run found twice counts once if both give the same best at the same update, else an "
        "error. The new runs.csv holds them all",
    )
    report.add_argument(
        "--independent",
        nargs="+",
        metavar="METHOD",
        help="methods run by another implementation (e.g. a Hugging Face peer), whose seeds do not pair "
        "with std's: compared by Welch's unpaired t-test instead of the paired one",
    )
    report.add_argument(
        "--majority-from",
        metavar="GLUE_BIN",
        help="add a majority-class row: the training set's most frequent class of GLUE_BIN/TASK-bin, scored "
        "on each column's dev subset",
    )
    report.add_argument(
        "--references",
        action="append",
        default=[],
        metavar="CSV",
        help="add rows from a CSV with the header row,column,metric,value,source (e.g. published numbers)",
    )
    report.add_argument(
        "--replace",
        action="store_true",
        help=REPLACE_HELP,
    )
    report.add_argument("--decimals", type=int, default=1)
    report.add_argument("--no-plots", action="store_true", help="tables only (no matplotlib needed)")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command_name in ("run", "print"):
            args.seeds = runs.parse_seeds(args.seeds)
            args.dry_run = args.command_name == "print" or args.dry_run
            args.launch = runs.LaunchOptions.from_args(args)
            return cmd_run(args)
        parse_metric_overrides(args.metric)
        if args.runs_csv and (args.metric or args.include_unfinished):
            raise SweepError(
                "--runs-csv holds the metrics and counted runs of its report: --metric and "
                "--include-unfinished apply to logs only"
            )
    except (argparse.ArgumentTypeError, SweepError) as e:
        parser.error(str(e))
    return cmd_report(args)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # e.g. `sweep.py print | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
