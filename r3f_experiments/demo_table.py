"""The demo's tables, one per task and dev set (MNLI: matched and mismatched), from the runs of a
seed sweep (``r3f_experiments.sweep``'s layout: RUNS_DIR/TASK/METHOD/seedN/train.log).

    python -m r3f_experiments.demo_table RUNS_DIR [--noise-reach JSON] [--out FILE]

Per method: n seeds; the task's dev metric (best over a run's validations) min / median / max
and mean +- std over seeds; its paired difference to std over seeds with the verdict of
``sweep.paired_against`` (paired t-test and seed spread); the wall time per update (median over
seeds of a run's time between its first and last training records, divided by the updates in
between: start-up and validation left out); and the mean ``noise_kl`` of the R3F runs' diagnosed
steps. ``--noise-reach`` adds the line of ``bench.noise_reach``: the noise's KL through this
plugin against the reference's.
"""

import argparse
import json
import statistics
import sys
from typing import Dict, List, Optional

from . import fairseq_logs, sweep
from .sigma_sweep import diagnosed_means


def seconds_per_update(output: str) -> Optional[float]:
    points = [(int(r["num_updates"]), float(r["wall"]))
              for r in fairseq_logs.parse_json_logs(output)["train_inner"] if "wall" in r]
    if len(points) < 2 or points[-1][0] == points[0][0]:
        return None
    return (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])


def task_table(rows: List[sweep.RunRow]) -> List[str]:
    """The table of one column (a task's metric on one dev set): the label names it (MNLI-m, RTE)."""
    column = rows[0].column
    by_method: Dict[str, List[sweep.RunRow]] = {}
    for row in rows:
        if row.result is not None:
            by_method.setdefault(row.method, []).append(row)
    bests = {m: {r.seed: r.result.best for r in rs} for m, rs in by_method.items()}
    lines = [f"### {column.label}: dev {column.name}" + ("" if column.subset == "valid" else f" ({column.subset})"),
             "",
             "| method | n | min / median / max | mean +- std | vs std (paired over seeds) | s / update | noise_kl |",
             "|---|---|---|---|---|---|---|"]
    for method in sweep.ordered(by_method, sweep.METHODS):
        values = sorted(bests[method].values())
        mean, std = sweep.mean_std(values)
        if method == sweep.BASELINE or sweep.BASELINE not in bests:
            versus = "-"
        else:
            d = sweep.paired_against(bests[method], bests[sweep.BASELINE], column.maximize)
            versus = "-" if d.mean is None else f"{d.mean:+.2f} [{d.low:+.2f}, {d.high:+.2f}], {d.verdict()}"
        outputs = [sweep.run_output(r.log) for r in by_method[method]]
        per_update = [s for s in map(seconds_per_update, outputs) if s is not None]
        kls = [k for k in (diagnosed_means(o)["noise_kl"] for o in outputs) if k is not None]
        lines.append(f"| {method} | {len(values)} | {values[0]:.1f} / {statistics.median(values):.1f} / "
                     f"{values[-1]:.1f} | {mean:.1f} +- {sweep.fmt(std, 1)} | {versus} | "
                     f"{sweep.fmt(statistics.median(per_update) if per_update else None, 2)} | "
                     f"{f'{statistics.fmean(kls):.2g}' if kls else '-'} |")
    not_counted = sorted({f"{r.method} seed {r.seed} ({r.problem})" for r in rows if r.result is None})
    if not_counted:
        lines += ["", "Not counted: " + ", ".join(not_counted) + "."]
    return lines + [""]


def noise_reach_lines(path: str) -> List[str]:
    with open(path) as f:
        rows = json.load(f)
    parts = [f"sigma {r['eps']:g}{' x RMS' if r['noise_scale'] == 'relative' else ''}: this plugin "
             f"{r['ours']:.2g}, reference {r['reference']:.2g}" for r in rows]
    return ["Noise reaching the encoder (noise_kl per sentence, dropout off, "
            "python -m r3f_experiments.bench.noise_reach): " + "; ".join(parts) + ".", ""]


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(prog="python -m r3f_experiments.demo_table", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs_dir")
    parser.add_argument("--noise-reach", help="JSON written by bench.noise_reach --json-out")
    parser.add_argument("--out", help="also write the tables to this file")
    args = parser.parse_args(argv)
    found = sweep.discover(args.runs_dir)
    if not found:
        print(f"error: no {args.runs_dir}/TASK/METHOD/seedN/{sweep.LOG_NAME}", file=sys.stderr)
        sys.exit(1)
    lines: List[str] = []
    for task in sweep.ordered(found, sweep.TASKS):
        for column in sweep.columns_for(task, {}):
            lines += task_table(sweep.collect_all({task: found[task]}, {task: [column]}, False))
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
