"""The demo's tables, one per task and dev set (MNLI: matched and mismatched), from the runs of a
seed sweep (RUNS_DIR/TASK/METHOD/seedN/train.log). What each column means: docs/demo.md."""

import argparse
import json
import statistics
import sys
from typing import Dict, List

from . import results
from .fairseq_logs import LOG_NAME, run_output
from .results import BASELINE, diagnosed_means, fmt, seconds_per_update


def task_table(rows: List[results.RunRow]) -> List[str]:
    """The table of one column (a task's metric on one dev set): the label names it (MNLI-m, RTE)."""
    column = rows[0].column
    by_method: Dict[str, List[results.RunRow]] = {}
    for row in rows:
        if row.result is not None:
            by_method.setdefault(row.method, []).append(row)
    bests = {m: {r.seed: r.result.best for r in rs} for m, rs in by_method.items()}
    lines = [
        f"### {column.label}: dev {column.name}" + ("" if column.subset == "valid" else f" ({column.subset})"),
        "",
        "| method | n | min / median / max | mean +- std | vs std (paired over seeds) | s / update | noise_kl |",
        "|---|---|---|---|---|---|---|",
    ]
    for method in results.ordered(by_method, results.METHODS):
        values = sorted(bests[method].values())
        mean, std = results.mean_std(values)
        if method == BASELINE or BASELINE not in bests:
            versus = "-"
        else:
            d = results.paired_against(bests[method], bests[BASELINE], column.maximize)
            versus = "-" if d.mean is None else f"{d.mean:+.2f} [{d.low:+.2f}, {d.high:+.2f}], {d.verdict()}"
        outputs = [run_output(r.log) for r in by_method[method]]
        per_update = [s for s in map(seconds_per_update, outputs) if s is not None]
        kls = [k for k in (diagnosed_means(o)["noise_kl"] for o in outputs) if k is not None]
        lines.append(
            f"| {method} | {len(values)} | {values[0]:.1f} / {statistics.median(values):.1f} / "
            f"{values[-1]:.1f} | {mean:.1f} +- {fmt(std, 1)} | {versus} | "
            f"{fmt(statistics.median(per_update) if per_update else None, 2)} | "
            f"{f'{statistics.fmean(kls):.2g}' if kls else '-'} |"
        )
    not_counted = sorted({f"{r.method} seed {r.seed} ({r.problem})" for r in rows if r.result is None})
    if not_counted:
        lines += ["", "Not counted: " + ", ".join(not_counted) + "."]
    return lines + [""]


def noise_reach_lines(path: str) -> List[str]:
    with open(path) as f:
        rows = json.load(f)
    parts = [
        f"sigma {r['eps']:g}{' x RMS' if r['noise_scale'] == 'relative' else ''}: this plugin "
        f"{r['ours']:.2g}, reference {r['reference']:.2g}"
        for r in rows
    ]
    return [
        "Noise reaching the encoder (noise_kl per sentence, dropout off, "
        "python -m r3f_experiments.bench.noise_reach): " + "; ".join(parts) + ".",
        "",
    ]


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(prog="python -m r3f_experiments.demo_table", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs_dir")
    parser.add_argument("--noise-reach", help="JSON written by bench.noise_reach --json-out")
    parser.add_argument("--out", help="also write the tables to this file")
    args = parser.parse_args(argv)
    found = results.discover(args.runs_dir)
    if not found:
        print(f"error: no {args.runs_dir}/TASK/METHOD/seedN/{LOG_NAME}", file=sys.stderr)
        sys.exit(1)
    lines: List[str] = []
    for task in results.ordered(found, results.TASKS):
        for column in results.columns_for(task, {}):
            lines += task_table(results.collect_all({task: found[task]}, {task: [column]}, False))
    if args.noise_reach:
        lines += noise_reach_lines(args.noise_reach)
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return text


if __name__ == "__main__":
    main()
