#!/usr/bin/env python3
"""Representational-collapse probing (Aghajanyan et al., ICLR 2021, Sec. 4): cross-task probing
(Figure 3), a sequential chain of tasks (Figure 4) and a cyclic one (Figure 5). Each fine-tuning
stage is a run of ``scripts/glue/train.sh``; each probe is ``PROBE_CHECKPOINT=... train.sh TASK std``,
run by fairseq or (default) fitted on the frozen encoder's cached features
(``r3f_experiments.feature_probe``). The pre-trained encoder is probed too (method "pretrained").
Tasks default to those in GLUE_BIN. Manual: docs/probing.md."""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from typing import Dict, List, NamedTuple, Optional, Sequence

from . import feature_probe, figures, runs
from .fairseq_logs import LOG_NAME, is_finished
from .paths import recipe
from .recipes import glue
from .results import (
    REPLACE_HELP,
    Column,
    MetricMissing,
    collect,
    comparisons,
    dropped_runs_error,
    fmt,
    mean_by,
    mean_std,
    ordered,
)

# ---- experiment design: paper Sec. 4 (Figures 3-5) --------------------------------------------
SOURCE = "SST-2"  # Figures 3-5 start from SST-2
CHAIN = ["SST-2", "QNLI", "QQP", "RTE"]  # Figures 4 and 5 (the tasks of it in GLUE_BIN, then the others)
CHAIN_LENGTH = len(CHAIN)
CYCLES = 3  # Figure 5
METHOD_CANDIDATES = ["std++", "r3f", "r4f", "smart"]  # the default methods
METHOD_ORDER = ["pretrained", "std", "std++", "rdrop", "r3f", "r4f", "r3f-rel", "smart", "freelb"]
PRETRAINED = "pretrained"  # the row of the pre-trained encoder, probed before any fine-tuning
METHOD_ALIASES = {"stdpp": "std++"}  # the spelling of configs/glue
PROBE_RECIPE = "std"  # the probe trains with train.sh's plain sentence_prediction recipe
# Only checkpoint_best.pt of a stage is read again, and a probe's result is its log (or probe.json).
FINETUNE_FLAGS = ["--no-last-checkpoints", "--no-save-optimizer-state"]
PROBE_FLAGS = ["--no-save"]  # dropped by --save-probes
BACKENDS = ("features", "fairseq")
# what a report compares: each probe's best dev accuracy (the paper's), or its best value of the
# task's own metric (the recipe's --best-checkpoint-metric: CoLA MCC, MRPC/QQP (acc + F1) / 2),
# which sees what accuracy hides on a task with a large majority class
SCORES = {"accuracy": "", "metric": "-metric"}  # score -> the suffix of its report files
CHAIN_LOG = "chain.log"  # a chain's own driver output under --jobs
# -------------------------------------------------------------------------------------------------

TRAIN_SH = recipe("glue", "train.sh")
EXPERIMENTS = {"cross-task": "figure3", "sequential": "figure4", "cyclic": "figure5"}
LOG = LOG_NAME
BEST = "checkpoint_best.pt"
START = "start.pt"
STARTED_FROM = "started_from.json"  # a trained stage's start checkpoint (path, sha256): --stages-from checks it


class Stage(NamedTuple):
    """One fine-tuning stage of a chain and the tasks probed after it."""

    name: str  # directory name
    task: str
    cycle: int
    position: int  # 1-based, over the whole chain
    probes: tuple


def tasks_in(glue_bin: str) -> List[str]:
    """The tasks binarised in GLUE_BIN (TASK-bin folders), Table 2's order first, then by name."""
    try:
        names = [d[: -len("-bin")] for d in os.listdir(glue_bin) if d.endswith("-bin")]
    except OSError as e:
        raise SystemExit(
            f"error: GLUE_BIN={glue_bin}: {e.strerror} (scripts/glue/prepare.sh writes TASK-bin there)"
        ) from e
    names = [n for n in names if os.path.isfile(os.path.join(glue_bin, f"{n}-bin", "input0", "dict.txt"))]
    return ordered(names, glue.TASKS)


def default_chain(present: Sequence[str], source: str) -> List[str]:
    """The paper's chain where its tasks are present, then the other present tasks, up to its length."""
    rest = [t for t in CHAIN if t in present] + [t for t in present if t not in CHAIN]
    return [source, *[t for t in rest if t != source]][:CHAIN_LENGTH]


def check_tasks(tasks: Sequence[str], present: Sequence[str], glue_bin: str) -> None:
    missing = [t for t in dict.fromkeys(tasks) if t not in present]
    if missing:
        raise SystemExit(
            f"error: GLUE_BIN={glue_bin} holds no {', '.join(missing)} (it has {' '.join(present) or 'no task'}; "
            "scripts/glue/prepare.sh TASK GLUE_DIR GLUE_BIN writes one)"
        )


def plan_pretrained(probes: Sequence[str]) -> Stage:
    """Position 0: the pre-trained encoder, probed on every task the experiment probes."""
    return Stage("stage0-pretrained", "", 0, 0, tuple(dict.fromkeys(probes)))


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


def probe_done(probe_dir: str, args) -> bool:
    """A finished probe of this backend; one trained on another subset or pooling is refused, not redone."""
    if args.probe_backend == "fairseq":
        return finished(os.path.join(probe_dir, LOG))
    path = os.path.join(probe_dir, feature_probe.PROBE_RESULT)
    if not os.path.isfile(path):
        return False
    with open(path) as f:
        record = json.load(f)
    stored = record.get("train_examples")
    if stored != args.probe_train_examples:
        raise SystemExit(
            f"error: {path} was trained on {stored} examples, not --probe-train-examples "
            f"{args.probe_train_examples}: use another --out-dir (or move that folder away)"
        )
    pooling = record.get("pooling", "bos")  # probes written before --probe-pooling read <s>
    if pooling != args.probe_pooling:
        raise SystemExit(
            f"error: {path} read {pooling}-pooled features, not --probe-pooling {args.probe_pooling}: "
            "use another --out-dir (or move that folder away)"
        )
    return True


def run_probe(args, task: str, checkpoint: str, seed: int, probe_dir: str) -> bool:
    """One probe of ``checkpoint``'s encoder on ``task``: fitted on cached features, or a
    fairseq-train run of the same command (``--probe-backend fairseq``)."""
    flags = [*args.extra, *args.probe_flags]
    if args.probe_backend == "features":
        try:
            feature_probe.run_probe(
                checkpoint,
                task,
                seed,
                probe_dir,
                args.feature_cache,
                flags,
                args.probe_train_examples,
                args.probe_pooling,
            )
        except SystemExit as e:
            print(f"{e}", file=sys.stderr, flush=True)
            return False
        return True
    argv = [
        "bash",
        TRAIN_SH,
        task,
        PROBE_RECIPE,
        str(seed),
        probe_dir,
        "--",
        *([] if args.save_probes else PROBE_FLAGS),
    ]
    rc = runs.run_logged([*argv, *flags], probe_dir, {"ROBERTA": "", "PROBE_CHECKPOINT": checkpoint}, header=True)
    return rc == 0 and finished(os.path.join(probe_dir, LOG))


def stage_flags(args) -> List[str]:
    """The flags after train.sh's ``--`` of every fine-tuning stage."""
    return [*FINETUNE_FLAGS, *args.extra, *args.finetune_flags]


def comparable_settings(words: Sequence[str]) -> List[str]:
    """A stage's fairseq-train settings less what names its own folders: the start checkpoint
    (a copy in the stage's folder, checked by its sha256 instead) and --save-dir; the data folder
    by its real path (GLUE_BIN may reach it through a link)."""
    kept, skip = [], False
    for i, word in enumerate(words):
        if skip:
            skip = False
            continue
        if word in ("--finetune-from-model", "--save-dir"):
            skip = True
            continue
        kept.append(os.path.realpath(word) if i == 0 and os.path.exists(word) else word)
    return kept


def reusable_stage(args, stage: Stage, method: str, seed: int, start: str, stage_dir: str) -> Optional[str]:
    """``args.stages_from``'s finished checkpoint of this stage where it is the same fine-tuning:
    the same tasks up to this stage, the same start checkpoint (sha256) and the same settings
    (the command train.sh would build now against the one that stage recorded); None (with the
    reason printed) where not."""
    from .run_folder import RECORD_NAME, differences, read_record, settings_words

    other_stages = args.stages_from_plan
    mine = [s.task for s in args.planned_stages if 0 < s.position <= stage.position]
    theirs = [s.task for s in other_stages if 0 < s.position <= stage.position]
    if mine != theirs:
        return None
    other = next(s for s in other_stages if s.position == stage.position)
    other_dir = os.path.join(args.stages_from, method, f"seed{seed}", other.name)
    other_best = os.path.join(other_dir, BEST)
    tag = f"[probing] {method} seed {seed} {stage.name}: not taken from {other_dir}"
    if not finished(os.path.join(other_dir, LOG), other_best):
        return None
    try:
        with open(os.path.join(other_dir, STARTED_FROM)) as f:
            started = json.load(f)
    except (OSError, ValueError):
        print(f"{tag} (no readable {STARTED_FROM}: trained before starts were recorded)", flush=True)
        return None
    if started.get("sha256") != (feature_probe.file_digest(start) if start else None):
        print(f"{tag} (it started from {started.get('checkpoint') or 'scratch'}, not {start or 'scratch'})", flush=True)
        return None
    from .paths import plugin_dir
    from .recipes.run_spec import RecipeError

    try:  # the command train.sh would build for this stage, from the recipe table and the environment
        words = glue.command(
            stage.task,
            method,
            fairseq_train="fairseq-train",
            data=os.path.join(os.environ.get("GLUE_BIN", "glue_bin"), f"{stage.task}-bin"),
            user_dir=plugin_dir(),
            pretrained=start,
            seed=seed,
            save_dir=stage_dir,
            precision=glue.precision_from_env(),
            **glue.options_from_env(),
        )
    except RecipeError as e:
        print(f"{tag} (this stage's command: {e})", flush=True)
        return None
    asked = comparable_settings(settings_words([*words, *stage_flags(args)]))
    recorded = comparable_settings(shlex.split(read_record(os.path.join(other_dir, RECORD_NAME))["command"]))
    changed = differences(recorded, asked)
    if changed:
        print(f"{tag} (other settings: {'; '.join(changed)})", flush=True)
        return None
    return other_best


def run_chain(args, stages: Sequence[Stage], method: str, seed: int, run_dir: str) -> bool:
    """Every stage and probe of one (method, seed); False once something failed. Stage 0 is the
    pre-trained encoder (probed, never trained); with ``args.finetuned`` the first stage's
    checkpoint is a finished run's; with ``args.stages_from`` a stage that experiment already
    trained the same way is taken from it (probed here, not trained again)."""
    start = os.environ.get("ROBERTA", "roberta.large/model.pt")
    tag = f"[probing] {method} seed {seed}"
    for stage in stages:
        stage_dir = os.path.join(run_dir, stage.name)
        best = os.path.join(stage_dir, BEST)
        if stage.position == 0:
            best = start
        elif stage.position == 1 and getattr(args, "finetuned", None):
            best = finetuned_checkpoint(args.finetuned, stage.task, method, seed)
        elif finished(os.path.join(stage_dir, LOG), best):
            print(f"{tag} {stage.name}: skipped (finished)", flush=True)
        elif getattr(args, "stages_from", None) and (
            taken := reusable_stage(args, stage, method, seed, start, stage_dir)
        ):
            best = taken
            print(f"{tag} {stage.name}: {stage.task} taken from {taken} (the same fine-tuning)", flush=True)
        else:
            env = {"ROBERTA": start}
            os.makedirs(stage_dir, exist_ok=True)
            with open(os.path.join(stage_dir, STARTED_FROM), "w") as f:  # for a later --stages-from to compare
                digest = feature_probe.file_digest(start) if start else None  # None: from scratch
                json.dump({"checkpoint": start, "sha256": digest}, f, indent=1)
            if stage.position > 1:
                env["ROBERTA"] = os.path.join(stage_dir, START)
                strip_heads(start, env["ROBERTA"])
            t0 = time.monotonic()
            print(f"{tag} {stage.name}: fine-tuning {stage.task} from {start or 'scratch'}", flush=True)
            argv = ["bash", TRAIN_SH, stage.task, method, str(seed), stage_dir, "--", *stage_flags(args)]
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
            if probe_done(probe_dir, args):
                continue
            t0 = time.monotonic()
            if not run_probe(args, task, best, seed, probe_dir):
                print(f"{tag} {stage.name}: probe {task} FAILED; see {probe_dir}", flush=True)
                return False
            print(f"{tag} {stage.name}: probe {task} done in {time.monotonic() - t0:.0f} s", flush=True)
    return True


def finetuned_checkpoint(runs_dir: str, task: str, method: str, seed: int) -> str:
    """A finished fine-tuning run's best checkpoint, in the sweep's layout RUNS/TASK/METHOD/seedS."""
    return os.path.join(runs_dir, task, method, f"seed{seed}", BEST)


def plan_experiment(args) -> List[Stage]:
    """The experiment's stages, the tasks taken from GLUE_BIN where not named, checked there."""
    glue_bin = os.environ.get("GLUE_BIN", "glue_bin")
    present = tasks_in(glue_bin)
    source = getattr(args, "source", None) or (args.chain[0] if getattr(args, "chain", None) else SOURCE)
    if args.experiment == "cross-task":
        probes = args.probe_tasks or [t for t in present if t != source]
        stages = plan_cross_task(source, probes)
    else:
        chain = args.chain or default_chain(present, source)
        if len(chain) < 2:
            raise SystemExit(f"error: a chain needs at least 2 tasks; GLUE_BIN={glue_bin} gives {' '.join(chain)}")
        stages = plan_sequential(chain) if args.experiment == "sequential" else plan_cyclic(chain, args.cycles)
    check_tasks([s.task for s in stages] + [t for s in stages for t in s.probes], present, glue_bin)
    if not stages[0].probes and args.experiment == "cross-task":
        raise SystemExit(f"error: GLUE_BIN={glue_bin} holds no task to probe besides {source}")
    return stages


def run_in_children(args, exp_dir: str, work: Sequence[tuple]) -> List[tuple]:
    """Each (method, seed) chain in a driver of its own, ``args.jobs`` at a time; the failed ones."""
    from concurrent.futures import ThreadPoolExecutor

    def one(method: str, seed: int):
        run_dir = os.path.join(exp_dir, method, f"seed{seed}")
        os.makedirs(run_dir, exist_ok=True)
        argv = [sys.executable, "-m", "r3f_experiments.probing", *args.argv]
        argv += ["--methods", method, "--seeds", str(seed), "--jobs", "1", "--only-chain", "--", *args.extra]
        with open(os.path.join(run_dir, CHAIN_LOG), "a") as log:
            rc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT).returncode
        print(f"[probing] {method} seed {seed}: {'done' if rc == 0 else 'FAILED'} ({run_dir}/{CHAIN_LOG})", flush=True)
        return rc

    with ThreadPoolExecutor(args.jobs) as pool:
        codes = list(pool.map(lambda w: one(*w), work))
    return [w for w, rc in zip(work, codes) if rc != 0]


def load_plan(exp_dir: str) -> List[Stage]:
    with open(os.path.join(exp_dir, "plan.json")) as f:
        return [Stage(**{**s, "probes": tuple(s["probes"])}) for s in json.load(f)["stages"]]


def cmd_experiment(args) -> int:
    stages = plan_experiment(args)
    args.planned_stages = stages
    if args.stages_from:
        if not os.path.isfile(os.path.join(args.stages_from, "plan.json")):
            raise SystemExit(f"error: --stages-from {args.stages_from}: no plan.json (not an experiment's folder)")
        if os.path.realpath(args.stages_from) == os.path.realpath(os.path.join(args.out_dir, args.experiment)):
            raise SystemExit(f"error: --stages-from {args.stages_from} is this experiment's own folder")
        args.stages_from_plan = load_plan(args.stages_from)
    if args.only_chain and args.methods == [PRETRAINED]:
        methods = []
    else:
        methods = resolve_methods(args.methods)
    if args.finetuned:
        wanted = [finetuned_checkpoint(args.finetuned, stages[0].task, m, s) for m in methods for s in args.seeds]
        missing = [path for path in wanted if not os.path.isfile(path)]
        if missing:
            raise SystemExit(f"error: --finetuned {args.finetuned}: no " + ", ".join(missing))
        # a run still training, or stopped part-way, holds a checkpoint_best.pt that is not its best
        run_dirs = [os.path.dirname(path) for path in wanted]
        unfinished = [d for d in run_dirs if not finished(os.path.join(d, LOG))]
        if unfinished:
            raise SystemExit(
                f"error: --finetuned {args.finetuned}: not finished (no 'done training' line in {LOG}): "
                + ", ".join(unfinished)
            )
    pretrained = os.environ.get("ROBERTA", "roberta.large/model.pt")
    probed = [t for s in stages for t in s.probes]
    with_pretrained = not args.no_pretrained and bool(pretrained)
    if args.only_chain:
        with_pretrained = not methods  # a child runs the one chain it was given
    if not args.no_pretrained and not pretrained:
        print("[probing] no pre-trained row: ROBERTA is empty (random init)", flush=True)
    exp_dir = os.path.join(args.out_dir, args.experiment)
    os.makedirs(exp_dir, exist_ok=True)
    chains = ([(PRETRAINED, [plan_pretrained(probed)])] if with_pretrained else []) + [(m, stages) for m in methods]
    if args.only_chain:  # one chain of a parent driver's --jobs: no plan, no report
        failed = [
            (m, s)
            for m, planned in chains
            for s in args.seeds
            if not run_chain(args, planned, m, s, os.path.join(exp_dir, m, f"seed{s}"))
        ]
        return 1 if failed else 0
    plan_stages = ([plan_pretrained(probed)] if with_pretrained else []) + list(stages)
    with open(os.path.join(exp_dir, "plan.json"), "w") as f:
        json.dump({"experiment": args.experiment, "stages": [s._asdict() for s in plan_stages]}, f, indent=1)
    # seed by seed, every method of a seed together: a grid cut short still pairs its methods over seeds
    work = [(method, seed) for seed in args.seeds for method, _ in chains]
    if args.jobs > 1:
        failed = run_in_children(args, exp_dir, work)
    else:
        planned_by = dict(chains)
        failed = [
            (m, s) for m, s in work if not run_chain(args, planned_by[m], m, s, os.path.join(exp_dir, m, f"seed{s}"))
        ]
    try:
        report(exp_dir, args.no_plots)
    except RecordsError as err:  # e.g. an earlier report joined probes whose folders are not here
        print(f"error: the report: {err}", file=sys.stderr)
        return 1
    if failed:
        print("[probing] failed: " + ", ".join(f"{m} seed {s}" for m, s in failed), flush=True)
    return 1 if failed else 0


# ------------------------------------------------------------------------------------- report --


def probe_score(probe_dir: str, task: str) -> Optional[Dict[str, float]]:
    """Best validation accuracy of a finished probe and the update it was reached at, and the
    same of the task's metric: from the feature probe's probe.json, else from the fairseq probe's log."""
    result_file = os.path.join(probe_dir, feature_probe.PROBE_RESULT)
    if os.path.isfile(result_file):
        with open(result_file) as f:
            stored = json.load(f)
        pooling = stored.get("pooling", "bos")
        backend = "features" if pooling == "bos" else f"features, {pooling}-pooled"
        return {
            "accuracy": stored["accuracy"],
            "update": stored["update"],
            "metric": stored["metric"],
            "metric_value": stored["metric_value"],
            "metric_update": stored["metric_update"],
            "backend": backend,
        }
    log = os.path.join(probe_dir, LOG)
    if not finished(log):
        return None
    with open(log, errors="replace") as f:
        output = f.read()
    metric = glue.METRIC.get(task, "accuracy")
    try:
        result = collect(output, [Column(task, "valid", "accuracy", task)])[task]
        by_metric = collect(output, [Column(task, "valid", metric, task)])[task]
    except MetricMissing:
        return None
    return {
        "accuracy": result.best,
        "update": result.best_update,
        "metric": metric,
        "metric_value": by_metric.best,
        "metric_update": by_metric.best_update,
        "backend": "fairseq",
    }


def collect_records(exp_dir: str, stages: Sequence[Stage]) -> List[dict]:
    records = []
    for method in sorted(d for d in os.listdir(exp_dir) if os.path.isdir(os.path.join(exp_dir, d))):
        for seed_dir in sorted(os.listdir(os.path.join(exp_dir, method))):
            if not seed_dir.startswith("seed"):
                continue
            for stage in stages:
                for task in stage.probes:
                    probe_dir = os.path.join(exp_dir, method, seed_dir, stage.name, f"probe-{task}")
                    score = probe_score(probe_dir, task)
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
                                "probe_dir": probe_dir,
                            }
                        )
    return records


def summarise(records: Sequence[dict], source: str) -> List[dict]:
    """Per method: mean probe accuracy (over every probe, each averaged over seeds) and the
    source task's probe at its first and last probing, and the drop between them (of each
    record's ``score``)."""
    per_probe = mean_by(records, "method", "position", "probe_task", value="score")
    rows = []
    for method in ordered({m for m, _, _ in per_probe}, METHOD_ORDER):
        mine = {(p, t): a for (m, p, t), a in per_probe.items() if m == method}
        src = [a for (p, t), a in sorted(mine.items()) if t == source]
        first, last = (src[0], src[-1]) if len(src) >= 2 else (None, None)
        rows.append(
            {
                "method": method,
                "mean_probe_score": statistics.mean(mine.values()),
                "probes": len(mine),
                "seeds": len({r["seed"] for r in records if r["method"] == method}),
                "source_first": first,
                "source_last": last,
                "source_drop": None if first is None else first - last,
            }
        )
    return rows


def probe_label(experiment: str, record: dict) -> str:
    """The column a probe belongs to: the probed task (cross-task; the pre-trained row included),
    else the probed task at one point of the chain."""
    if experiment == "cross-task":
        return record["probe_task"]
    if record["position"] == 0:
        return f"{record['probe_task']} before fine-tuning"
    cycle = f", cycle {record['cycle']}" if experiment == "cyclic" else ""
    return f"{record['probe_task']} after {record['stage_task']} (stage {record['position']}{cycle})"


def probe_table(experiment: str, records: Sequence[dict]) -> List[dict]:
    """Per column and method: n, mean ± std, min / median / max over seeds, and the method against
    std paired over seeds (Holm's correction over every comparison of the experiment)."""
    bests: Dict[str, Dict[str, Dict[int, float]]] = {}
    for r in records:
        bests.setdefault(probe_label(experiment, r), {}).setdefault(r["method"], {})[r["seed"]] = r["score"]
    labels = list(bests)
    tests = comparisons(bests, [Column(label, "valid", "accuracy", label) for label in labels])
    rows = []
    for label in labels:
        for method in ordered(bests[label], METHOD_ORDER):
            values = list(bests[label][method].values())
            mean, std = mean_std(values)
            rows.append(
                {
                    "probe": label,
                    "method": method,
                    "n": len(values),
                    "mean": mean,
                    "std": std,
                    "min": min(values),
                    "median": statistics.median(values),
                    "max": max(values),
                    "vs_std": tests.get((method, label)),
                }
            )
    return rows


def score_name(score: str, records: Sequence[dict]) -> str:
    """What a report's numbers are: probe accuracy, or each probed task's metric by name."""
    if score == "accuracy":
        return "probe accuracy (%)"
    metrics = dict(sorted({(r["probe_task"], r["metric"]) for r in records}))
    return "probe score, the task's metric (" + ", ".join(f"{t} {m}" for t, m in metrics.items()) + ")"


def write_summary(
    path: str,
    experiment: str,
    source: str,
    rows: Sequence[dict],
    table: Sequence[dict] = (),
    scored: str = "probe accuracy (%)",
) -> str:
    f1 = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    lines = [
        f"## Probing, {experiment} ({EXPERIMENTS[experiment]}): {scored}, mean over seeds\n\n",
        f"| method | mean probe score | probes | seeds | {source} probe first | {source} probe last "
        f"| {source} drop |\n|---|---|---|---|---|---|---|\n",
    ]
    lines += [
        f"| {r['method']} | {f1(r['mean_probe_score'])} | {r['probes']} | {r['seeds']} | "
        f"{f1(r['source_first'])} | {f1(r['source_last'])} | {f1(r['source_drop'])} |\n"
        for r in rows
    ]
    if table:
        lines.append(
            "\nPer probe: the score over seeds (one probe per seed of the fine-tuning), and each method "
            "against std paired over seeds, Holm's correction over every comparison below.\n\n"
            "| probe | method | n | mean ± std | min / median / max | vs std (paired) [min, max] | verdict |\n"
            "|---|---|---|---|---|---|---|\n"
        )
        for r in table:
            test = r["vs_std"]
            diff = (
                "-"
                if test is None or test.mean is None
                else f"{test.mean:+.2f} [{fmt(test.low, 2)}, {fmt(test.high, 2)}]"
            )
            lines.append(
                f"| {r['probe']} | {r['method']} | {r['n']} | {fmt(r['mean'], 1)} ± {fmt(r['std'], 1)} | "
                f"{r['min']:.1f} / {r['median']:.1f} / {r['max']:.1f} | {diff} | "
                f"{'-' if test is None else test.verdict()} |\n"
            )
    text = "".join(lines)
    with open(path, "w") as f:
        f.write(text)
    return text


# the columns of report.tsv, one probe per row (the records --add-records reads back)
RECORD_COLUMNS = [
    "method",
    "seed",
    "stage",
    "position",
    "cycle",
    "stage_task",
    "probe_task",
    "accuracy",
    "update",
    "metric",
    "metric_value",
    "metric_update",
    "backend",
]
RECORD_TYPES = {"seed": int, "position": int, "cycle": int, "accuracy": float, "update": int}
RECORD_TYPES.update({"metric_value": float, "metric_update": int})


class RecordsError(ValueError):
    """An earlier report.tsv that cannot join this experiment's report."""


def read_records(path: str, stages: Sequence[Stage]) -> List[dict]:
    """The probes of an earlier report.tsv, each checked against this experiment's plan (its stage
    names, positions, tasks and probed tasks)."""
    by_name = {s.name: s for s in stages}
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise RecordsError(f"{path}: {e.strerror}") from None
    if not lines or lines[0].split("\t") != RECORD_COLUMNS:
        raise RecordsError(f"{path}: not a probing report.tsv (header: {' '.join(RECORD_COLUMNS)})")
    records = []
    for number, line in enumerate(lines[1:], 2):
        fields = line.split("\t")
        if len(fields) != len(RECORD_COLUMNS):
            raise RecordsError(f"{path}:{number}: {len(fields)} fields, expected {len(RECORD_COLUMNS)}")
        record = dict(zip(RECORD_COLUMNS, fields))
        try:
            for column, kind in RECORD_TYPES.items():
                record[column] = kind(record[column])
        except ValueError as e:
            raise RecordsError(f"{path}:{number}: {e}") from None
        stage = by_name.get(record["stage"])
        if stage is None or (stage.position, stage.cycle, stage.task) != (
            record["position"],
            record["cycle"],
            record["stage_task"],
        ):
            raise RecordsError(f"{path}:{number}: stage {record['stage']} is not a stage of this experiment's plan")
        if record["probe_task"] not in stage.probes:
            raise RecordsError(f"{path}:{number}: {record['probe_task']} is not probed after {stage.name}")
        records.append({**record, "probe_dir": f"{path}:{number}"})
    return records


def add_earlier_records(records: Sequence[dict], paths: Sequence[str], stages: Sequence[Stage]) -> List[dict]:
    """``records`` and those of earlier reports (probes whose folders are gone, e.g. made on another
    machine). A probe (method, seed, stage, probed task) found twice must agree exactly, which the
    pre-trained encoder's probes, run again, check: the same probes on the same data give the same
    numbers; a disagreement or another backend (pooling) is an error, never a silent pick."""
    key = lambda r: (r["method"], r["seed"], r["stage"], r["probe_task"])  # noqa: E731
    merged = {key(r): r for r in records}
    backends = {r["backend"] for r in records}
    for path in paths:
        added = agreed = 0
        for r in read_records(path, stages):
            if backends and r["backend"] not in backends:
                raise RecordsError(f"{r['probe_dir']}: backend {r['backend']!r}, this experiment's: {sorted(backends)}")
            there = merged.get(key(r))
            if there is None:
                merged[key(r)] = r
                added += 1
                continue
            if (there["accuracy"], there["metric_value"]) != (r["accuracy"], r["metric_value"]):
                raise RecordsError(
                    f"{r['probe_dir']}: {r['method']} seed {r['seed']} {r['stage']} probe {r['probe_task']} "
                    f"scored {r['accuracy']} / {r['metric_value']} there and {there['accuracy']} / "
                    f"{there['metric_value']} in {there['probe_dir']}: the two were not run alike"
                )
            agreed += 1
        print(f"[probing] {path}: {added} probes added, {agreed} equal to probes found again", flush=True)
    return list(merged.values())


def report(
    exp_dir: str,
    no_plots: bool = False,
    score: str = "accuracy",
    add_records: Sequence[str] = (),
    replace: bool = False,
) -> Optional[str]:
    """The experiment's report files, of each probe's ``score`` (SCORES): report.json,
    report.tsv, summary.md and the figure, their names suffixed with SCORES[score]; with the
    probes of earlier report.tsv files ``add_records`` joined. An earlier report.tsv there holding
    probes this one lacks is a RecordsError naming them, unless ``replace``."""
    with open(os.path.join(exp_dir, "plan.json")) as f:
        experiment = json.load(f)["experiment"]
    stages = load_plan(exp_dir)
    trained = [s for s in stages if s.position > 0]
    source = trained[0].task
    value = "accuracy" if score == "accuracy" else "metric_value"
    found = add_earlier_records(collect_records(exp_dir, stages), add_records, stages)
    records = [{**r, "score": r[value]} for r in found]
    suffix = SCORES[score]
    earlier = os.path.join(exp_dir, f"report{suffix}.tsv")
    if not replace and os.path.exists(earlier):
        named = lambda rs: [f"{r['method']} seed {r['seed']} {r['stage']} probe {r['probe_task']}" for r in rs]  # noqa: E731
        error = dropped_runs_error(
            earlier, named(read_records(earlier, stages)), named(found), f"--add-records {earlier}"
        )
        if error:
            raise RecordsError(error)
    rows = summarise(records, source)
    table = probe_table(experiment, records)
    serialisable = [{**r, "vs_std": None if r["vs_std"] is None else r["vs_std"]._asdict()} for r in table]
    with open(os.path.join(exp_dir, f"report{suffix}.json"), "w") as f:
        json.dump(
            {
                "experiment": experiment,
                "source": source,
                "score": score,
                "summary": rows,
                "table": serialisable,
                "records": records,
            },
            f,
            indent=1,
        )
    with open(os.path.join(exp_dir, f"report{suffix}.tsv"), "w") as f:
        f.write("\t".join(RECORD_COLUMNS) + "\n")
        f.writelines("\t".join(str(r[c]) for c in RECORD_COLUMNS) + "\n" for r in records)
    scored = score_name(score, records)
    text = write_summary(os.path.join(exp_dir, f"summary{suffix}.md"), experiment, source, rows, table, scored)
    figure = os.path.join(exp_dir, f"{EXPERIMENTS[experiment]}{suffix}.png")
    if records and not no_plots:
        figures.probing_figure(figure, experiment, trained, records, METHOD_ORDER, by_metric=score == "metric")
    print(
        text
        + f"[probing] wrote {exp_dir}/report{suffix}.json, report{suffix}.tsv, summary{suffix}.md"
        + ("" if no_plots or not records else f", {os.path.basename(figure)}"),
        flush=True,
    )
    return text


def cmd_report(args) -> int:
    found = [e for e in EXPERIMENTS if os.path.isfile(os.path.join(args.out_dir, e, "plan.json"))]
    if not found:
        print(f"error: no {args.out_dir}/EXPERIMENT/plan.json (EXPERIMENT: {', '.join(EXPERIMENTS)})", file=sys.stderr)
        return 1
    if args.add_records and len(found) > 1:
        print(
            f"error: --add-records: {args.out_dir} holds {len(found)} experiments ({', '.join(found)}); "
            "report one at a time from an out-dir of its own",
            file=sys.stderr,
        )
        return 1
    for e in found:
        try:
            report(os.path.join(args.out_dir, e), args.no_plots, args.score, args.add_records, args.replace)
        except RecordsError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
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
    exp.add_argument(
        "--save-probes", action="store_true", help="fairseq backend: keep the probes' checkpoints (default --no-save)"
    )
    exp.add_argument(
        "--probe-backend",
        choices=BACKENDS,
        default="features",
        help="features (default): the linear layer fitted on the frozen encoder's cached features, with the "
        "probe command's optimiser and schedule; fairseq: that command run by fairseq-train",
    )
    exp.add_argument("--feature-cache", help="the features' cache folder (default OUT_DIR/feature_cache)")
    exp.add_argument(
        "--probe-train-examples",
        type=int,
        metavar="N",
        help="features backend: probes train on a fixed random N examples of each training set (all by default)",
    )
    exp.add_argument(
        "--probe-pooling",
        choices=feature_probe.POOLINGS,
        default="bos",
        help="features backend: what the probe reads, bos (default): the <s> state, as the fairseq probe and the "
        "paper; mean: the mean of the final states over the tokens (a sentence encoder's output)",
    )
    exp.add_argument(
        "--jobs", type=int, default=1, help="chains (method x seed) run side by side, each in a driver of its own"
    )
    exp.add_argument(
        "--stages-from",
        metavar="EXPERIMENT_DIR",
        help="take a fine-tuning stage from another experiment's folder (e.g. OUT_DIR/sequential for cyclic) where "
        "it trained the same one: the same tasks up to it, the same start checkpoint (sha256), the same settings",
    )
    exp.add_argument("--only-chain", action="store_true", help=argparse.SUPPRESS)  # a child of --jobs
    exp.add_argument("--no-pretrained", action="store_true", help="no probes of the pre-trained encoder (ROBERTA)")
    exp.add_argument(
        "--finetuned",
        metavar="RUNS",
        help="the first fine-tuning stage's checkpoints from finished runs, RUNS/TASK/METHOD/seedS/checkpoint_best.pt "
        "(a sweep's out-dir with PRESET=converged; each run's train.log must say 'done training'), instead of "
        "fine-tuning them again; a chain goes on from them",
    )
    cross = sub.add_parser("cross-task", parents=[exp], help="Figure 3")
    cross.add_argument("--source", help=f"default {SOURCE}")
    cross.add_argument("--probe-tasks", nargs="+", help="default: every other task in GLUE_BIN")
    for name, figure in (("sequential", "Figure 4"), ("cyclic", "Figure 5")):
        p = sub.add_parser(name, parents=[exp], help=figure)
        p.add_argument(
            "--chain",
            nargs="+",
            help=f"default: {' '.join(CHAIN)} where in GLUE_BIN, then GLUE_BIN's other tasks, {CHAIN_LENGTH} in all",
        )
        if name == "cyclic":
            p.add_argument("--cycles", type=int, default=CYCLES)
    rep = sub.add_parser("report", parents=[common], help="re-render every experiment's report from its logs")
    rep.add_argument(
        "--score",
        choices=SCORES,
        default="accuracy",
        help="accuracy (default): each probe's best dev accuracy, as the paper; metric: its best value of the "
        "task's metric (CoLA MCC, MRPC (acc + F1) / 2), in report-metric.json, summary-metric.md, figureN-metric.png",
    )
    rep.add_argument(
        "--add-records",
        nargs="+",
        default=[],
        metavar="REPORT_TSV",
        help="add the probes of earlier reports of the same experiment (their report.tsv), e.g. probes whose "
        "folders are gone; a probe found again must score the same (the pre-trained rows check that), else an error",
    )
    rep.add_argument("--replace", action="store_true", help=REPLACE_HELP)
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
    args.argv = argv
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    args.feature_cache = args.feature_cache or os.path.join(args.out_dir, "feature_cache")
    args.finetune_flags = shlex.split(args.finetune_flags)
    args.probe_flags = shlex.split(args.probe_flags)
    try:
        args.seeds = runs.parse_seeds(args.seeds)
    except argparse.ArgumentTypeError as e:
        parser.error(str(e))
    if args.probe_train_examples is not None:
        if args.probe_train_examples < 1:
            parser.error(f"--probe-train-examples must be a positive number, got {args.probe_train_examples}")
        if args.probe_backend != "features":
            parser.error("--probe-train-examples is for --probe-backend features")
    if args.probe_pooling != "bos" and args.probe_backend != "features":
        parser.error(
            f"--probe-pooling {args.probe_pooling} is for --probe-backend features (the fairseq probe reads <s>)"
        )
    if getattr(args, "cycles", 1) < 1:
        parser.error("--cycles must be at least 1")
    return cmd_experiment(args)


if __name__ == "__main__":
    sys.exit(main())
