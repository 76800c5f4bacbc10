"""Results: fairseq logs of a grid of runs turned into numbers (the best value of a task's metric
per run, its update and the wall time to it), the statistics over seeds, and each method paired
against the baseline over the seeds both ran. Definitions: docs/glue.md#seed-sweeps."""

import argparse
import csv
import glob
import os
import re
import statistics
from typing import Dict, List, NamedTuple, Optional, Sequence

from . import fairseq_logs
from .fairseq_logs import LOG_NAME, finished_output, fresh_start_problem, run_output
from .recipes import glue

TASKS = glue.TASKS  # Table 2's column order
METHODS = list(glue.METHODS)
BASELINE = "std"
# fairseq's GLUE preprocessing binarises MNLI dev_matched as valid, dev_mismatched as valid1
COLUMN_LABELS = {("MNLI", "valid", "accuracy"): "MNLI-m", ("MNLI", "valid1", "accuracy"): "MNLI-mm"}


def _default_metric(task: str) -> str:
    """The metric train.sh selects checkpoints by, on every validation subset it logs."""
    subsets = glue.VALID_SUBSETS.get(task, "valid").split(",")
    return ",".join(glue.METRIC[task] if s == "valid" else f"{s}:{glue.METRIC[task]}" for s in subsets)


DEFAULT_METRICS = {task: _default_metric(task) for task in glue.TASKS}


class Column(NamedTuple):
    """One column of a table: a task's metric on one validation subset."""

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


class RunRow(NamedTuple):
    column: Column
    method: str
    seed: int
    log: str
    finished: bool
    result: Optional[Result]
    problem: str


class MetricMissing(ValueError):
    pass


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
    points += [(int(r["train_num_updates"]) + 0.5, float(r["train_wall"])) for r in logs["train"] if "train_wall" in r]
    before = [p for p in points if p[0] <= update]
    if before:
        return max(before)[1]
    after = [p for p in points if p[0] > update]
    return min(after)[1] if after else None


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
            raise MetricMissing(
                f"no '{col.key}' in the validation records (found: {', '.join(available) or 'none'}); "
                f"pick one with --metric {col.task}=[SUBSET:]NAME"
            )
        pick = max if col.maximize else min
        best = pick(v for v, _ in values)
        update = next(u for v, u in values if v == best)  # the first validation to reach it
        results[col.label] = Result(best, update, wall_before(update, logs), len(values))
    return results


def collect_all(found, columns_by_task, include_unfinished: bool) -> List[RunRow]:
    """One row per run and column; a run counts only finished (unless ``include_unfinished``)
    and started from what was asked for."""
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


def summarise(rows: Sequence[RunRow]) -> Dict[str, Dict[str, List[Result]]]:
    """{label: {method: [Result, ...]}} of the runs that count, in column and method order."""
    cells: Dict[str, Dict[str, List[Result]]] = {}
    for row in rows:
        per_method = cells.setdefault(row.column.label, {})
        per_method.setdefault(row.method, [])
        if row.result is not None:
            per_method[row.method].append(row.result)
    return cells


def seed_bests(rows: Sequence[RunRow]) -> Dict[str, Dict[str, Dict[int, float]]]:
    """{column label: {method: {seed: best}}} of the runs that count."""
    out: Dict[str, Dict[str, Dict[int, float]]] = {}
    for row in rows:
        if row.result is not None:
            out.setdefault(row.column.label, {}).setdefault(row.method, {})[row.seed] = row.result.best
    return out


# ---- runs.csv: the rows of a report, so that it can be rebuilt without the logs -----------------

RUNS_CSV_FIELDS = [
    "task",
    "column",
    "subset",
    "metric",
    "method",
    "seed",
    "best",
    "best_update",
    "wall_to_best",
    "validations",
    "finished",
    "counted",
    "problem",
    "log",
]


def write_runs_csv(path: str, rows: Sequence[RunRow], out_dir: str) -> None:
    """One row per run and column; ``log`` relative to OUT_DIR, so the file can travel."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(RUNS_CSV_FIELDS)
        for r in rows:
            res = r.result
            w.writerow(
                [
                    r.column.task,
                    r.column.label,
                    r.column.subset,
                    r.column.name,
                    r.method,
                    r.seed,
                    "" if res is None else res.best,
                    "" if res is None else res.best_update,
                    "" if res is None or res.wall_to_best is None else res.wall_to_best,
                    "" if res is None else res.validations,
                    r.finished,
                    res is not None,
                    r.problem,
                    os.path.relpath(r.log, out_dir),
                ]
            )


def read_runs_csv(path: str, out_dir: str) -> List[RunRow]:
    """The rows ``write_runs_csv`` wrote (logs resolved against ``out_dir``)."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != RUNS_CSV_FIELDS:
            raise ValueError(f"{path}: not a runs.csv of this report (columns {reader.fieldnames})")
        rows = []
        for r in reader:
            result = None
            if r["counted"] == "True":
                result = Result(
                    float(r["best"]),
                    int(r["best_update"]),
                    float(r["wall_to_best"]) if r["wall_to_best"] else None,
                    int(r["validations"]),
                )
            rows.append(
                RunRow(
                    Column(r["task"], r["subset"], r["metric"], r["column"]),
                    r["method"],
                    int(r["seed"]),
                    os.path.join(out_dir, r["log"]),
                    r["finished"] == "True",
                    result,
                    r["problem"],
                )
            )
    return rows


REPLACE_HELP = (
    "write over an earlier report in the same place that counted runs this one does not "
    "(by default an error naming them)"
)


def dropped_runs_error(earlier_file: str, earlier: Sequence[str], kept: Sequence[str], join: str) -> Optional[str]:
    """The error for a report about to replace ``earlier_file``, whose runs (``earlier``, e.g. 'CoLA std
    seed 1') it lacks (``kept``): a rerun from fewer logs must not drop them without a word. ``join``:
    how to bring them in. None if it lacks none."""
    kept = set(kept)
    dropped = [run for run in earlier if run not in kept]
    if not dropped:
        return None
    shown = ", ".join(dropped[:5]) + (f" and {len(dropped) - 5} more" if len(dropped) > 5 else "")
    return (
        f"{earlier_file} holds runs this report does not: {shown}; join them with {join}, "
        "or pass --replace to drop them"
    )


# ---- statistics over seeds -----------------------------------------------------------------------


def fmt(value: Optional[float], decimals: int) -> str:
    return "-" if value is None else f"{value:.{decimals}f}"


def mean_std(values: Sequence[float]):
    """(mean, sample standard deviation) of values; std None below 2 values."""
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def cell_stats(results: Sequence[Result], maximize: bool = True):
    """(best, median, median wall to best, n, worst) over seeds; Nones for an empty cell."""
    if not results:
        return None, None, None, 0, None
    walls = [r.wall_to_best for r in results if r.wall_to_best is not None]
    best, worst = (max, min) if maximize else (min, max)
    return (
        best(r.best for r in results),
        statistics.median(r.best for r in results),
        statistics.median(walls) if walls else None,
        len(results),
        worst(r.best for r in results),
    )


def table_rows(cells, columns: Sequence[Column]):
    """[(method, {label: (best, median, wall, n, worst)})] in method order."""
    methods = ordered({m for per in cells.values() for m in per}, METHODS)
    return [
        (method, {col.label: cell_stats(cells.get(col.label, {}).get(method, []), col.maximize) for col in columns})
        for method in methods
    ]


class Paired(NamedTuple):
    """A method against the baseline: the mean difference (method - baseline, signed so that
    positive is better) and the two-sided p-value of a t-test (None below 2 values a side).

    test "paired": over the seeds both ran (seed N of both shares data order and head init);
    low/high are the smallest and largest per-seed difference. test "welch": Welch's unpaired
    t-test, for a method run by another implementation, whose seeds pair with nothing; low/high
    are the 95% confidence interval of the difference of the means, n_other the baseline's seeds.
    spread: the larger of the two standard deviations over the values compared. p_adjusted:
    the p-value after a correction for the number of comparisons (``holm``), when one was made."""

    n: int
    mean: Optional[float]
    low: Optional[float]
    high: Optional[float]
    p: Optional[float]
    spread: Optional[float] = None
    test: str = "paired"
    n_other: Optional[int] = None
    p_adjusted: Optional[float] = None

    @property
    def n_label(self) -> str:
        return f"n={self.n}" if self.n_other is None else f"n={self.n}+{self.n_other}"

    def verdict(self, alpha: float = 0.05) -> str:
        """ "differs" only when the test says so and the mean difference exceeds the seed spread:
        with a few seeds sharing their data order, a consistent shift far smaller than the spread
        (e.g. from another random stream of dropout) passes a t-test without being an effect.
        With ``p_adjusted`` set, the test is judged on it (named "Holm p")."""
        if self.p is None:
            return "n/a"
        p, name = (self.p, "p") if self.p_adjusted is None else (self.p_adjusted, "Holm p")
        if p >= alpha:
            return f"within seed noise ({name} = {p:.2f})"
        if self.spread is not None and abs(self.mean) <= self.spread:
            return f"consistent, below the seed spread {self.spread:.2f} ({name} = {p:.3f})"
        return f"differs ({name} = {p:.3f})"


def paired_against(by_seed: Dict[int, float], baseline_by_seed: Dict[int, float], maximize: bool = True) -> Paired:
    seeds = sorted(set(by_seed) & set(baseline_by_seed))
    sign = 1 if maximize else -1
    diffs = [sign * (by_seed[s] - baseline_by_seed[s]) for s in seeds]
    if not diffs:
        return Paired(0, None, None, None, None)
    p = None
    if len(diffs) > 1 and len(set(diffs)) > 1:
        from scipy import stats  # a fairseq requirement; imported only for a report

        p = float(stats.ttest_rel([by_seed[s] for s in seeds], [baseline_by_seed[s] for s in seeds]).pvalue)
    elif len(diffs) > 1:
        # every seed moved by the same amount: the t statistic is infinite (or 0/0 when unmoved)
        p = 1.0 if diffs[0] == 0 else 0.0
    spreads = [statistics.stdev(v[s] for s in seeds) for v in (by_seed, baseline_by_seed) if len(seeds) > 1]
    return Paired(len(diffs), statistics.fmean(diffs), min(diffs), max(diffs), p, max(spreads, default=None))


def welch_against(values: Sequence[float], baseline: Sequence[float], maximize: bool = True) -> Paired:
    """The method against the baseline as independent samples (Welch's t-test, 95% interval)."""
    if not values or not baseline:
        return Paired(len(values), None, None, None, None, test="welch", n_other=len(baseline))
    sign = 1 if maximize else -1
    mean = sign * (statistics.fmean(values) - statistics.fmean(baseline))
    if len(values) < 2 or len(baseline) < 2:
        return Paired(len(values), mean, None, None, None, test="welch", n_other=len(baseline))
    from scipy import stats

    va, vb = statistics.variance(values) / len(values), statistics.variance(baseline) / len(baseline)
    spread = max(statistics.stdev(values), statistics.stdev(baseline))
    if va + vb == 0:
        p, low, high = (1.0 if mean == 0 else 0.0), mean, mean
    else:
        df = (va + vb) ** 2 / (va**2 / (len(values) - 1) + vb**2 / (len(baseline) - 1))
        half = float(stats.t.ppf(0.975, df)) * (va + vb) ** 0.5
        p = float(stats.ttest_ind(values, baseline, equal_var=False).pvalue)
        low, high = mean - half, mean + half
    return Paired(len(values), mean, low, high, p, spread, "welch", len(baseline))


def holm(pvalues: Sequence[Optional[float]]) -> List[Optional[float]]:
    """Holm's step-down adjustment of a family of p-values (Nones are not tests and stay None):
    the family-wise error rate stays at alpha for any dependence between the tests."""
    tested = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    adjusted: List[Optional[float]] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[i] = running
    return adjusted


def comparisons(bests, columns: Sequence["Column"], independent: Sequence[str] = ()) -> Dict[tuple, Paired]:
    """{(method, column label): Paired} of every method against the baseline in every column,
    paired over seeds, or Welch's test for the methods in ``independent``; p-values adjusted by
    Holm over all of the table's comparisons (each is one more chance of a false "differs")."""
    found: Dict[tuple, Paired] = {}
    for col in columns:
        per = bests.get(col.label, {})
        if BASELINE not in per:
            continue
        for method in ordered(per, METHODS):
            if method == BASELINE:
                continue
            if method in independent:
                found[(method, col.label)] = welch_against(
                    list(per[method].values()), list(per[BASELINE].values()), col.maximize
                )
            else:
                found[(method, col.label)] = paired_against(per[method], per[BASELINE], col.maximize)
    keys = list(found)
    for key, p in zip(keys, holm([found[k].p for k in keys])):
        if p is not None:
            found[key] = found[key]._replace(p_adjusted=p)
    return found


# ---- training-record measurements of one run ------------------------------------------------------


def diagnosed_means(output: str) -> Dict[str, Optional[float]]:
    """Mean noise_kl, symm_kl, noise_to_embed and embed_rms over the run's training records that
    carry them (the log-interval records; the epoch records when the run logged no interval)."""
    logs = fairseq_logs.parse_json_logs(output)
    out = {}
    for key in ("noise_kl", "symm_kl", "noise_to_embed", "embed_rms"):
        values = [float(r[key]) for r in logs["train_inner"] if key in r] or [
            float(r[f"train_{key}"]) for r in logs["train"] if f"train_{key}" in r
        ]
        out[key] = statistics.fmean(values) if values else None
    return out


def seconds_per_update(output: str) -> Optional[float]:
    """Wall time per update between the run's first and last training records (start-up and
    the time before the first record left out)."""
    points = [
        (int(r["num_updates"]), float(r["wall"]))
        for r in fairseq_logs.parse_json_logs(output)["train_inner"]
        if "wall" in r
    ]
    if len(points) < 2 or points[-1][0] == points[0][0]:
        return None
    return (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])


def mean_by(records: Sequence[dict], *keys: str, value: str = "accuracy") -> Dict[tuple, float]:
    """Mean of ``value`` over the records (e.g. seeds) that share their values of ``keys``."""
    groups: Dict[tuple, List[float]] = {}
    for r in records:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r[value])
    return {k: statistics.mean(v) for k, v in groups.items()}
