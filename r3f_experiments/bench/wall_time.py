#!/usr/bin/env python3
"""Wall time to the best checkpoint over seeds, per method, on one task (the paper's Figure 1:
training time for standard fine-tuning, R3F/R4F, SMART and FreeLB).

Reads the runs of a seed sweep (the seed sweep's layout: OUT_DIR/TASK/METHOD/seedN/train.log,
fairseq ``--log-format json``), prints a table (per method: seeds, median [min, max] wall time to
the best validation, its ratio to the baseline's median, median best metric) and writes a plot of
every seed per method (PNG and SVG; matplotlib, Agg backend).

    python -m r3f_experiments.sweep run --tasks SST-2 --methods std r3f r4f smart freelb --seeds 1-10
    python -m r3f_experiments.bench.wall_time --out-dir checkpoints/glue --task SST-2 --png sst2_wall.png

"Wall time to best" is the seed sweep's definition (docs/glue.md): fairseq's ``wall`` (seconds since the trainer
was built) at the last training record logged before the first validation that reached the
run's best value of the task's metric (train.sh's --best-checkpoint-metric, or --metric).
Only finished runs count, unless --include-unfinished.
"""

import argparse
import os
import statistics
import sys

from .. import figures, results
from ..fairseq_logs import LOG_NAME


def wall_times(out_dir: str, task: str, methods=None, metric=None, include_unfinished=False):
    """(column, {method: [results.Result per counted seed]}) for ``task``'s first metric column."""
    found = results.discover(out_dir).get(task, {})
    if methods:
        found = {m: seeds for m, seeds in found.items() if m in methods}
    if not found:
        raise SystemExit(f"error: no {out_dir}/{task}/METHOD/seedN/{LOG_NAME}")
    column = results.columns_for(task, {task: metric} if metric else {})[0]
    rows = results.collect_all({task: found}, {task: [column]}, include_unfinished)
    for row in rows:
        if row.problem and row.problem != "unfinished (included)":
            print(f"[wall_time] {row.method} seed {row.seed} not counted: {row.problem}", file=sys.stderr)
    return column, results.summarise(rows)[column.label]


def table(column, per_method, baseline: str) -> str:
    def walls(seeds):
        return [r.wall_to_best for r in seeds if r.wall_to_best is not None]

    base = walls(per_method.get(baseline, []))
    base_median = statistics.median(base) if base else None
    lines = [
        f"wall time to best {column.subset} {column.name} ({column.task}), seconds",
        "",
        f"| method | seeds | median wall to best (s) [min, max] | vs {baseline} | median best {column.name} |",
        "|---|---|---|---|---|",
    ]
    for method in results.ordered(per_method, results.METHODS):
        seeds = per_method[method]
        ws = walls(seeds)
        if not ws:
            lines.append(f"| {method} | {len(seeds)} | - | - | - |")
            continue
        median = statistics.median(ws)
        ratio = f"{median / base_median:.2f}x" if base_median else "-"  # fairseq's wall is whole seconds: 0 is possible
        best = statistics.median(r.best for r in seeds)
        lines.append(
            f"| {method} | {len(seeds)} | {median:.0f} [{min(ws):.0f}, {max(ws):.0f}] | {ratio} | {best:.2f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out-dir", default="checkpoints/glue", help="the sweep's OUT_DIR")
    p.add_argument("--task", required=True, help="TASK directory under OUT_DIR, e.g. SST-2")
    p.add_argument("--methods", nargs="+", help="only these (default: every method found)")
    p.add_argument("--metric", help="[SUBSET:]NAME of the validation metric (default: train.sh's for the task)")
    p.add_argument("--baseline", default="std", help="method the ratios refer to (default std)")
    p.add_argument("--png", help="plot path (default OUT_DIR/TASK/wall_time.png; an SVG beside it)")
    p.add_argument("--include-unfinished", action="store_true")
    args = p.parse_args(argv)

    column, per_method = wall_times(args.out_dir, args.task, args.methods, args.metric, args.include_unfinished)
    text = table(column, per_method, args.baseline)
    png = args.png or os.path.join(args.out_dir, args.task, "wall_time.png")
    figures.distributions(
        png, {column.label: per_method}, [column], lambda r: r.wall_to_best, "wall time to best checkpoint (s)"
    )
    print(text)
    print(f"[wall_time] wrote {png}")
    return text


if __name__ == "__main__":
    main()
