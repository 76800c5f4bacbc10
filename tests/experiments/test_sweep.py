"""r3f_experiments.sweep: a real seed sweep (tiny fairseq-train runs), then Table 2 and Figures 1-2.

The sweep (2 methods x 2 seeds on the synthetic task, 30 updates = 1.2 epochs, validation every
10 updates and at the end of the epoch, on two subsets: `valid` and, standing in for MNLI's
mismatched dev set, `valid1` = the training split) runs once per module; the log-collection
tests read its real logs.
"""

import argparse
import contextlib
import csv
import glob
import importlib.util
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest

from r3f_experiments import fairseq_logs as log_files
from r3f_experiments import results, runs
from tests.helpers import CLASSIFICATION, TINY_ROBERTA, USER_DIR, fairseq_logs

SWEEP = [sys.executable, "-m", "r3f_experiments.sweep"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TASK, METHODS, SEEDS = "SYN", ("std", "r3f"), (1, 2)


def sweep(*args, timeout=300):
    proc = subprocess.run(
        [*SWEEP, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def glue_bin_with_valid1(data_bin, root):
    """ROOT/SYN-bin: the synthetic data-bin plus a second validation subset (the train split)."""
    task_bin = os.path.join(root, f"{TASK}-bin")
    for sub in ("input0", "label"):
        os.makedirs(os.path.join(task_bin, sub))
        for name in os.listdir(os.path.join(data_bin, sub)):
            os.symlink(os.path.join(data_bin, sub, name), os.path.join(task_bin, sub, name))
        for ext in ("bin", "idx"):
            os.symlink(os.path.join(data_bin, sub, f"train.{ext}"), os.path.join(task_bin, sub, f"valid1.{ext}"))
    return root


def write_train_script(path, glue_bin):
    """Same interface as scripts/glue/train.sh (TASK METHOD SEED SAVE_DIR), real tiny fairseq-train."""
    fairseq_train = os.path.join(os.path.dirname(sys.executable), "fairseq-train")
    common = [
        *CLASSIFICATION,
        *TINY_ROBERTA,
        "--lr",
        "3e-3",
        "--max-update",
        "30",
        "--validate-interval-updates",
        "10",
        "--log-interval",
        "4",
        "--valid-subset",
        "valid,valid1",
        "--report-mcc",
        "--best-checkpoint-metric",
        "accuracy",
        "--maximize-best-checkpoint-metric",
    ]
    with open(path, "w") as f:
        f.write(f"""#!/usr/bin/env bash
set -euo pipefail
task=$1; method=$2; seed=$3; save_dir=$4
case "$method" in
    std) criterion=(--criterion sentence_prediction) ;;
    r3f) criterion=(--criterion sentence_prediction_r3f --user-dir {shlex.quote(USER_DIR)}) ;;
    *) echo "unknown method $method" >&2; exit 2 ;;
esac
exec {shlex.quote(fairseq_train)} {shlex.quote(glue_bin)}/"$task"-bin {shlex.join(common)} \\
    "${{criterion[@]}}" --seed "$seed" --save-dir "$save_dir"
""")
    return path


@pytest.fixture(scope="module")
def swept(tmp_path_factory, synthetic_data):
    root = tmp_path_factory.mktemp("sweep")
    glue_bin = glue_bin_with_valid1(synthetic_data, str(root / "glue_bin"))
    train = write_train_script(str(root / "train.sh"), glue_bin)
    out = str(root / "out")
    args = [
        "--out-dir",
        out,
        "--tasks",
        TASK,
        "--methods",
        *METHODS,
        "--seeds",
        "1-2",
        "--command",
        f"bash {shlex.quote(train)} {{task}} {{method}} {{seed}} {{save_dir}}",
    ]
    stdout = sweep("run", *args)
    plots = [] if importlib.util.find_spec("matplotlib") else ["--no-plots"]  # see test_figures_are_png
    report_stdout = sweep("report", "--out-dir", out, *plots)
    return {
        "out": out,
        "args": args,
        "stdout": stdout,
        "report_stdout": report_stdout,
        "report": os.path.join(out, "report"),
    }


def read_log(out, method, seed):
    with open(os.path.join(out, TASK, method, f"seed{seed}", "train.log")) as f:
        return f.read()


def subset_records(output, subset):
    """The test's own reading of fairseq's validation lines for one subset."""
    return [json.loads(line[line.index("{") :]) for line in output.splitlines() if f"| {subset} | {{" in line]


def expected_best(output, subset="valid", metric="accuracy"):
    """(best value, update of its first occurrence), recomputed from the log."""
    records = [
        (float(r[f"{subset}_{metric}"]), int(r[f"{subset}_num_updates"])) for r in subset_records(output, subset)
    ]
    best = max(v for v, _ in records)
    return best, min(u for v, u in records if v == best)


def markdown_cells(path):
    """{method: [cell, ...]} of the first table of table2.md."""
    with open(path) as f:
        text = f.read()
    first = text.split("\n## ")[0]
    rows = [line.strip("|").split("|") for line in first.splitlines() if line.startswith("| ") and "---" not in line]
    return {r[0].strip(): [c.strip() for c in r[1:]] for r in rows[1:]}


# ------------------------------------------------------------------- end to end (slow) --


@pytest.mark.slow
def test_sweep_runs_every_seed_and_method(swept):
    assert swept["stdout"].count(": running ->") == 4
    assert "4 ran, 0 skipped (finished), 0 failed" in swept["stdout"]
    for method in METHODS:
        for seed in SEEDS:
            output = read_log(swept["out"], method, seed)
            assert "done training in" in output
            assert f"'seed': {seed}," in output  # fairseq's config dump
    assert "sentence_prediction_r3f" in read_log(swept["out"], "r3f", 1)


@pytest.mark.slow
def test_markdown_table_is_min_median_max_of_the_logs(swept):
    cells = markdown_cells(os.path.join(swept["report"], "table2.md"))
    assert list(cells) == list(METHODS)
    for method in METHODS:
        bests = [expected_best(read_log(swept["out"], method, s))[0] for s in SEEDS]
        expected = f"{min(bests):.1f} / {sum(bests) / 2:.1f} / {max(bests):.1f} (2)"  # median of two = their mean
        assert cells[method] == [expected]
    assert "| std |" in swept["report_stdout"]


@pytest.mark.slow
def test_csv_files_match_the_logs(swept):
    with open(os.path.join(swept["report"], "runs.csv")) as f:
        runs = list(csv.DictReader(f))
    assert len(runs) == 4
    for row in runs:
        output = read_log(swept["out"], row["method"], int(row["seed"]))
        best, update = expected_best(output)
        assert (float(row["best"]), int(row["best_update"])) == (best, update)
        assert row["finished"] == "True" and row["counted"] == "True" and row["column"] == TASK
    with open(os.path.join(swept["report"], "table2.csv")) as f:
        table = {r["method"]: r for r in csv.DictReader(f)}
    for method in METHODS:
        bests = sorted(float(r["best"]) for r in runs if r["method"] == method)
        walls = sorted(float(r["wall_to_best"]) for r in runs if r["method"] == method)
        assert float(table[method][f"{TASK} best"]) == bests[-1]
        assert float(table[method][f"{TASK} median"]) == pytest.approx(sum(bests) / 2)
        assert float(table[method][f"{TASK} median wall to best (s)"]) == pytest.approx(sum(walls) / 2)
        assert int(table[method][f"{TASK} seeds"]) == 2


@pytest.mark.slow
def test_figures_are_png_and_svg(swept):
    for name in ("figure1", "figure2"):
        with open(os.path.join(swept["report"], name + ".png"), "rb") as f:
            data = f.read()
        assert len(data) > 1000 and data[:8] == PNG_SIGNATURE
        with open(os.path.join(swept["report"], name + ".svg")) as f:
            svg = f.read()
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    text = open(os.path.join(swept["report"], "table2.md")).read()
    assert "Figure 1: wall time" in text and "Figure 2: best dev metric" in text


@pytest.mark.slow
def test_mean_std_and_the_paired_test_against_std(swept):
    """The second and third tables of table2.md: mean +- std of the logged bests, and r3f - std
    per seed with scipy's paired t-test, recomputed here from the logs."""
    from scipy import stats

    text = open(os.path.join(swept["report"], "table2.md")).read()
    bests = {m: [expected_best(read_log(swept["out"], m, s))[0] for s in SEEDS] for m in METHODS}
    mean_std = text.split("## Mean +- standard deviation over seeds")[1].split("\n## ")[0]
    for method, values in bests.items():
        spread = (values[0] - values[1]) ** 2 / 2
        assert f"| {method} | {sum(values) / 2:.1f} +- {spread**0.5:.1f} |" in mean_std
    paired = text.split("## Against std")[1].split("\n## ")[0]
    diffs = [r - s for r, s in zip(bests["r3f"], bests["std"])]
    row = next(line for line in paired.splitlines() if line.startswith("| r3f |"))
    assert f"{sum(diffs) / 2:+.2f} [{min(diffs):+.2f}, {max(diffs):+.2f}], n=2" in row
    if len(set(diffs)) > 1:
        p = stats.ttest_rel(bests["r3f"], bests["std"]).pvalue
        assert f"p = {p:.2f})" in row or f"p = {p:.3f})" in row
    else:  # the same difference on every seed: t is infinite, or 0/0 when there is none
        assert ("p = 1.00)" if diffs[0] == 0 else "p = 0.000)") in row


@pytest.mark.slow
def test_earlier_runs_join_the_logs_and_a_run_found_twice_counts_once_or_is_refused(swept, tmp_path):
    """--add-runs: std's runs only as an earlier runs.csv (their logs gone), r3f's from the logs: the
    same tables as the report of all four logs; a run in both counts once where both give the same
    best, and is named, not picked, where they differ."""
    import shutil

    with open(os.path.join(swept["report"], "runs.csv")) as f:
        rows = list(csv.DictReader(f))
    earlier = str(tmp_path / "earlier.csv")
    with open(earlier, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(r for r in rows if r["method"] == "std")
    out = tmp_path / "out"
    shutil.copytree(os.path.join(swept["out"], TASK, "r3f"), out / TASK / "r3f")
    sweep("report", "--out-dir", str(out), "--add-runs", earlier, "--no-plots")
    for name in ("table2.csv", "runs.csv"):
        with open(os.path.join(swept["report"], name)) as f, open(out / "report" / name) as g:
            key = lambda r: sorted(r.items())  # noqa: E731
            assert sorted(csv.DictReader(g), key=key) == sorted(csv.DictReader(f), key=key), name
    # an added task takes its place in Table 2's column order (RTE before SYN), not the end
    moved = str(tmp_path / "rte.csv")
    with open(moved, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(
            {**r, "task": "RTE", "column": "RTE", "log": r["log"].replace(TASK, "RTE", 1)}
            for r in rows
            if r["method"] == "std"
        )
    both = tmp_path / "both"
    sweep("report", "--out-dir", str(out), "--add-runs", earlier, moved, "--report-dir", str(both), "--no-plots")
    assert "| method | RTE | SYN |" in (both / "table2.md").read_text()
    shutil.copytree(os.path.join(swept["out"], TASK, "std", "seed2"), out / TASK / "std" / "seed2")
    again = tmp_path / "again"
    sweep("report", "--out-dir", str(out), "--add-runs", earlier, "--report-dir", str(again), "--no-plots")
    with open(swept["report"] + "/table2.csv") as f, open(again / "table2.csv") as g:
        assert list(csv.DictReader(g)) == list(csv.DictReader(f))  # std seed 2 counted once
    std_seed2 = next(r for r in rows if (r["method"], r["seed"]) == ("std", "2"))
    other = str(tmp_path / "other.csv")
    with open(other, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerow({**std_seed2, "best": str(float(std_seed2["best"]) + 1)})
    proc = subprocess.run(
        [*SWEEP, "report", "--out-dir", str(out), "--add-runs", other, "--no-plots"], capture_output=True, text=True
    )
    assert proc.returncode == 1 and f"{TASK} std seed 2 (best, update)" in proc.stderr, proc.stderr
    assert "not the same run" in proc.stderr


@pytest.mark.slow
def test_a_report_never_drops_the_runs_of_the_report_it_replaces(swept, tmp_path):
    """A report written into a folder whose runs.csv holds runs it lacks is refused, naming them, before it
    writes anything; with that runs.csv joined (--add-runs), as the error says, or with --replace, it is written."""
    import shutil

    report = tmp_path / "report"
    shutil.copytree(swept["report"], report)
    before = {name: (report / name).read_bytes() for name in ("runs.csv", "table2.md", "table2.csv")}
    out = tmp_path / "out"
    shutil.copytree(os.path.join(swept["out"], TASK, "r3f"), out / TASK / "r3f")
    args = [*SWEEP, "report", "--out-dir", str(out), "--report-dir", str(report), "--no-plots"]
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stdout
    assert f"{TASK} std seed 1, {TASK} std seed 2" in proc.stderr and "--replace" in proc.stderr, proc.stderr
    assert {name: (report / name).read_bytes() for name in before} == before
    assert f"--add-runs {report}/runs.csv" in proc.stderr
    with open(report / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    # as the error says: the earlier runs.csv joined (its r3f runs, also in the logs, count once)
    sweep(
        "report",
        "--out-dir",
        str(out),
        "--report-dir",
        str(report),
        "--add-runs",
        str(report / "runs.csv"),
        "--no-plots",
    )
    with open(report / "runs.csv") as f:
        assert sorted((r["method"], r["seed"]) for r in csv.DictReader(f)) == sorted(
            (r["method"], r["seed"]) for r in rows
        )
    sweep("report", "--out-dir", str(out), "--report-dir", str(report), "--replace", "--no-plots")
    with open(report / "runs.csv") as f:
        assert {r["method"] for r in csv.DictReader(f)} == {"r3f"}


def test_paired_verdicts():
    """A shift larger than the seed spread differs; a consistent one far below it does not; a
    noisy one is seed noise; one pair cannot be tested."""
    base = {1: 70.0, 2: 75.0, 3: 80.0, 4: 72.0, 5: 78.0}
    assert results.paired_against({s: v + 9.0 + 0.1 * s for s, v in base.items()}, base).verdict().startswith("differs")
    small = results.paired_against({s: v + 0.2 + 0.01 * s for s, v in base.items()}, base)
    assert small.p < 0.05 and small.verdict().startswith("consistent, below the seed spread")
    noisy = results.paired_against({1: 71.0, 2: 73.0, 3: 81.0, 4: 71.0, 5: 79.0}, base)
    assert noisy.verdict().startswith("within seed noise")
    assert results.paired_against({1: 71.0}, base).verdict() == "n/a"
    # the same shift on every seed: certain (p = 0) but judged against the spread; no shift at all: p = 1
    assert results.paired_against({s: v + 9.0 for s, v in base.items()}, base).verdict() == "differs (p = 0.000)"
    assert results.paired_against({s: v + 1.0 for s, v in base.items()}, base).verdict().startswith("consistent")
    assert results.paired_against(dict(base), base).verdict() == "within seed noise (p = 1.00)"
    # lower-is-better metrics: a lower loss is a positive difference
    assert results.paired_against({1: 1.0, 2: 2.0}, {1: 2.0, 2: 3.5}, maximize=False).mean == pytest.approx(1.25)


@pytest.mark.slow
def test_rerun_skips_finished_runs(swept):
    before = {p: os.path.getmtime(p) for p in glob.glob(os.path.join(swept["out"], TASK, "*", "seed*", "train.log"))}
    start = time.monotonic()
    stdout = sweep("run", *swept["args"])
    assert time.monotonic() - start < 15
    assert stdout.count(": skipped (finished") == 4 and "0 ran, 4 skipped (finished), 0 failed" in stdout
    assert {p: os.path.getmtime(p) for p in before} == before
    assert sweep("print", *swept["args"]) == ""  # nothing pending
    lines = sweep("print", *swept["args"], "--all").splitlines()
    assert len(lines) == 4 and all(line.endswith("train.log 2>&1") and "train.sh SYN" in line for line in lines)
    pending = sweep("print", *swept["args"][:-2], "--seeds", "1-3", swept["args"][-2], swept["args"][-1])
    assert [re.search(r"seed(\d)/train.log", line).group(1) for line in pending.splitlines()] == ["3", "3"]


@pytest.mark.slow
def test_unfinished_run_is_pending_and_not_counted(swept, tmp_path):
    full = read_log(swept["out"], "std", 1)
    for seed, text in ((1, full[: full.index("done training in")]), (2, full)):
        os.makedirs(tmp_path / TASK / "std" / f"seed{seed}")
        (tmp_path / TASK / "std" / f"seed{seed}" / "train.log").write_text(text)
    args = [
        "--out-dir",
        str(tmp_path),
        "--tasks",
        TASK,
        "--methods",
        "std",
        "--seeds",
        "1-2",
        "--command",
        "echo {task} {method} {seed}",
    ]
    assert [line.split()[-6:-3] for line in sweep("print", *args).splitlines()] == [[TASK, "std", "1"]]
    sweep("report", "--out-dir", str(tmp_path), "--no-plots")
    with open(tmp_path / "report" / "runs.csv") as f:
        runs = {int(r["seed"]): r for r in csv.DictReader(f)}
    assert runs[1]["counted"] == "False" and runs[1]["problem"] == "unfinished"
    assert runs[2]["counted"] == "True"
    best = expected_best(full)[0]
    assert markdown_cells(tmp_path / "report" / "table2.md")["std"] == [f"{best:.1f} / {best:.1f} / {best:.1f} (1)"]


@pytest.mark.slow
def test_reference_rows_and_an_independent_method(swept, synthetic_data, tmp_path):
    """--majority-from scores the training set's most frequent class on the dev labels (counted
    here from the binarised labels); --references adds a CSV's rows, its metric named where it is
    not the column's; --independent compares by Welch's test (scipy's, recomputed here)."""
    from fairseq.data import Dictionary, data_utils
    from scipy import stats

    label_dict = Dictionary.load(os.path.join(synthetic_data, "label", "dict.txt"))

    def labels(split):
        data = data_utils.load_indexed_dataset(os.path.join(synthetic_data, "label", split), label_dict)
        return [label_dict[data[i][0].item()] for i in range(len(data))]

    train, valid = labels("train"), labels("valid")
    majority = max(set(train), key=train.count)
    expected_accuracy = 100.0 * valid.count(majority) / len(valid)
    published = tmp_path / "published.csv"
    published.write_text("row,column,metric,value,source\nsome paper,SYN,f1,91.25,its Table 1\n")
    report = tmp_path / "report"
    glue_bin = os.path.dirname(swept["out"]) + "/glue_bin"
    sweep(
        "report", "--out-dir", swept["out"], "--report-dir", str(report), "--no-plots", "--independent", "r3f",
        "--majority-from", glue_bin, "--references", str(published),
    )  # fmt: skip
    cells = markdown_cells(report / "table2.md")
    assert cells["majority class"] == [f"{expected_accuracy:.1f}"]
    assert cells["some paper"] == ["91.2 (f1)"]
    text = (report / "table2.md").read_text()
    bests = {m: [expected_best(read_log(swept["out"], m, s))[0] for s in SEEDS] for m in METHODS}
    row = next(line for line in text.split("## Against std")[1].splitlines() if line.startswith("| r3f |"))
    mean = sum(bests["r3f"]) / 2 - sum(bests["std"]) / 2
    assert f"{mean:+.2f}" in row and "n=2+2, Welch" in row
    if len(set(bests["r3f"])) > 1 and len(set(bests["std"])) > 1:
        p = stats.ttest_ind(bests["r3f"], bests["std"], equal_var=False).pvalue
        assert f"p = {p:.2f})" in row or f"p = {p:.3f})" in row


def test_a_bad_references_file_is_refused_naming_the_line(tmp_path):
    bad = tmp_path / "published.csv"
    bad.write_text("row,column,metric,value,source\npaper,RTE,accuracy,seventy,x\n")
    proc = subprocess.run(
        [*SWEEP, "report", "--out-dir", str(tmp_path), "--references", str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 1 and f"{bad}:2: value 'seventy' is not a number" in proc.stderr
    bad.write_text("name,column,value\n")
    proc = subprocess.run(
        [*SWEEP, "report", "--out-dir", str(tmp_path), "--references", str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 1 and "the header must be row,column,metric,value,source" in proc.stderr


def test_holm_and_welch():
    """Holm's adjustment by hand; Welch's interval holds the difference of the means and its p is
    scipy's unpaired one; a paired comparison judged on its adjusted p."""
    from scipy import stats

    assert results.holm([0.01, 0.04, 0.03, None]) == pytest.approx([0.03, 0.06, 0.06, None])
    assert results.holm([0.5, 0.2]) == pytest.approx([0.5, 0.4])
    a, b = [30.1, 28.4, 29.9, 31.0], [26.5, 27.5, 26.2]
    d = results.welch_against(a, b)
    assert d.mean == pytest.approx(sum(a) / 4 - sum(b) / 3)
    assert d.low < d.mean < d.high and d.n_label == "n=4+3" and d.test == "welch"
    assert d.p == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert results.welch_against(a, b, maximize=False).mean == pytest.approx(-d.mean)
    base = {1: 70.0, 2: 72.0, 3: 74.0}
    shifted = results.paired_against({s: v + 9.0 + 0.1 * s for s, v in base.items()}, base)
    assert shifted.verdict().startswith("differs (p =")
    assert shifted._replace(p_adjusted=0.2).verdict() == "within seed noise (Holm p = 0.20)"
    bests = {"SYN": {"std": base, "r3f": {s: v + 9.0 + 0.1 * s for s, v in base.items()}, "hf": {1: 80.0, 2: 82.0}}}
    (column,) = results.columns_for("SYN", {})
    found = results.comparisons(bests, [column], independent=["hf"])
    assert found[("hf", "SYN")].test == "welch" and found[("r3f", "SYN")].test == "paired"
    ps = [found[("r3f", "SYN")].p, found[("hf", "SYN")].p]
    assert [found[("r3f", "SYN")].p_adjusted, found[("hf", "SYN")].p_adjusted] == pytest.approx(results.holm(ps))


# ---------------------------------------------- log collection on a real log (module fixture) --


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_best_equals_fairseqs_own_best(swept, method):
    output = read_log(swept["out"], method, 1)
    (column,) = results.columns_for(TASK, {})
    result = results.collect(output, [column])[TASK]
    valid = fairseq_logs(output)["valid"]
    assert result.validations == len(valid) == 4  # updates 10, 20, 25 (end of epoch), 30
    assert result.best == max(float(r["valid_accuracy"]) for r in valid)
    assert result.best == float(valid[-1]["valid_best_accuracy"])  # fairseq's running best
    assert (result.best, result.best_update) == expected_best(output)


@pytest.mark.slow
def test_second_valid_subset_and_other_metrics(swept):
    output = read_log(swept["out"], "r3f", 2)
    assert set(log_files.parse_valid_subsets(output)) == {"valid", "valid1"}
    columns = results.columns_for(TASK, results.parse_metric_overrides([f"{TASK}=accuracy,valid1:accuracy,mcc"]))
    assert [(c.subset, c.name) for c in columns] == [("valid", "accuracy"), ("valid1", "accuracy"), ("valid", "mcc")]
    best = results.collect(output, columns)
    for col in columns:
        assert (best[col.label].best, best[col.label].best_update) == expected_best(output, col.subset, col.name)
    valid1 = subset_records(output, "valid1")
    assert len(valid1) == 4 and all("valid1_best_accuracy" not in r for r in valid1)  # fairseq tracks subset 1 only


def wall_before_validation(output, update):
    """The test's own reading: walk the log in order, remember the last training record's wall
    (train_inner `wall`, epoch `train_wall`), stop at the validation at `update`."""
    wall, waiting = None, False
    for line in output.splitlines():
        tag = re.search(r"\| (train_inner|train|valid) \| \{", line)
        if not tag:
            continue
        record = json.loads(line[line.index("{") :])
        if "| train_inner | " in line or "| train | " in line:
            if waiting:
                return float(record["wall"] if "wall" in record else record["train_wall"])
            wall = float(record["wall"] if "| train_inner | " in line else record["train_wall"])
        elif "| valid | " in line and int(record["valid_num_updates"]) == update:
            if wall is not None:
                return wall
            waiting = True  # nothing logged before it: the next training record
    raise AssertionError("validation not found")


@pytest.mark.slow
def test_wall_to_best_is_wall_of_last_training_record_before_it(swept):
    for method in METHODS:
        for seed in SEEDS:
            output = read_log(swept["out"], method, seed)
            _, update = expected_best(output)
            result = results.collect(output, results.columns_for(TASK, {}))[TASK]
            assert result.best_update == update
            assert result.wall_to_best == wall_before_validation(output, update)
            assert 0 < result.wall_to_best <= float(fairseq_logs(output)["train"][-1]["train_wall"])


@pytest.mark.slow
def test_missing_metric_names_the_ones_logged(swept):
    output = read_log(swept["out"], "std", 1)
    with pytest.raises(results.MetricMissing, match=r"no 'valid_f1'.*valid_accuracy.*--metric SYN="):
        results.collect(output, results.columns_for(TASK, {TASK: "f1"}))


# ------------------------------------------------------------------------- pure, fast --


def test_seeds_and_default_columns():
    assert runs.parse_seeds(["1-3", "7", "2,9"]) == [1, 2, 3, 7, 9]
    labels = {t: [(c.label, c.subset, c.name) for c in results.columns_for(t, {})] for t in ("MNLI", "CoLA", "RTE")}
    assert labels == {
        "MNLI": [("MNLI-m", "valid", "accuracy"), ("MNLI-mm", "valid1", "accuracy")],
        "CoLA": [("CoLA", "valid", "mcc")],
        "RTE": [("RTE", "valid", "accuracy")],
    }
    assert not results.columns_for("X", {"X": "loss"})[0].maximize


def test_descending_seed_range_is_refused_before_any_run(tmp_path):
    """--seeds 5-1 once planned no run and exited 0, as if the sweep were done."""
    with pytest.raises(argparse.ArgumentTypeError, match=r"--seeds '5-1': a descending range .*1-5 counts up"):
        runs.parse_seeds(["1", "5-1"])
    assert runs.parse_seeds(["3-3"]) == [3]
    out = tmp_path / "out"
    proc = subprocess.run(
        [*SWEEP, "run", "--out-dir", str(out), "--tasks", "RTE", "--methods", "std", "--seeds", "5-1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "--seeds '5-1': a descending range plans no run" in proc.stderr, proc.stderr
    assert not out.exists()


def test_command_template_is_checked_and_quoted(tmp_path):
    proc = subprocess.run([*SWEEP, "print", "--command", "train {nope}"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "{task} {method} {seed} {save_dir} {log}" in proc.stderr
    run = runs.Run("SST-2", "std++", 3, str(tmp_path / "a b"))
    assert shlex.split(runs.format_command("x {task} {method} {seed} {save_dir} {log}", run)) == [
        "x",
        "SST-2",
        "std++",
        "3",
        str(tmp_path / "a b"),
        str(tmp_path / "a b" / "train.log"),
    ]


def test_old_logs_are_kept(tmp_path):
    log = tmp_path / "train.log"
    assert runs.keep_old_log(str(log)) is None
    for n in (1, 2):
        log.write_text(f"attempt {n}")
        assert runs.keep_old_log(str(log)) == f"{log}.{n}"
    assert not log.exists() and (tmp_path / "train.log.2").read_text() == "attempt 2"


# ---- names checked up front, parallel runs through submitit, fresh starts refused ----------------


def test_run_needs_names_and_checks_them_against_train_sh(tmp_path):
    for args, message in (
        ([], "name the runs: --tasks"),
        (["--tasks", "RTX", "--methods", "std"], "unknown task(s) RTX; scripts/glue/train.sh takes"),
        (["--tasks", "RTE", "--methods", "std", "r5f"], "unknown method(s) r5f"),
        (["--tasks", "RTE", "--methods", "std", "--jobs", "0"], "--jobs must be >= 1"),
    ):
        proc = subprocess.run(
            [*SWEEP, "run", "--out-dir", str(tmp_path), *args], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
    assert not os.listdir(tmp_path)  # nothing was started
    # print (a dry run) may still list the whole grid
    printed = sweep("print", "--out-dir", str(tmp_path)).splitlines()
    assert len(printed) == len(results.TASKS) * len(results.METHODS) * 10


def test_jobs_run_through_submitit_and_a_failing_run_is_reported_failed(tmp_path, synthetic_data):
    """Two tiny fairseq-train runs at once through submitit's local executor (the code path of
    --cluster slurm): the good one done, the bad one (an unknown method) failed, exit status 1."""
    pytest.importorskip("submitit")
    glue_bin = glue_bin_with_valid1(synthetic_data, str(tmp_path / "glue_bin"))
    train = write_train_script(str(tmp_path / "train.sh"), glue_bin)
    out = str(tmp_path / "out")
    proc = subprocess.run(
        [
            *SWEEP,
            "run",
            "--out-dir",
            out,
            "--tasks",
            TASK,
            "--methods",
            "std",
            "bad",
            "--seeds",
            "1",
            "--jobs",
            "2",
            "--poll-seconds",
            "0.5",
            "--command",
            f"bash {shlex.quote(train)} {{task}} {{method}} {{seed}} {{save_dir}}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert f"[sweep] {TASK} std seed 1: done in" in proc.stdout
    assert any(line.startswith(f"[sweep] {TASK} bad seed 1: FAILED (exit 2)") for line in lines)
    assert "2 runs: 0 finished, 2 to run (submitit, local, 2 at a time)" in proc.stdout
    assert "[sweep] 1 done, 0 running, 1 failed, 0 pending" in proc.stdout
    assert os.path.isdir(os.path.join(out, ".submitit"))
    assert "unknown method bad" in open(os.path.join(out, TASK, "bad", "seed1", "train.log")).read()


RECIPE_COMMON = os.path.join(os.path.dirname(USER_DIR), "scripts", "recipe_common.sh")


def test_the_demo_shows_the_sweeps_progress_on_the_terminal(tmp_path, synthetic_data):
    """scripts/demo.sh runs its sweep through run_showing_progress (scripts/recipe_common.sh): all of
    the sweep's output into sweep.log, its progress lines on the terminal (the demo once printed
    nothing for its minutes of training); the sweep's exit status is kept."""
    pytest.importorskip("submitit")
    with open(os.path.join(os.path.dirname(RECIPE_COMMON), "demo.sh")) as f:
        assert 'run_showing_progress "${OUT}/sweep.log" "$PYTHON" -m r3f_experiments.sweep run' in f.read()
    glue_bin = glue_bin_with_valid1(synthetic_data, str(tmp_path / "glue_bin"))
    train = write_train_script(str(tmp_path / "train.sh"), glue_bin)
    log = tmp_path / "sweep.log"
    command = [
        "bash",
        "-c",
        'source "$1" && shift && run_showing_progress "$@"',
        "demo",
        RECIPE_COMMON,
        str(log),
        *SWEEP,
        "run",
        "--out-dir",
        str(tmp_path / "out"),
        "--tasks",
        TASK,
        "--methods",
        "bad",
        "std",
        "--seeds",
        "1",
        "--jobs",
        "2",
        "--poll-seconds",
        "0.5",
        "--command",
        f"bash {shlex.quote(train)} {{task}} {{method}} {{seed}} {{save_dir}}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the sweep's: a run failed
    shown = proc.stdout.splitlines()
    assert shown and all(line.startswith("[sweep] ") for line in shown), shown
    assert set(shown) <= set(log.read_text().splitlines())
    assert f"[sweep] submit {TASK} std seed 1 -> " in proc.stdout
    assert any(line.startswith(f"[sweep] {TASK} bad seed 1: FAILED") for line in shown)
    assert f"[sweep] {TASK} std seed 1: done in" in proc.stdout
    # the failed run ends first, while std still trains: the line with the ETA
    assert re.search(r"^\[sweep\] 0 done, 1 running, 1 failed, 0 pending; ETA \d+ min$", proc.stdout, re.M)
    assert "[sweep] 2 ran, 0 skipped (finished), 1 failed" in proc.stdout
    # a rerun: the finished run's "skipped" line stays in the log, the count is shown
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 1
    assert f"{TASK} std seed 1: skipped (finished" in log.read_text() and "skipped (finished:" not in proc.stdout
    assert "[sweep] 2 runs: 1 finished, 1 to run" in proc.stdout


def test_fresh_start_instead_of_the_pretrained_model_is_not_counted(swept, tmp_path):
    """fairseq's --restore-file treats a missing file as "start fresh" and exits 0: such a run is
    no result, in the report and for the sweep (which runs it again)."""
    out = tmp_path / "out"
    fresh = out / TASK / "std" / "seed1"
    fresh.mkdir(parents=True)
    (fresh / "train.log").write_text(
        "2026-01-01 00:00:00 | INFO | fairseq.trainer | No existing checkpoint found /nope/model.pt\n"
        + read_log(swept["out"], "std", 1)
    )
    assert not log_files.is_finished(str(fresh / "train.log"))
    proc = subprocess.run(
        [*SWEEP, "report", "--out-dir", str(out), "--no-plots"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "not counted: started from random init: the pre-trained model /nope/model.pt does not exist" in proc.stderr


def test_a_resumed_run_is_read_with_the_logs_it_resumed(swept, tmp_path):
    """train.sh resumes a killed run from checkpoint_last.pt: its validations before the kill are
    in train.log.1, and they count."""
    whole = read_log(swept["out"], "std", 1)
    lines = whole.splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if "| valid | {" in line) + 1
    run = tmp_path / TASK / "std" / "seed1"
    run.mkdir(parents=True)
    (run / "train.log.1").write_text("".join(lines[:cut]))
    (run / "train.log").write_text(
        f"| INFO | fairseq.trainer | Loaded checkpoint {run}/checkpoint_last.pt (epoch 2 "
        "@ 10 updates)\n" + "".join(lines[cut:])
    )
    assert log_files.run_output(str(run / "train.log")).count("| valid | {") == whole.count("| valid | {")
    (run / "train.log").write_text("".join(lines[cut:]))  # not a resume: the older log is not read
    assert log_files.run_output(str(run / "train.log")).count("| valid | {") < whole.count("| valid | {")


def test_metrics_printed_as_null_are_left_out_of_the_records():
    """fairseq prints a metric with no value in an interval (the R3F diagnostics between
    diagnosed steps) as null: the record leaves it out, so a reader finds only measured values."""
    log = (
        '2026-01-01 00:00:00 | INFO | train_inner | {"epoch": 1, "update": 10, "loss": "0.5", '
        '"noise_kl": null, "noise_carried": "1"}\n'
        '2026-01-01 00:00:01 | INFO | train | {"epoch": 1, "train_loss": "0.4", "train_noise_kl": null}\n'
    )
    logs = fairseq_logs(log)
    assert logs["train_inner"] == [{"epoch": 1, "update": 10, "loss": "0.5", "noise_carried": "1"}]
    assert logs["train"] == [{"epoch": 1, "train_loss": "0.4"}]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie has ended
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def _family(pid: int, marker: str):
    """``ps`` rows (pid, ppid, stat, elapsed, command) of ``pid``, of every process with ``marker``
    in its command line (an orphan: its parent ended), and of their descendants."""
    rows = subprocess.run(["ps", "-ww", "-eo", "pid=,ppid=,stat=,etime=,args="], capture_output=True, text=True).stdout
    procs = [line.split(None, 4) for line in rows.splitlines() if len(line.split(None, 4)) == 5]
    family = {str(pid)} | {p[0] for p in procs if marker in p[4]}
    for _ in range(5):  # a few generations deep
        family |= {p[0] for p in procs if p[1] in family}
    return [p for p in procs if p[0] in family]


def _tree(pid: int, marker: str) -> str:
    return "".join(" ".join(p) + "\n" for p in _family(pid, marker)) or "(nothing)\n"


def _kill_tree(pid: int, marker: str) -> None:
    for p in _family(pid, marker):
        if int(p[0]) == os.getpid():
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(p[0]), 9)


def _ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("jobs, background", [("1", False), ("2", False), ("2", True)], ids=["1", "2", "2-background"])
def test_one_sweep_per_folder_and_a_stopped_sweep_ends_its_runs(tmp_path, jobs, background):
    """While a sweep runs, a second into the same folder is refused, naming the first; SIGTERM to
    the first ends its runs (the command and what it started) and says how to go on; the folder
    is free again afterwards. ``background``: started as `nohup ... &` starts it, with SIGINT
    ignored, which submitit's local jobs would inherit and so ignore its cancel."""
    if jobs != "1":
        pytest.importorskip("submitit")
    out, pids = str(tmp_path / "out"), tmp_path / "pids"
    # the run's bash starts a child that would outlive a bash killed on its own
    command = f"sleep 300 & echo $! >> {shlex.quote(str(pids))}; wait"
    argv = [*SWEEP, "run", "--out-dir", out, "--tasks", TASK, "--methods", "a", "b", "--seeds", "1"]
    argv += ["--jobs", jobs, "--poll-seconds", "0.2", "--command", command]
    first = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_ignore_sigint if background else None,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(pids.read_text().split() if pids.exists() else []) < int(jobs):
            time.sleep(0.2)
        children = [int(p) for p in pids.read_text().split()]
        assert len(children) == int(jobs) and all(_alive(p) for p in children)
        second = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        assert f"{out}/.submitit is in use by python -m r3f_experiments.sweep (pid {first.pid}" in second.stderr
        first.send_signal(15)
        try:
            output, _ = first.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # say where it stood, not only that it hung
            left = _tree(first.pid, str(tmp_path))
            _kill_tree(first.pid, str(tmp_path))
            pytest.fail(f"the stopped sweep or what it started had not ended 60 s after SIGTERM:\n{left}")
    finally:
        first.kill()
    assert first.returncode == 130 and "stopped; rerun the same command to go on" in output, output
    time.sleep(0.5)
    assert not any(_alive(p) for p in children), children
    with runs.folder_lock(os.path.join(out, ".submitit"), "test"):
        pass


class _JobThatKeepsRunning:
    job_id = "4242"

    def __init__(self):
        self.cancelled = False

    def cancel(self):
        self.cancelled = True

    def done(self):
        return False


def test_a_run_still_running_after_the_cancel_wait_is_named(tmp_path, capsys):
    """The sweep waits a while for cancelled jobs; one still running then is named, not left
    unsaid (the sweep would otherwise exit as if its runs had ended)."""
    job = _JobThatKeepsRunning()
    runs._cancel({job: (runs.Run("RTE", "r3f", 2, str(tmp_path)), 0.0)}, "sweep", wait_s=0.0)
    out = capsys.readouterr().out
    assert job.cancelled
    assert "[sweep] warning: still running 0 s after cancelling: RTE r3f seed 2 (job 4242)" in out
