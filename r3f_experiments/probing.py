#!/usr/bin/env python3
"""Representational-collapse probing experiments: Aghajanyan et al. (ICLR 2021), Sec. 4, Figures 3-5.

    python -m r3f_experiments.probing cross-task [OPTIONS] [-- EXTRA fairseq-train flags]   # Figure 3
    python -m r3f_experiments.probing sequential [OPTIONS] [-- EXTRA ...]                    # Figure 4
    python -m r3f_experiments.probing cyclic     [OPTIONS] [-- EXTRA ...]                    # Figure 5
    python -m r3f_experiments.probing report     [--out-dir DIR] [--no-plots]                # re-render reports

cross-task  fine-tune on SST-2 with each method, then probe MNLI, QNLI, QQP, RTE, MRPC, CoLA.
sequential  fine-tune SST-2 -> QNLI -> QQP -> RTE, each stage from the previous stage's best
            checkpoint; probe SST-2 after every stage.
cyclic      the same chain repeated for 3 cycles; probe every task of the chain after each cycle.

Every fine-tuning stage is `bash scripts/glue/train.sh TASK METHOD SEED SAVE_DIR -- FLAGS` (the
paper's Tables 5-6). The first stage starts from the pre-trained model (train.sh's ROBERTA); a
later stage starts from the previous stage's checkpoint_best.pt with its classification head
removed (fairseq_r3f.tasks.linear_probe.strip_classification_heads: each task gets a fresh head). Every probe
is `ROBERTA= bash scripts/glue/train.sh TASK std SEED DIR -- --task sentence_prediction_probe
--probe-checkpoint STAGE/checkpoint_best.pt ...`: the probed task's Table 5 recipe, the encoder
frozen in eval mode, one new linear layer on <s> trained (fairseq_r3f/probe_task.py).

Layout: OUT_DIR/EXPERIMENT/METHOD/seedS/STAGE/{train.log,checkpoint_best.pt} and
.../STAGE/probe-TASK/train.log. Resumable: a stage or probe whose train.log has fairseq's
"done training in" line (and, for a stage, a checkpoint_best.pt) is skipped; an unfinished one is
run again, its old log kept as train.log.N. A failed stage stops its own chain only.

Report (OUT_DIR/EXPERIMENT/: report.json, report.tsv, summary.md, figureN.png): the probe score is
the best validation accuracy of the probe run (matched dev set for MNLI), averaged over seeds.
Summary per method: mean probe accuracy over every probe of the experiment, and for the chains
the source task's (first task's) probe after its first and last probing and their difference
(drop = first - last; positive = the source task's representation degraded).

Methods: by default every method of METHOD_CANDIDATES that scripts/glue/train.sh accepts (asked
with DRY_RUN=1), so a method added to train.sh (e.g. smart) needs only its name here.
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from typing import Dict, List, NamedTuple, Optional, Sequence

from . import sweep  # log parsing and resumability of the seed sweeps
from .paths import recipe

# ---- experiment design: paper Sec. 4 (Figures 3-5) --------------------------------------------
SOURCE = "SST-2"                                            # Figures 3-5 start from SST-2
CROSS_TASK_PROBES = ["MNLI", "QNLI", "QQP", "RTE", "MRPC", "CoLA"]   # Figure 3
CHAIN = ["SST-2", "QNLI", "QQP", "RTE"]                     # Figures 4 and 5
CYCLES = 3                                                  # Figure 5
METHOD_CANDIDATES = ["std++", "r3f", "r4f", "smart"]       # run: those train.sh accepts
METHOD_ALIASES = {"stdpp": "std++"}                         # the spelling of configs/glue
PROBE_RECIPE = "std"            # the probe trains with train.sh's plain sentence_prediction recipe
# Only checkpoint_best.pt of a stage is read again, and a probe's result is its log.
FINETUNE_FLAGS = ["--no-last-checkpoints", "--no-save-optimizer-state"]
PROBE_FLAGS = ["--no-save"]     # dropped by --save-probes
# -------------------------------------------------------------------------------------------------

TRAIN_SH = recipe("glue", "train.sh")
EXPERIMENTS = {"cross-task": "figure3", "sequential": "figure4", "cyclic": "figure5"}
LOG = sweep.LOG_NAME
BEST = "checkpoint_best.pt"
START = "start.pt"


class Stage(NamedTuple):
    """One fine-tuning stage of a chain and the tasks probed after it."""
    name: str          # directory name
    task: str
    cycle: int
    position: int      # 1-based, over the whole chain
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

def train_sh_accepts(method: str) -> bool:
    proc = subprocess.run(["bash", TRAIN_SH, SOURCE, method], capture_output=True, text=True,
                          env={**os.environ, "DRY_RUN": "1", "PRECISION": ""}, timeout=120)
    return proc.returncode == 0


def resolve_methods(requested: Optional[Sequence[str]]) -> List[str]:
    if not requested:
        return [m for m in METHOD_CANDIDATES if train_sh_accepts(m)]
    methods = [METHOD_ALIASES.get(m, m) for m in requested]
    unknown = [m for m in methods if not train_sh_accepts(m)]
    if unknown:
        raise SystemExit(f"error: scripts/glue/train.sh does not accept method(s) {', '.join(unknown)}")
    return methods


# ---------------------------------------------------------------------------------------- run --

def finished(log: str, needs: Optional[str] = None) -> bool:
    return sweep.is_finished(log) and (needs is None or os.path.isfile(needs))


def run_logged(argv: List[str], env: Dict[str, str], save_dir: str) -> int:
    """argv with stdout + stderr into save_dir/train.log (an unfinished old log kept as train.log.N)."""
    os.makedirs(save_dir, exist_ok=True)
    log = os.path.join(save_dir, LOG)
    sweep.keep_old_log(log)
    with open(log, "w") as f:
        f.write("# " + " ".join(shlex.quote(a) for a in argv) + "\n")
        f.flush()
        return subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              env={**os.environ, **env}).returncode


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
            argv = ["bash", TRAIN_SH, stage.task, method, str(seed), stage_dir, "--",
                    *FINETUNE_FLAGS, *args.extra, *args.finetune_flags]
            rc = run_logged(argv, env, stage_dir)
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
            argv = ["bash", TRAIN_SH, task, PROBE_RECIPE, str(seed), probe_dir, "--",
                    "--task", "sentence_prediction_probe", "--probe-checkpoint", best,
                    *([] if args.save_probes else PROBE_FLAGS), *args.extra, *args.probe_flags]
            t0 = time.monotonic()
            rc = run_logged(argv, {"ROBERTA": ""}, probe_dir)
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
        result = sweep.collect(output, [sweep.Column(task, "valid", "accuracy", task)])[task]
    except sweep.MetricMissing:
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
                        records.append({"method": method, "seed": int(seed_dir[4:]), "stage": stage.name,
                                        "position": stage.position, "cycle": stage.cycle,
                                        "stage_task": stage.task, "probe_task": task, **score, "log": log})
    return records


def mean_by(records: Sequence[dict], *keys: str) -> Dict[tuple, float]:
    """Mean probe accuracy over seeds per distinct value of ``keys``."""
    groups: Dict[tuple, List[float]] = {}
    for r in records:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r["accuracy"])
    return {k: statistics.mean(v) for k, v in groups.items()}


def summarise(records: Sequence[dict], source: str) -> List[dict]:
    """Per method: mean probe accuracy (over every probe, each averaged over seeds) and the
    source task's probe at its first and last probing, and the drop between them."""
    per_probe = mean_by(records, "method", "position", "probe_task")
    rows = []
    for method in sweep.ordered({m for m, _, _ in per_probe}, METHOD_CANDIDATES):
        mine = {(p, t): a for (m, p, t), a in per_probe.items() if m == method}
        src = [a for (p, t), a in sorted(mine.items()) if t == source]
        first, last = (src[0], src[-1]) if len(src) >= 2 else (None, None)
        rows.append({"method": method, "mean_probe_accuracy": statistics.mean(mine.values()),
                     "probes": len(mine), "seeds": len({r["seed"] for r in records if r["method"] == method}),
                     "source_first": first, "source_last": last,
                     "source_drop": None if first is None else first - last})
    return rows


def write_summary(path: str, experiment: str, source: str, rows: Sequence[dict]) -> str:
    f1 = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    lines = [f"## Probing, {experiment} ({EXPERIMENTS[experiment]}): probe accuracy (%), mean over seeds\n\n",
             f"| method | mean probe accuracy | probes | seeds | {source} probe first | {source} probe last "
             f"| {source} drop |\n|---|---|---|---|---|---|---|\n"]
    lines += [f"| {r['method']} | {f1(r['mean_probe_accuracy'])} | {r['probes']} | {r['seeds']} | "
              f"{f1(r['source_first'])} | {f1(r['source_last'])} | {f1(r['source_drop'])} |\n" for r in rows]
    text = "".join(lines)
    with open(path, "w") as f:
        f.write(text)
    return text


def plot(path: str, experiment: str, stages: Sequence[Stage], records: Sequence[dict]) -> None:
    import logging

    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # fairseq's import sets DEBUG logging
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = sweep.ordered({r["method"] for r in records}, METHOD_CANDIDATES)
    if experiment == "cross-task":
        tasks = list(stages[0].probes)
        acc = mean_by(records, "method", "probe_task")
        fig, ax = plt.subplots(figsize=(1.2 * len(tasks) + 2, 3.5))
        width = 0.8 / max(1, len(methods))
        for i, m in enumerate(methods):
            ax.bar([x + i * width for x in range(len(tasks))], [acc.get((m, t), 0.0) for t in tasks],
                   width, label=m)
        ax.set_xticks([x + width * (len(methods) - 1) / 2 for x in range(len(tasks))])
        ax.set_xticklabels(tasks)
        ax.set_title(f"Figure 3: probing after fine-tuning on {stages[0].task}")
        axes = [ax]
    elif experiment == "sequential":
        acc = mean_by(records, "method", "position")
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for m in methods:
            xs = [s.position for s in stages if (m, s.position) in acc]
            ax.plot(xs, [acc[(m, x)] for x in xs], marker="o", label=m)
        ax.set_xticks([s.position for s in stages])
        ax.set_xticklabels([s.task for s in stages])
        ax.set_xlabel("after fine-tuning on")
        ax.set_title(f"Figure 4: {stages[0].probes[0]} probe along the chain")
        axes = [ax]
    else:
        tasks = list(dict.fromkeys(t for s in stages for t in s.probes))
        acc = mean_by(records, "method", "cycle", "probe_task")
        fig, axes = plt.subplots(1, len(tasks), figsize=(3 * len(tasks), 3.2), squeeze=False)
        axes = list(axes.flat)
        for ax, t in zip(axes, tasks):
            for m in methods:
                xs = sorted(c for (mm, c, tt) in acc if mm == m and tt == t)
                ax.plot(xs, [acc[(m, c, t)] for c in xs], marker="o", label=m)
            ax.set_title(f"probe {t}")
            ax.set_xticks(sorted({s.cycle for s in stages}))
            ax.set_xlabel("cycle")
        fig.suptitle("Figure 5: probes after each cycle")
    axes[0].set_ylabel("probe accuracy (%)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


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
        plot(figure, experiment, stages, records)
    print(text + f"[probing] wrote {exp_dir}/report.json, report.tsv, summary.md"
          + ("" if no_plots or not records else f", {os.path.basename(figure)}"), flush=True)
    return text


def cmd_report(args) -> int:
    found = [e for e in EXPERIMENTS if os.path.isfile(os.path.join(args.out_dir, e, "plan.json"))]
    if not found:
        print(f"error: no {args.out_dir}/EXPERIMENT/plan.json (EXPERIMENT: {', '.join(EXPERIMENTS)})",
              file=sys.stderr)
        return 1
    for e in found:
        report(os.path.join(args.out_dir, e), args.no_plots)
    return 0


# ---------------------------------------------------------------------------------------- CLI --

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m r3f_experiments.probing", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="experiment", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out-dir", default="checkpoints/probing")
    common.add_argument("--no-plots", action="store_true", help="no PNG (no matplotlib needed)")
    exp = argparse.ArgumentParser(add_help=False, parents=[common])
    exp.add_argument("--methods", nargs="+",
                     help=f"train.sh methods (default: those of {' '.join(METHOD_CANDIDATES)} it accepts)")
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
        extra = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.experiment == "report":
        return cmd_report(args)
    args.extra = extra
    args.finetune_flags = shlex.split(args.finetune_flags)
    args.probe_flags = shlex.split(args.probe_flags)
    try:
        args.seeds = sweep.parse_seeds(args.seeds)
    except argparse.ArgumentTypeError as e:
        parser.error(str(e))
    if getattr(args, "cycles", 1) < 1:
        parser.error("--cycles must be at least 1")
    return cmd_experiment(args)


if __name__ == "__main__":
    sys.exit(main())
