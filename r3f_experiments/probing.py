#!/usr/bin/env python3
"""Representational-collapse probing (Aghajanyan et al., ICLR 2021, Sec. 4): cross-task probing
(Figure 3), a sequential chain of tasks (Figure 4) and a cyclic one (Figure 5), each fine-tuning
stage and each probe a run of ``scripts/glue/train.sh``. Manual: docs/probing.md."""

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from typing import Dict, List, NamedTuple, Optional, Sequence

from . import figures, runs
from .fairseq_logs import LOG_NAME, is_finished
from .paths import recipe
from .recipes import glue
from .results import Column, MetricMissing, collect, mean_by, ordered

# ---- experiment design: paper Sec. 4 (Figures 3-5) --------------------------------------------
SOURCE = "SST-2"  # Figures 3-5 start from SST-2
CROSS_TASK_PROBES = ["MNLI", "QNLI", "QQP", "RTE", "MRPC", "CoLA"]  # Figure 3
CHAIN = ["SST-2", "QNLI", "QQP", "RTE"]  # Figures 4 and 5
CYCLES = 3  # Figure 5
METHOD_CANDIDATES = ["std++", "r3f", "r4f", "smart"]  # the default methods
METHOD_ALIASES = {"stdpp": "std++"}  # the spelling of configs/glue
PROBE_RECIPE = "std"  # the probe trains with train.sh's plain sentence_prediction recipe
# Only checkpoint_best.pt of a stage is read again, and a probe's result is its log.
FINETUNE_FLAGS = ["--no-last-checkpoints", "--no-save-optimizer-state"]
PROBE_FLAGS = ["--no-save"]  # dropped by --save-probes
# -------------------------------------------------------------------------------------------------

TRAIN_SH = recipe("glue", "train.sh")
EXPERIMENTS = {"cross-task": "figure3", "sequential": "figure4", "cyclic": "figure5"}
LOG = LOG_NAME
BEST = "checkpoint_best.pt"
START = "start.pt"


class Stage(NamedTuple):
    """One fine-tuning stage of a chain and the tasks probed after it."""

    name: str  # directory name
    task: str
    cycle: int
    position: int  # 1-based, over the whole chain
    probes: tuple


def plan_cross_task(source: str, probes: Sequence[str]) -> List[Stage]:
    return [Stage(f"stage1-{source}", source, 1, 1, tuple(probes))]


def plan_sequential(chain: Sequence[str]) -> List[Stage]:
    return [Stage(f"stage{i}-{t}", t, 1, i, (chain[0],)) for i, t in enumerate(chain, 1)]


def plan_cyclic(chain: Sequence[str], cycles: int) -> List[Stage]:
    stages, n = [], len(chain)
    for c in range(1, cycles + 1):
        for i, t in enumerate(chain, 1):
            probes = tuple(dict.fromkeys(chain)) if i == n else ()
            stages.append(Stage(f"cycle{c}-stage{i}-{t}", t, c, (c - 1) * n + i, probes))
    return stages


# ------------------------------------------------------------------------------------ methods --


def resolve_methods(requested: Optional[Sequence[str]]) -> List[str]:
    """The methods to run, as the GLUE recipes name them (configs/glue's spelling accepted)."""
    methods = [METHOD_ALIASES.get(m, m) for m in requested or METHOD_CANDIDATES]
    unknown = [m for m in methods if m not in glue.METHODS]
    if unknown:
        raise SystemExit(
            f"error: unknown method(s) {', '.join(unknown)}; scripts/glue/train.sh takes {' '.join(glue.METHODS)}"
        )
    return methods


# ---------------------------------------------------------------------------------------- run --


def finished(log: str, needs: Optional[str] = None) -> bool:
    return is_finished(log) and (needs is None or os.path.isfile(needs))


def strip_heads(src: str, dst: str) -> None:
    from fairseq_r3f.tasks.linear_probe import strip_classification_heads  # imports torch + fairseq: only when needed

    strip_classification_heads(src, dst)


def run_chain(args, stages: Sequence[Stage], method: str, seed: int, run_dir: str) -> bool:
    """Every stage and probe of one (method, seed); False once something failed."""
    start = os.environ.get("ROBERTA", "roberta.large/model.pt")
    tag = f"[probing] {method} seed {seed}"
    for stage in stages:
        stage_dir = os.path.join(run_dir, stage.name)
        best = os.path.join(stage_dir, BEST)
        if finished(os.path.join(stage_dir, LOG), best):
            print(f"{tag} {stage.name}: skipped (finished)", flush=True)
        else:
            env = {"ROBERTA": start}
            if stage.position > 1:
                os.makedirs(stage_dir, exist_ok=True)
                env["ROBERTA"] = os.path.join(stage_dir, START)
                strip_heads(start, env["ROBERTA"])
            t0 = time.monotonic()
            print(f"{tag} {stage.name}: fine-tuning {stage.task} from {start or 'scratch'}", flush=True)
            argv = [
                "bash",
                TRAIN_SH,
                stage.task,
                method,
                str(seed),
                stage_dir,
                "--",
                *FINETUNE_FLAGS,
                *args.extra,
                *args.finetune_flags,
            ]
            rc = runs.run_logged(argv, stage_dir, env, header=True)
            if rc != 0 or not finished(os.path.join(stage_dir, LOG), best):
                print(f"{tag} {stage.name}: FAILED (exit {rc}); see {stage_dir}/{LOG}", flush=True)
                return False
            print(f"{tag} {stage.name}: done in {time.monotonic() - t0:.0f} s", flush=True)
            if stage.position > 1:
                os.remove(env["ROBERTA"])
        start = best
        for task in stage.probes:
            probe_dir = os.path.join(stage_dir, f"probe-{task}")
            if finished(os.path.join(probe_dir, LOG)):
                continue
            argv = [
                "bash",
                TRAIN_SH,
                task,
                PROBE_RECIPE,
                str(seed),
                probe_dir,
                "--",
                "--task",
                "sentence_prediction_probe",
                "--probe-checkpoint",
                best,
                *([] if args.save_probes else PROBE_FLAGS),
                *args.extra,
                *args.probe_flags,
            ]
            t0 = time.monotonic()
            rc = runs.run_logged(argv, probe_dir, {"ROBERTA": ""}, header=True)
            if rc != 0 or not finished(os.path.join(probe_dir, LOG)):
                print(f"{tag} {stage.name}: probe {task} FAILED (exit {rc}); see {probe_dir}/{LOG}", flush=True)
                return False
            print(f"{tag} {stage.name}: probe {task} done in {time.monotonic() - t0:.0f} s", flush=True)
    return True


def cmd_experiment(args) -> int:
    chain = getattr(args, "chain", None) or CHAIN
    if args.experiment == "cross-task":
        stages = plan_cross_task(args.source or SOURCE, args.probe_tasks or CROSS_TASK_PROBES)
    elif args.experiment == "sequential":
        stages = plan_sequential(chain)
    else:
        stages = plan_cyclic(chain, args.cycles)
    methods = resolve_methods(args.methods)
    exp_dir = os.path.join(args.out_dir, args.experiment)
    os.makedirs(exp_dir, exist_ok=True)
    with open(os.path.join(exp_dir, "plan.json"), "w") as f:
        json.dump({"experiment": args.experiment, "stages": [s._asdict() for s in stages]}, f, indent=1)
    failed = []
    for method in methods:
        for seed in args.seeds:
            if not run_chain(args, stages, method, seed, os.path.join(exp_dir, method, f"seed{seed}")):
                failed.append((method, seed))
    report(exp_dir, args.no_plots)
    if failed:
        print("[probing] failed: " + ", ".join(f"{m} seed {s}" for m, s in failed), flush=True)
    return 1 if failed else 0


# ------------------------------------------------------------------------------------- report --


def probe_score(log: str, task: str) -> Optional[Dict[str, float]]:
    """Best validation accuracy of a finished probe run and the update it was reached at."""
    if not finished(log):
        return None
    with open(log, errors="replace") as f:
        output = f.read()
    try:
        result = collect(output, [Column(task, "valid", "accuracy", task)])[task]
    except MetricMissing:
        return None
    return {"accuracy": result.best, "update": result.best_update}


def collect_records(exp_dir: str, stages: Sequence[Stage]) -> List[dict]:
    records = []
    for method in sorted(d for d in os.listdir(exp_dir) if os.path.isdir(os.path.join(exp_dir, d))):
        for seed_dir in sorted(os.listdir(os.path.join(exp_dir, method))):
            if not seed_dir.startswith("seed"):
                continue
            for stage in stages:
                for task in stage.probes:
                    log = os.path.join(exp_dir, method, seed_dir, stage.name, f"probe-{task}", LOG)
                    score = probe_score(log, task)
                    if score is not None:
                        records.append(
                            {
                                "method": method,
                                "seed": int(seed_dir[4:]),
                                "stage": stage.name,
                                "position": stage.position,
                                "cycle": stage.cycle,
                                "stage_task": stage.task,
                                "probe_task": task,
                                **score,
                                "log": log,
                            }
                        )
    return records


def summarise(records: Sequence[dict], source: str) -> List[dict]:
    """Per method: mean probe accuracy (over every probe, each averaged over seeds) and the
    source task's probe at its first and last probing, and the drop between them."""
    per_probe = mean_by(records, "method", "position", "probe_task")
    rows = []
    for method in ordered({m for m, _, _ in per_probe}, METHOD_CANDIDATES):
        mine = {(p, t): a for (m, p, t), a in per_probe.items() if m == method}
        src = [a for (p, t), a in sorted(mine.items()) if t == source]
        first, last = (src[0], src[-1]) if len(src) >= 2 else (None, None)
        rows.append(
            {
                "method": method,
                "mean_probe_accuracy": statistics.mean(mine.values()),
                "probes": len(mine),
                "seeds": len({r["seed"] for r in records if r["method"] == method}),
                "source_first": first,
                "source_last": last,
                "source_drop": None if first is None else first - last,
            }
        )
    return rows


def write_summary(path: str, experiment: str, source: str, rows: Sequence[dict]) -> str:
    f1 = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    lines = [
        f"## Probing, {experiment} ({EXPERIMENTS[experiment]}): probe accuracy (%), mean over seeds\n\n",
        f"| method | mean probe accuracy | probes | seeds | {source} probe first | {source} probe last "
        f"| {source} drop |\n|---|---|---|---|---|---|---|\n",
    ]
    lines += [
        f"| {r['method']} | {f1(r['mean_probe_accuracy'])} | {r['probes']} | {r['seeds']} | "
        f"{f1(r['source_first'])} | {f1(r['source_last'])} | {f1(r['source_drop'])} |\n"
        for r in rows
    ]
    text = "".join(lines)
    with open(path, "w") as f:
        f.write(text)
    return text


def report(exp_dir: str, no_plots: bool = False) -> Optional[str]:
    with open(os.path.join(exp_dir, "plan.json")) as f:
        plan = json.load(f)
    experiment = plan["experiment"]
    stages = [Stage(**{**s, "probes": tuple(s["probes"])}) for s in plan["stages"]]
    source = stages[0].task
    records = collect_records(exp_dir, stages)
    rows = summarise(records, source)
    with open(os.path.join(exp_dir, "report.json"), "w") as f:
        json.dump({"experiment": experiment, "source": source, "summary": rows, "records": records}, f, indent=1)
    columns = ["method", "seed", "stage", "position", "cycle", "stage_task", "probe_task", "accuracy", "update", "log"]
    with open(os.path.join(exp_dir, "report.tsv"), "w") as f:
        f.write("\t".join(columns) + "\n")
        f.writelines("\t".join(str(r[c]) for c in columns) + "\n" for r in records)
    text = write_summary(os.path.join(exp_dir, "summary.md"), experiment, source, rows)
    figure = os.path.join(exp_dir, EXPERIMENTS[experiment] + ".png")
    if records and not no_plots:
        figures.probing_figure(figure, experiment, stages, records, METHOD_CANDIDATES)
    print(
        text
        + f"[probing] wrote {exp_dir}/report.json, report.tsv, summary.md"
        + ("" if no_plots or not records else f", {os.path.basename(figure)}"),
        flush=True,
    )
    return text


def cmd_report(args) -> int:
    found = [e for e in EXPERIMENTS if os.path.isfile(os.path.join(args.out_dir, e, "plan.json"))]
    if not found:
        print(f"error: no {args.out_dir}/EXPERIMENT/plan.json (EXPERIMENT: {', '.join(EXPERIMENTS)})", file=sys.stderr)
        return 1
    for e in found:
        report(os.path.join(args.out_dir, e), args.no_plots)
    return 0


# ---------------------------------------------------------------------------------------- CLI --


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m r3f_experiments.probing",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="experiment", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out-dir", default="checkpoints/probing")
    common.add_argument("--no-plots", action="store_true", help="no PNG (no matplotlib needed)")
    exp = argparse.ArgumentParser(add_help=False, parents=[common])
    exp.add_argument("--methods", nargs="+", help=f"GLUE recipe methods (default: {' '.join(METHOD_CANDIDATES)})")
    exp.add_argument("--seeds", nargs="+", default=["1"], help="N, FIRST-LAST or a list (default 1)")
    exp.add_argument("--finetune-flags", default="", help="extra fairseq-train flags of the fine-tuning stages")
    exp.add_argument("--probe-flags", default="", help="extra fairseq-train flags of the probes")
    exp.add_argument("--save-probes", action="store_true", help="keep the probes' checkpoints (default --no-save)")
    cross = sub.add_parser("cross-task", parents=[exp], help="Figure 3")
    cross.add_argument("--source", help=f"default {SOURCE}")
    cross.add_argument("--probe-tasks", nargs="+", help=f"default {' '.join(CROSS_TASK_PROBES)}")
    for name, figure in (("sequential", "Figure 4"), ("cyclic", "Figure 5")):
        p = sub.add_parser(name, parents=[exp], help=figure)
        p.add_argument("--chain", nargs="+", help=f"default {' '.join(CHAIN)}")
        if name == "cyclic":
            p.add_argument("--cycles", type=int, default=CYCLES)
    sub.add_parser("report", parents=[common], help="re-render every experiment's report from its logs")
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.experiment == "report":
        return cmd_report(args)
    args.extra = extra
    args.finetune_flags = shlex.split(args.finetune_flags)
    args.probe_flags = shlex.split(args.probe_flags)
    try:
        args.seeds = runs.parse_seeds(args.seeds)
    except argparse.ArgumentTypeError as e:
        parser.error(str(e))
    if getattr(args, "cycles", 1) < 1:
        parser.error("--cycles must be at least 1")
    return cmd_experiment(args)


if __name__ == "__main__":
    sys.exit(main())
