#!/usr/bin/env python3
"""Seed sweeps over GLUE tasks x methods, and the paper's Table 2 and Figures 1-2 from their logs.

Reproduces Aghajanyan et al. (ICLR 2021), Table 2 (GLUE dev: best and median over seeds for
STD, STD++, R3F, R4F, with mean +- std and a paired test against STD), Figure 1 (wall time to the
best checkpoint) and Figure 2 (the dev metric over seeds).

    python -m r3f_experiments.sweep run    --tasks RTE MRPC ... --methods std r3f ... [--seeds 1-10]
                                   [--out-dir checkpoints/glue] [--command TEMPLATE] [--dry-run]
                                   [--jobs N] [--cluster local|slurm] [--partition P] [--gpus-per-node G]
    python -m r3f_experiments.sweep print  [same options as run]      # = run --dry-run
    python -m r3f_experiments.sweep report [--out-dir checkpoints/glue] [--report-dir DIR]
                                   [--metric TASK=SPEC[,SPEC...] ...] [--include-unfinished] [--no-plots]

run: every (task, method, seed) as
    bash scripts/glue/train.sh {task} {method} {seed} {save_dir}
with save_dir = OUT_DIR/TASK/METHOD/seedSEED and stdout + stderr in {save_dir}/train.log.
--tasks and --methods are required (the whole grid is 7 tasks x 6 methods x 10 seeds = 420 runs)
and checked against train.sh's before anything runs. --command replaces that template (a bash
command line; str.format fields {task}, {method}, {seed}, {save_dir}, {log}, substituted
shell-quoted; its names are not checked). Runs go one after the other, or through submitit
(https://github.com/facebookincubator/submitit): --jobs N runs N at a time on this machine
(submitit's local executor), --cluster slurm submits them to SLURM (at most --jobs in the queue
at once; --partition, --gpus-per-node, --timeout-min), with a progress line (done / running /
failed / pending, ETA) at every change. Resumable: a run whose train.log says "done training
in" is skipped; an unfinished one is started again, its old log kept as train.log.N, and
train.sh resumes it from its checkpoint_last.pt. A failed run does not stop the sweep; the exit
status is 1 if any failed. A run that fairseq started from random init although a pre-trained
model was asked for (its log says "No existing checkpoint found" of a --restore-file that is
not checkpoint_last.pt) counts as failed, here and in the report.
--dry-run / print: one line per pending run (`mkdir -p DIR && COMMAND > LOG 2>&1`), for a
cluster scheduler; --all prints the finished runs too.

report: reads OUT_DIR/TASK/METHOD/seed*/train.log (fairseq --log-format json) and writes to
--report-dir (default OUT_DIR/report): table2.md and table2.csv (rows = methods, columns =
tasks: "best / median" over seeds, mean +- std, each method against std paired over seeds
(mean difference [min, max], two-sided paired t-test), the median wall time to best, seeds per
cell), runs.csv (one row per run and column), figure1 (wall time to best) and figure2 (the dev
metric) as PNG (200 dpi) and SVG (one panel per column, a shared y axis, one colour per method,
every seed a point, boxes from 5 seeds), and prints table2.md.

Metrics (--metric TASK=SPEC[,SPEC...], SPEC = [SUBSET:]NAME, SUBSET default "valid"): NAME is
the key of fairseq's validation record without the subset prefix (`accuracy`, `mcc`, `f1`,
`acc_and_f1`, `loss`). Defaults follow scripts/glue/train.sh: CoLA=mcc, MRPC=acc_and_f1,
QQP=acc_and_f1, MNLI=accuracy,valid1:accuracy (matched and mismatched dev sets: fairseq logs
a second --valid-subset as `valid1_accuracy`), everything else accuracy.

Definitions:
  best            the best value of the metric over all validations of the run, as logged
                  (the largest; the smallest for names ending in "loss" or "ppl").
  median          statistics.median over seeds of the per-run best (mean of the two middle
                  values for an even count).
  wall to best    fairseq's `wall` (seconds since the trainer was built, rounded to whole
                  seconds by fairseq) at the first validation that reached the best value.
                  Validation records carry no time, so it is the `wall` of the last training
                  record logged before that validation (train_inner `wall`, or the epoch
                  record's `train_wall`): a lower bound that misses at most --log-interval
                  updates of training. If no training record precedes it, the next one's.
                  On ties the first validation counts (fairseq's checkpoint_best.pt, saved on
                  >=, holds the last one); the update of that validation is in runs.csv.
  columns         each column's best is taken over its own subset's validations (MNLI-mm:
                  best mismatched accuracy, not mismatched accuracy at MNLI-m's best).
  runs counted    finished runs only (fairseq's "done training in"), unless
                  --include-unfinished. A run resumed from its checkpoint_last.pt is read as
                  one: its train.log and, before it, the kept logs of the attempts it resumed
                  (train.log.N, back to the last one that did not start from checkpoint_last.pt).
"""

import argparse
import csv
import glob
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from typing import Dict, List, NamedTuple, Optional, Sequence

from . import fairseq_logs
from .paths import recipe
from .recipes import glue

TASKS = glue.TASKS                    # Table 2's column order
METHODS = list(glue.METHODS)


def _default_metric(task: str) -> str:
    """The metric train.sh selects checkpoints by, on every validation subset it logs
    ("accuracy,valid1:accuracy" for MNLI: dev matched and mismatched)."""
    subsets = glue.VALID_SUBSETS.get(task, "valid").split(",")
    return ",".join(glue.METRIC[task] if s == "valid" else f"{s}:{glue.METRIC[task]}" for s in subsets)


DEFAULT_METRICS = {task: _default_metric(task) for task in glue.TASKS}
DEFAULT_COMMAND = "bash " + shlex.quote(recipe("glue", "train.sh")) + " {task} {method} {seed} {save_dir}"
# fairseq's GLUE preprocessing binarises MNLI dev_matched as valid, dev_mismatched as valid1
COLUMN_LABELS = {("MNLI", "valid", "accuracy"): "MNLI-m", ("MNLI", "valid1", "accuracy"): "MNLI-mm"}
LOG_NAME = "train.log"


# ---------------------------------------------------------------------------- run / print --

class Run(NamedTuple):
    task: str
    method: str
    seed: int
    save_dir: str
    command: str = ""  # this run's own command template, where runs differ by more than their fields

    @property
    def log(self) -> str:
        return os.path.join(self.save_dir, LOG_NAME)


def parse_seeds(items: Sequence[str]) -> List[int]:
    """["1-3", "7"] -> [1, 2, 3, 7] (order kept, duplicates dropped)."""
    seeds: List[int] = []
    for item in items:
        for part in str(item).split(","):
            m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
            if not m:
                raise argparse.ArgumentTypeError(f"bad seed {part!r}: use N or FIRST-LAST")
            first, last = int(m.group(1)), int(m.group(2) or m.group(1))
            seeds += [s for s in range(first, last + 1) if s not in seeds]
    return seeds


def plan(out_dir: str, tasks: Sequence[str], methods: Sequence[str], seeds: Sequence[int]) -> List[Run]:
    """All runs, task-major (a task's table fills up first)."""
    return [Run(t, m, s, os.path.join(out_dir, t, m, f"seed{s}")) for t in tasks for m in methods for s in seeds]


def format_command(template: str, run: Run) -> str:
    """The run's own template (or ``template``) with the run's fields substituted, shell-quoted."""
    q = shlex.quote
    return (run.command or template).format(task=q(run.task), method=q(run.method), seed=run.seed,
                           save_dir=q(run.save_dir), log=q(run.log))


def finished_output(output: str) -> bool:
    """True when fairseq-train wrote its closing "done training in X seconds" line."""
    try:
        fairseq_logs.training_seconds(output)
    except ValueError:
        return False
    return True


_NO_CHECKPOINT = re.compile(r"No existing checkpoint found (\S+)")
_RESUMED = re.compile(r"Loaded checkpoint (\S*checkpoint_last\.pt)")


def fresh_start_problem(output: str) -> str:
    """Why a run's log is not what was asked for, or "": fairseq's ``--restore-file`` treats a
    missing file as "start fresh", so a typo in the pre-trained model's path trains from random
    init and exits 0. (Its own checkpoint_last.pt missing is a normal first start.)"""
    for path in _NO_CHECKPOINT.findall(output):
        if os.path.basename(path) != "checkpoint_last.pt":
            return f"started from random init: the pre-trained model {path} does not exist"
    return ""


def run_output(log_path: str) -> str:
    """The run's whole log: train.log, preceded by the kept logs of the attempts it resumed
    (train.log.N, newest first, back to the last one that did not resume from checkpoint_last.pt)."""
    with open(log_path, errors="replace") as f:
        parts = [f.read()]
    n = 1
    while os.path.exists(f"{log_path}.{n}"):
        n += 1
    for k in range(n - 1, 0, -1):
        if not _RESUMED.search(parts[0]):
            break
        with open(f"{log_path}.{k}", errors="replace") as f:
            parts.insert(0, f.read())
    return "\n".join(parts)


def is_finished(log_path: str) -> bool:
    """Finished and started from what was asked for (see ``fresh_start_problem``)."""
    try:
        output = run_output(log_path)
    except OSError:
        return False
    return finished_output(output) and not fresh_start_problem(output)


def keep_old_log(log_path: str) -> Optional[str]:
    """Rename an unfinished run's log to train.log.N (first free N); returns the new name."""
    if not os.path.exists(log_path):
        return None
    n = 1
    while os.path.exists(f"{log_path}.{n}"):
        n += 1
    os.rename(log_path, f"{log_path}.{n}")
    return f"{log_path}.{n}"


def scheduler_line(template: str, run: Run) -> str:
    q = shlex.quote
    return f"mkdir -p {q(run.save_dir)} && {format_command(template, run)} > {q(run.log)} 2>&1"


def execute(template: str, run: Run) -> int:
    """Run one training command under bash, stdout + stderr into its train.log."""
    os.makedirs(run.save_dir, exist_ok=True)
    keep_old_log(run.log)
    with open(run.log, "w") as log:
        return subprocess.run(["bash", "-c", format_command(template, run)], stdout=log,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode


class SweepError(ValueError):
    """A sweep that cannot run as asked; raised before anything runs."""


def small_preset_task(task: str) -> bool:
    """train.sh with PRESET=small (from the environment, as train.sh reads it) fine-tunes any
    classification data-bin GLUE_BIN/TASK-bin."""
    glue_bin = os.environ.get("GLUE_BIN", "glue_bin")
    return os.environ.get("PRESET") == "small" and os.path.isdir(os.path.join(glue_bin, f"{task}-bin"))


def check_names(args) -> None:
    """--tasks and --methods must be named for a real run, and, with train.sh's template, be
    names train.sh accepts: a typo would otherwise fail once per seed, its reason in each log."""
    if args.tasks is None or args.methods is None:
        if not args.dry_run:
            raise SweepError("name the runs: --tasks (e.g. RTE MRPC) and --methods (e.g. std r3f); all of "
                             f"{len(TASKS)} tasks x {len(METHODS)} methods x 10 seeds would be "
                             f"{len(TASKS) * len(METHODS) * 10} runs")
        args.tasks, args.methods = args.tasks or TASKS, args.methods or METHODS
    if args.command == DEFAULT_COMMAND:
        for what, names, known in (("task", args.tasks, TASKS), ("method", args.methods, METHODS)):
            unknown = [n for n in names if n not in known and not (what == "task" and small_preset_task(n))]
            if unknown:
                raise SweepError(f"unknown {what}(s) {' '.join(unknown)}; scripts/glue/train.sh takes "
                                 f"{' '.join(known)}" + (" (and, with PRESET=small, any TASK whose GLUE_BIN/TASK-bin "
                                                         "exists)" if what == "task" else ""))
    if args.jobs < 1:
        raise SweepError(f"--jobs must be >= 1, got {args.jobs}")


def run_one(template: str, run: Run) -> str:
    """Run one training and say how it ended: "" when finished as asked, else the problem.
    A module-level function, so that submitit can pickle it for its workers."""
    rc = execute(template, run)
    if rc != 0:
        return f"exit {rc}"
    output = run_output(run.log)
    if not finished_output(output):
        return "no 'done training' line in its log"
    return fresh_start_problem(output)


def make_executor(args):
    """submitit's executor: the local one (N processes on this machine) or SLURM's."""
    import submitit  # only for --jobs > 1 or --cluster slurm

    folder = os.path.join(args.out_dir, ".submitit", "%j")
    if args.cluster == "slurm":
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
        executor.update_parameters(timeout_min=args.timeout_min, gpus_per_node=args.gpus_per_node,
                                   cpus_per_task=args.cpus_per_task, name="r3f_sweep",
                                   **({"slurm_partition": args.partition} if args.partition else {}))
    else:
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=args.timeout_min)
    return executor


def _progress(done, running, failed, pending, durations, jobs) -> str:
    line = f"[sweep] {done} done, {running} running, {failed} failed, {pending} pending"
    if durations and (running or pending):
        eta = statistics.median(durations) * (pending + running) / max(jobs, 1)
        line += f"; ETA {eta / 60:.0f} min"
    return line


def run_with_submitit(args, runs: List[Run]) -> List[Run]:
    """At most ``args.jobs`` runs at a time through submitit (``args``: the run options of
    ``build_parser``: command, jobs, cluster, ...); returns the failed runs."""
    executor = make_executor(args)
    pending, running, failed, durations = list(runs), {}, [], []
    done = 0
    while pending or running:
        while pending and len(running) < args.jobs:
            run = pending.pop(0)
            print(f"[sweep] submit {run.task} {run.method} seed {run.seed} -> {run.log}", flush=True)
            running[executor.submit(run_one, args.command, run)] = (run, time.monotonic())
        finished = [job for job in running if job.done()]
        for job in finished:
            run, start = running.pop(job)
            try:
                problem = job.result()
            except Exception as e:  # noqa: BLE001  (a job killed or crashed: reported, the sweep goes on)
                problem = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            durations.append(time.monotonic() - start)
            name = f"[sweep] {run.task} {run.method} seed {run.seed}"
            if problem:
                failed.append(run)
                print(f"{name}: FAILED ({problem}); see {run.log}", flush=True)
            else:
                done += 1
                print(f"{name}: done in {durations[-1]:.0f} s", flush=True)
        if finished:
            print(_progress(done, len(running), len(failed), len(pending), durations, args.jobs), flush=True)
        elif running:
            time.sleep(args.poll_seconds)
    return failed


def cmd_run(args) -> int:
    check_names(args)
    runs = plan(args.out_dir, args.tasks, args.methods, args.seeds)
    if args.dry_run:
        for run in runs:
            if args.all or not is_finished(run.log):
                print(scheduler_line(args.command, run))
        return 0
    todo = []
    for run in runs:
        if is_finished(run.log):
            print(f"[sweep] {run.task} {run.method} seed {run.seed}: skipped (finished: {run.log})", flush=True)
        else:
            todo.append(run)
    skipped = len(runs) - len(todo)
    print(f"[sweep] {len(runs)} runs: {skipped} finished, {len(todo)} to run "
          f"({'submitit, ' + args.cluster + ', ' if args.jobs > 1 or args.cluster == 'slurm' else ''}"
          f"{args.jobs} at a time)", flush=True)
    if args.jobs > 1 or args.cluster == "slurm":
        failed = run_with_submitit(args, todo)
    else:
        failed = []
        for i, run in enumerate(todo, 1):
            name = f"[sweep] {i}/{len(todo)} {run.task} {run.method} seed {run.seed}"
            print(f"{name}: running -> {run.log}", flush=True)
            start = time.monotonic()
            problem = run_one(args.command, run)
            if problem:
                failed.append(run)
                print(f"{name}: FAILED ({problem}) after {time.monotonic() - start:.0f} s; see {run.log}",
                      flush=True)
            else:
                print(f"{name}: done in {time.monotonic() - start:.0f} s", flush=True)
    print(f"[sweep] {len(todo)} ran, {skipped} skipped (finished), {len(failed)} failed", flush=True)
    return 1 if failed else 0


# ---------------------------------------------------------------------------------- report --

class Column(NamedTuple):
    """One column of Table 2: a task's metric on one validation subset."""
    task: str
    subset: str
    name: str
    label: str

    @property
    def key(self) -> str:
        return f"{self.subset}_{self.name}"

    @property
    def maximize(self) -> bool:
        return not (self.name.endswith("loss") or self.name.endswith("ppl"))


class Result(NamedTuple):
    best: float
    best_update: int
    wall_to_best: Optional[float]
    validations: int


def parse_metric_overrides(items: Sequence[str]) -> Dict[str, str]:
    """["CoLA=mcc", "MNLI=accuracy,valid1:accuracy"] -> {task: spec}."""
    overrides = {}
    for item in items:
        task, sep, spec = item.partition("=")
        if not sep or not task or not spec:
            raise argparse.ArgumentTypeError(f"bad --metric {item!r}: use TASK=[SUBSET:]NAME[,...]")
        overrides[task] = spec
    return overrides


def columns_for(task: str, overrides: Dict[str, str]) -> List[Column]:
    specs = [s.strip() for s in overrides.get(task, DEFAULT_METRICS.get(task, "accuracy")).split(",") if s.strip()]
    columns = []
    for spec in specs:
        subset, _, name = spec.rpartition(":")
        subset = subset or "valid"
        label = COLUMN_LABELS.get((task, subset, name))
        if label is None:
            label = task if len(specs) == 1 else f"{task} {subset}:{name}"
        columns.append(Column(task, subset, name, label))
    return columns


def discover(out_dir: str) -> Dict[str, Dict[str, Dict[int, str]]]:
    """{task: {method: {seed: log path}}} for every OUT_DIR/TASK/METHOD/seedN/train.log."""
    found: Dict[str, Dict[str, Dict[int, str]]] = {}
    for log in glob.glob(os.path.join(glob.escape(out_dir), "*", "*", "seed*", LOG_NAME)):
        seed_dir = os.path.dirname(log)
        m = re.fullmatch(r"seed(\d+)", os.path.basename(seed_dir))
        if not m:
            continue
        method_dir = os.path.dirname(seed_dir)
        task = os.path.basename(os.path.dirname(method_dir))
        found.setdefault(task, {}).setdefault(os.path.basename(method_dir), {})[int(m.group(1))] = log
    return found


def ordered(names, canonical: Sequence[str]) -> List[str]:
    """Names in the canonical order first, then the others sorted."""
    names = set(names)
    return [n for n in canonical if n in names] + sorted(names - set(canonical))


def wall_before(update: int, logs: Dict[str, List[dict]]) -> Optional[float]:
    """fairseq's `wall` at the last training record logged before the validation at `update`.

    Within one update fairseq logs train_inner, then validates, then (at the end of an epoch)
    logs the epoch record; so train_inner at update <= U and epoch records at update < U
    precede the validation at U."""
    points = [(int(r["num_updates"]), float(r["wall"])) for r in logs["train_inner"] if "wall" in r]
    points += [(int(r["train_num_updates"]) + 0.5, float(r["train_wall"]))
               for r in logs["train"] if "train_wall" in r]
    before = [p for p in points if p[0] <= update]
    if before:
        return max(before)[1]
    after = [p for p in points if p[0] > update]
    return min(after)[1] if after else None


class MetricMissing(ValueError):
    pass


def collect(output: str, columns: Sequence[Column]) -> Dict[str, Result]:
    """Best value, its update and the wall time to it, per column, from one fairseq log."""
    logs = fairseq_logs.parse_json_logs(output)
    subsets = fairseq_logs.parse_valid_subsets(output)
    results = {}
    for col in columns:
        records = subsets.get(col.subset, [])
        values = [(float(r[col.key]), int(r[f"{col.subset}_num_updates"])) for r in records if col.key in r]
        if not values:
            available = sorted({k for rs in subsets.values() for r in rs for k in r if k != "epoch"})
            raise MetricMissing(f"no '{col.key}' in the validation records (found: {', '.join(available) or 'none'}); "
                                f"pick one with --metric {col.task}=[SUBSET:]NAME")
        pick = max if col.maximize else min
        best = pick(v for v, _ in values)
        update = next(u for v, u in values if v == best)  # the first validation to reach it
        results[col.label] = Result(best, update, wall_before(update, logs), len(values))
    return results


class RunRow(NamedTuple):
    column: Column
    method: str
    seed: int
    log: str
    finished: bool
    result: Optional[Result]
    problem: str


def collect_all(found, columns_by_task, include_unfinished: bool) -> List[RunRow]:
    rows = []
    for task in ordered(found, TASKS):
        for method in ordered(found[task], METHODS):
            for seed in sorted(found[task][method]):
                log = found[task][method][seed]
                output = run_output(log)
                finished = finished_output(output)
                try:
                    results = collect(output, columns_by_task[task])
                    problem = fresh_start_problem(output)
                except MetricMissing as e:
                    results, problem = {}, (str(e) if finished else "unfinished")
                if problem:  # a fresh start where a pre-trained model was asked for: never counted
                    results = {}
                if not finished and not include_unfinished:
                    results, problem = {}, problem or "unfinished"
                elif not finished:
                    problem = problem or "unfinished (included)"
                for col in columns_by_task[task]:
                    rows.append(RunRow(col, method, seed, log, finished, results.get(col.label), problem))
    return rows


def summarise(rows: Sequence[RunRow]):
    """{label: {method: [Result, ...]}} of the runs that count, in column and method order."""
    cells: Dict[str, Dict[str, List[Result]]] = {}
    for row in rows:
        per_method = cells.setdefault(row.column.label, {})
        per_method.setdefault(row.method, [])
        if row.result is not None:
            per_method[row.method].append(row.result)
    return cells


def fmt(value: Optional[float], decimals: int) -> str:
    return "-" if value is None else f"{value:.{decimals}f}"


def mean_std(values: Sequence[float]):
    """(mean, sample standard deviation) of values; std None below 2 values."""
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


class Paired(NamedTuple):
    """A method against the baseline over the seeds both ran: per-seed differences (method -
    baseline, signed so that positive is better), their mean, the two-sided p-value of a paired
    t-test (None below 2 pairs or when every difference is the same), and the seed spread: the
    larger of the two methods' standard deviations over those seeds."""
    n: int
    mean: Optional[float]
    low: Optional[float]
    high: Optional[float]
    p: Optional[float]
    spread: Optional[float] = None

    def verdict(self, alpha: float = 0.05) -> str:
        """"differs" only when the test says so and the mean difference exceeds the seed spread:
        with a few seeds sharing their data order, a consistent shift far smaller than the spread
        (e.g. from another random stream of dropout) passes a t-test without being an effect."""
        if self.p is None:
            return "n/a"
        if self.p >= alpha:
            return f"within seed noise (p = {self.p:.2f})"
        if self.spread is not None and abs(self.mean) <= self.spread:
            return f"consistent, below the seed spread {self.spread:.2f} (p = {self.p:.3f})"
        return f"differs (p = {self.p:.3f})"


def paired_against(by_seed: Dict[int, float], baseline_by_seed: Dict[int, float], maximize: bool = True) -> Paired:
    seeds = sorted(set(by_seed) & set(baseline_by_seed))
    sign = 1 if maximize else -1
    diffs = [sign * (by_seed[s] - baseline_by_seed[s]) for s in seeds]
    if not diffs:
        return Paired(0, None, None, None, None)
    p = None
    if len(diffs) > 1 and len(set(diffs)) > 1:
        from scipy import stats  # a fairseq requirement; imported only for the report

        p = float(stats.ttest_rel([by_seed[s] for s in seeds], [baseline_by_seed[s] for s in seeds]).pvalue)
    elif len(diffs) > 1:
        # every seed moved by the same amount: the t statistic is infinite (or 0/0 when unmoved)
        p = 1.0 if diffs[0] == 0 else 0.0
    spreads = [statistics.stdev(v[s] for s in seeds) for v in (by_seed, baseline_by_seed) if len(seeds) > 1]
    return Paired(len(diffs), statistics.fmean(diffs), min(diffs), max(diffs), p, max(spreads, default=None))


def cell_stats(results: Sequence[Result], maximize: bool = True):
    """(best, median, median wall to best, n) over seeds; Nones for an empty cell."""
    if not results:
        return None, None, None, 0
    walls = [r.wall_to_best for r in results if r.wall_to_best is not None]
    return ((max if maximize else min)(r.best for r in results), statistics.median(r.best for r in results),
            statistics.median(walls) if walls else None, len(results))


def table_rows(cells, columns: Sequence[Column]):
    """[(method, {label: (best, median, wall, n)})] in method order."""
    methods = ordered({m for per in cells.values() for m in per}, METHODS)
    out = []
    for method in methods:
        stats = {}
        for col in columns:
            stats[col.label] = cell_stats(cells.get(col.label, {}).get(method, []), col.maximize)
        out.append((method, stats))
    return out


BASELINE = "std"


def seed_bests(rows: Sequence[RunRow]) -> Dict[str, Dict[str, Dict[int, float]]]:
    """{column label: {method: {seed: best}}} of the runs that count."""
    out: Dict[str, Dict[str, Dict[int, float]]] = {}
    for row in rows:
        if row.result is not None:
            out.setdefault(row.column.label, {}).setdefault(row.method, {})[row.seed] = row.result.best
    return out


def write_markdown(path: str, rows, columns: Sequence[Column], decimals: int, bests=None, figures=()) -> str:
    """table2.md: best / median (the paper's Table 2), mean +- std, each method against std paired
    over seeds, wall time to best, seeds per cell, and the figures' captions."""
    labels = [c.label for c in columns]
    bests = bests or {}
    header = "| method | " + " | ".join(labels) + " |\n|---|" + "---|" * len(labels) + "\n"
    lines = ["## Table 2: GLUE dev, best / median over seeds\n\n",
             "Metric per column: " + ", ".join(f"{c.label} = {c.subset} {c.name}" for c in columns) + ".\n\n",
             header]
    lines += ["| " + m + " | " + " | ".join(f"{fmt(s[c][0], decimals)} / {fmt(s[c][1], decimals)}" for c in labels)
              + " |\n" for m, s in rows]
    lines += ["\n## Mean +- standard deviation over seeds\n\n", header]
    for method, _ in rows:
        cells = []
        for c in labels:
            mean, std = mean_std(list(bests.get(c, {}).get(method, {}).values()))
            cells.append("-" if mean is None else f"{mean:.{decimals}f} +- {fmt(std, decimals)}")
        lines.append("| " + method + " | " + " | ".join(cells) + " |\n")
    lines += [f"\n## Against {BASELINE}: paired over seeds\n\n",
              f"Per column: mean of the per-seed differences (method - {BASELINE}, on the seeds both ran; "
              "positive = better) [min, max], and a two-sided paired t-test over those seeds: \"differs\" "
              "when p < 0.05 and the mean difference exceeds the seed spread (the larger of the two methods' "
              "standard deviations), \"consistent, below the seed spread\" when only the test passes, else "
              "\"within seed noise\".\n\n", header]
    for method, _ in rows:
        if method == BASELINE:
            continue
        cells = []
        for col in columns:
            per = bests.get(col.label, {})
            if BASELINE not in per or method not in per:
                cells.append("-")
                continue
            d = paired_against(per[method], per[BASELINE], col.maximize)
            cells.append("-" if d.mean is None else
                         f"{d.mean:+.{decimals + 1}f} [{d.low:+.{decimals + 1}f}, {d.high:+.{decimals + 1}f}], n={d.n}, "
                         f"{d.verdict()}")
        lines.append("| " + method + " | " + " | ".join(cells) + " |\n")
    lines += ["\n## Wall time to best checkpoint, median over seeds (s)\n\n", header]
    lines += ["| " + m + " | " + " | ".join(fmt(s[c][2], 0) for c in labels) + " |\n" for m, s in rows]
    lines += ["\n## Seeds per cell\n\n", header]
    lines += ["| " + m + " | " + " | ".join(str(s[c][3]) for c in labels) + " |\n" for m, s in rows]
    if figures:
        lines += ["\n## Figures\n\n"] + [f"- `{name}`: {caption}\n" for name, caption in figures]
    text = "".join(lines)
    with open(path, "w") as f:
        f.write(text)
    return text


def write_table_csv(path: str, rows, columns: Sequence[Column], bests) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method"] + [f"{c.label} {what}" for c in columns
                                 for what in ("best", "median", "median wall to best (s)", "seeds", "mean", "std",
                                              f"mean difference to {BASELINE}", "paired t-test p")])
        for method, stats in rows:
            values = []
            for c in columns:
                per = bests.get(c.label, {})
                mean, std = mean_std(list(per.get(method, {}).values()))
                paired = (paired_against(per[method], per[BASELINE], c.maximize)
                          if method != BASELINE and method in per and BASELINE in per else Paired(0, None, None, None, None))
                values += [*stats[c.label], mean, std, paired.mean, paired.p]
            w.writerow([method] + ["" if v is None else round(v, 6) for v in values])


def write_runs_csv(path: str, rows: Sequence[RunRow], out_dir: str) -> None:
    """One row per run and column; ``log`` relative to OUT_DIR, so the file can travel."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["task", "column", "subset", "metric", "method", "seed", "best", "best_update",
                    "wall_to_best", "validations", "finished", "counted", "problem", "log"])
        for r in rows:
            res = r.result
            w.writerow([r.column.task, r.column.label, r.column.subset, r.column.name, r.method, r.seed,
                        "" if res is None else res.best, "" if res is None else res.best_update,
                        "" if res is None or res.wall_to_best is None else res.wall_to_best,
                        "" if res is None else res.validations, r.finished, res is not None, r.problem,
                        os.path.relpath(r.log, out_dir)])


# One colour per method in every panel and figure (matplotlib's tab10, in Table 2's order).
METHOD_COLOURS = {"std": "tab:gray", "std++": "tab:brown", "rdrop": "tab:green", "r3f": "tab:blue",
                  "r4f": "tab:purple", "r3f-rel": "tab:cyan", "smart": "tab:orange", "freelb": "tab:red"}
BOX_FROM = 5  # seeds: a box plot from 5 on, below it the points and their median only


def method_colour(method: str, others: List[str]) -> str:
    if method in METHOD_COLOURS:
        return METHOD_COLOURS[method]
    spare = ["tab:olive", "tab:pink", "black", "gold"]
    return spare[others.index(method) % len(spare)]


def distributions(path: str, cells, columns: Sequence[Column], value, ylabel: str) -> List[str]:
    """One panel per column, a shared y axis; per method every seed as a point in the method's
    colour, their median as a bar, and a box when there are BOX_FROM seeds or more; n under each
    method's name. Written as PNG (200 dpi) and SVG; returns the paths. No title: the caption
    belongs to the text around the figure."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = min(4, len(columns))
    nrows = -(-len(columns) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 3.2 * nrows), squeeze=False, sharey=True)
    others = sorted({m for per in cells.values() for m in per} - set(METHOD_COLOURS))
    for ax, col in zip(axes.flat, columns):
        methods = ordered(cells.get(col.label, {}), METHODS)
        ticks = []
        for x, method in enumerate(methods, 1):
            ys = [y for y in (value(r) for r in cells[col.label][method]) if y is not None]
            colour = method_colour(method, others)
            ticks.append(f"{method}\nn={len(ys)}")
            if not ys:
                continue
            if len(ys) >= BOX_FROM:
                ax.boxplot([ys], positions=[x], widths=0.55, showfliers=False, medianprops={"color": colour},
                           boxprops={"color": colour}, whiskerprops={"color": colour}, capprops={"color": colour})
            else:
                ax.hlines(statistics.median(ys), x - 0.28, x + 0.28, color=colour, linewidth=2, zorder=4)
            offsets = [0.16 * (i - (len(ys) - 1) / 2) / max(1, len(ys) - 1) for i in range(len(ys))]
            ax.scatter([x + o for o in offsets], ys, s=16, color=colour, edgecolor="black", linewidth=0.4, zorder=5)
        ax.set_xticks(range(1, len(methods) + 1))
        ax.set_xticklabels(ticks, fontsize=8)
        ax.set_xlim(0.4, len(methods) + 0.6)
        ax.set_title(col.label, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    for row in axes:
        row[0].set_ylabel(ylabel)
    for ax in list(axes.flat)[len(columns):]:
        ax.set_visible(False)
    fig.tight_layout()
    stem = os.path.splitext(path)[0]
    fig.savefig(stem + ".png", dpi=200)
    fig.savefig(stem + ".svg")
    plt.close(fig)
    return [stem + ".png", stem + ".svg"]


def cmd_report(args) -> int:
    found = discover(args.out_dir)
    if args.tasks:
        found = {t: v for t, v in found.items() if t in args.tasks}
    if args.methods:
        found = {t: {m: s for m, s in v.items() if m in args.methods} for t, v in found.items()}
    if not any(found.values()):
        print(f"error: no {args.out_dir}/TASK/METHOD/seedN/{LOG_NAME}", file=sys.stderr)
        return 1
    overrides = parse_metric_overrides(args.metric)
    columns_by_task = {task: columns_for(task, overrides) for task in found}
    columns = [c for task in ordered(found, TASKS) for c in columns_by_task[task]]
    rows = collect_all(found, columns_by_task, args.include_unfinished)
    for row in rows:
        if row.problem and row.problem != "unfinished (included)":
            print(f"[report] {row.column.label} {row.method} seed {row.seed} not counted: {row.problem}",
                  file=sys.stderr)
    cells = summarise(rows)
    table = table_rows(cells, columns)
    bests = seed_bests(rows)
    report_dir = args.report_dir or os.path.join(args.out_dir, "report")
    os.makedirs(report_dir, exist_ok=True)
    figures = []
    if not args.no_plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("error: figures need matplotlib (pip install matplotlib), or pass --no-plots", file=sys.stderr)
            return 1
        metrics = ", ".join(sorted({c.name for c in columns}))
        distributions(os.path.join(report_dir, "figure1.png"), cells, columns, lambda r: r.wall_to_best,
                      "wall time to best checkpoint (s)")
        distributions(os.path.join(report_dir, "figure2.png"), cells, columns, lambda r: r.best,
                      f"best dev metric (%: {metrics})")
        box = f"boxes where a method has {BOX_FROM} seeds or more, else the median as a bar"
        figures = [("figure1.png / .svg", "Figure 1: wall time from the start of training to the first validation "
                    f"that reached the run's best, per seed (s); one panel per column, {box}; n per method under "
                    "its name."),
                   ("figure2.png / .svg", "Figure 2: best dev metric per seed, one panel per column (the task's "
                    f"metric, in %), {box}; n per method under its name.")]
    text = write_markdown(os.path.join(report_dir, "table2.md"), table, columns, args.decimals, bests, figures)
    write_table_csv(os.path.join(report_dir, "table2.csv"), table, columns, bests)
    write_runs_csv(os.path.join(report_dir, "runs.csv"), rows, args.out_dir)
    print(text)
    print(f"[report] wrote {report_dir}/table2.md, table2.csv, runs.csv"
          + ("" if args.no_plots else ", figure1.png/.svg, figure2.png/.svg"))
    return 0


# ------------------------------------------------------------------------------------ CLI --

def check_template(template: str) -> str:
    try:
        format_command(template, Run("T", "m", 1, "d"))
    except (KeyError, IndexError, ValueError) as e:
        raise argparse.ArgumentTypeError(
            f"bad --command template ({e!r}): fields are {{task}} {{method}} {{seed}} {{save_dir}} {{log}}")
    return template


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m r3f_experiments.sweep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command_name", required=True)
    out = argparse.ArgumentParser(add_help=False)
    out.add_argument("--out-dir", default="checkpoints/glue", help="runs go to OUT_DIR/TASK/METHOD/seedSEED")
    sweep = argparse.ArgumentParser(add_help=False, parents=[out])
    sweep.add_argument("--tasks", nargs="+", help=f"required for run ({' '.join(TASKS)})")
    sweep.add_argument("--methods", nargs="+", help=f"required for run ({' '.join(METHODS)})")
    sweep.add_argument("--seeds", nargs="+", default=["1-10"], help="seeds: N, FIRST-LAST or a list (default 1-10)")
    sweep.add_argument("--command", type=check_template, default=DEFAULT_COMMAND,
                       help="bash command template; fields {task} {method} {seed} {save_dir} {log}")
    sweep.add_argument("--all", action="store_true", help="with --dry-run: print finished runs too")
    sweep.add_argument("--jobs", type=int, default=1,
                       help="runs at a time: > 1 runs them through submitit's local executor (default 1: "
                            "one after another, in this process); with --cluster slurm, the most in the queue")
    sweep.add_argument("--cluster", choices=["local", "slurm"], default="local",
                       help="slurm: submit the runs with submitit's SLURM executor")
    sweep.add_argument("--partition", help="SLURM partition")
    sweep.add_argument("--gpus-per-node", type=int, default=1, help="SLURM: GPUs per run (default 1)")
    sweep.add_argument("--cpus-per-task", type=int, default=10, help="SLURM: CPUs per run (default 10)")
    sweep.add_argument("--timeout-min", type=int, default=24 * 60, help="a run's time limit (default 1 day)")
    sweep.add_argument("--poll-seconds", type=float, default=10.0, help="how often submitit jobs are polled")
    run = sub.add_parser("run", parents=[sweep], help="run the sweep")
    run.add_argument("--dry-run", action="store_true", help="print one command line per pending run instead")
    sub.add_parser("print", parents=[sweep], help="= run --dry-run")
    report = sub.add_parser("report", parents=[out], help="Table 2 and Figures 1-2 from the logs")
    report.add_argument("--report-dir", help="default OUT_DIR/report")
    report.add_argument("--metric", action="append", default=[],
                        help="TASK=[SUBSET:]NAME[,...], e.g. CoLA=mcc, MNLI=accuracy,valid1:accuracy")
    report.add_argument("--tasks", nargs="+", help="only these tasks (default: every task found)")
    report.add_argument("--methods", nargs="+", help="only these methods (default: every method found)")
    report.add_argument("--include-unfinished", action="store_true",
                        help="count runs without fairseq's 'done training' line (best so far)")
    report.add_argument("--decimals", type=int, default=1)
    report.add_argument("--no-plots", action="store_true", help="tables only (no matplotlib needed)")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command_name in ("run", "print"):
            args.seeds = parse_seeds(args.seeds)
            args.dry_run = args.command_name == "print" or args.dry_run
            return cmd_run(args)
        parse_metric_overrides(args.metric)
    except (argparse.ArgumentTypeError, SweepError) as e:
        parser.error(str(e))
    return cmd_report(args)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # e.g. `sweep.py print | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
