"""The sigma sweep (r3f_experiments.sigma_sweep) end to end on a tiny model and the synthetic task
laid out as a GLUE task: every variant runs through the real train.sh, a rerun skips finished
runs, and the report's table, CSV and figures come from the logs."""

import csv
import os
import subprocess
import sys

import pytest

from tests.helpers import CLASSIFICATION, TINY_ROBERTA, USER_DIR, run_fairseq

SIGMA_SWEEP = [sys.executable, "-m", "r3f_experiments.sigma_sweep"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory, synthetic_data):
    root = tmp_path_factory.mktemp("sigma_sweep")
    os.makedirs(root / "glue_bin")
    os.symlink(synthetic_data, root / "glue_bin" / "RTE-bin")
    pretrained = root / "pretrained"
    run_fairseq(
        "fairseq-train",
        synthetic_data,
        "--user-dir",
        USER_DIR,
        *CLASSIFICATION,
        *TINY_ROBERTA,
        "--criterion",
        "sentence_prediction",
        "--max-update",
        "2",
        "--save-dir",
        str(pretrained),
    )
    args = [
        "--task",
        "RTE",
        "--checkpoint",
        str(pretrained / "checkpoint_last.pt"),
        "--glue-bin",
        str(root / "glue_bin"),
        "--out-dir",
        str(root / "out"),
        "--seeds",
        "1-2",
        "--sigmas",
        "1e-2",
        "1",
        "--max-update",
        "6",
        "--valid-every",
        "3",
        "--lr",
        "1e-3",
        "--batch-size",
        "16",
        "--",
        "--max-positions",
        "64",
    ]
    run = subprocess.run(
        [*SIGMA_SWEEP, "run", *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return {"root": root, "args": args, "run": run}


@pytest.mark.slow
def test_every_variant_and_seed_runs_and_a_rerun_skips_them(swept):
    out = swept["root"] / "out" / "RTE"
    variants = {"std", "rdrop", "rel1e-2", "rel1e-2-same", "rel1", "rel1-same"}
    assert set(os.listdir(out)) == variants
    assert "12 runs: 0 finished, 12 to run" in swept["run"].stdout
    rerun = subprocess.run([*SIGMA_SWEEP, "run", *swept["args"]], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0 and "12 runs: 12 finished, 0 to run" in rerun.stdout
    same = open(out / "rel1-same" / "seed2" / "train.log").read()  # fairseq logs its configuration
    assert all(
        f in same
        for f in (
            "'noise_scale': relative",
            "'eps': 1.0",
            "'r3f_same_dropout': True",
            "'r3f_diagnostics_interval': 10",
            "'seed': 2",
        )
    )
    std = open(out / "std" / "seed1" / "train.log").read()
    assert "'_name': 'sentence_prediction'" in std and "loading pretrained model from" in std
    # PRESET=small's run, with the sweep's schedule options in place of the preset's
    assert all(
        f in std
        for f in (
            "'no_save': True",
            "'lr': [0.001]",
            "'max_update': 6",
            "'batch_size': 16",
            "'validate_interval_updates': 3",
            "'log_interval': 10",
        )
    )


@pytest.mark.slow
def test_report_table_csv_and_figure(swept):
    out = swept["root"] / "out"
    report = subprocess.run(
        [*SIGMA_SWEEP, "report", "--out-dir", str(out), "--task", "RTE"], capture_output=True, text=True, timeout=300
    )
    assert report.returncode == 0, report.stderr
    table = (out / "RTE" / "report" / "table.md").read_text()
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert [line.split(" | ")[0][2:] for line in lines[1:]] == [
        "std",
        "rdrop",
        "rel1e-2",
        "rel1e-2-same",
        "rel1",
        "rel1-same",
    ]
    with open(out / "RTE" / "report" / "runs.csv") as f:
        runs = list(csv.DictReader(f))
    assert len(runs) == 12 and {r["seed"] for r in runs} == {"1", "2"}
    by = {(r["variant"], r["seed"]): r for r in runs}
    # the noise alone makes a larger KL at sigma = 1 x RMS than at 1e-2 x RMS, for every seed
    for seed in ("1", "2"):
        assert float(by[("rel1", seed)]["noise_kl"]) > 100 * float(by[("rel1e-2", seed)]["noise_kl"]) > 0
        assert float(by[("rel1", seed)]["noise_to_embed"]) == pytest.approx(1.0)
        assert by[("std", seed)]["noise_kl"] == ""  # no R3F: no diagnostics
    for name in ("figure.png", "figure.svg"):
        assert (out / "RTE" / "report" / name).stat().st_size > 10_000
    assert (out / "RTE" / "report" / "figure.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_a_report_never_drops_the_runs_of_the_report_it_replaces(swept, tmp_path):
    """A rerun of the report from fewer logs into the same folder is refused, naming the run it would
    drop, and leaves the earlier report as it was; --replace writes it."""
    import shutil

    out = tmp_path / "out"
    shutil.copytree(swept["root"] / "out" / "RTE", out / "RTE", ignore=shutil.ignore_patterns("report", "*.pt"))
    report = [*SIGMA_SWEEP, "report", "--out-dir", str(out), "--task", "RTE", "--no-plots"]
    assert subprocess.run(report, capture_output=True, text=True, timeout=300).returncode == 0
    before = (out / "RTE" / "report" / "runs.csv").read_text()
    shutil.rmtree(out / "RTE" / "rel1" / "seed2")
    proc = subprocess.run(report, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "holds runs this report does not: rel1 seed 2;" in proc.stderr, proc.stderr
    assert (out / "RTE" / "report" / "runs.csv").read_text() == before
    assert subprocess.run([*report, "--replace"], capture_output=True, text=True, timeout=300).returncode == 0
    with open(out / "RTE" / "report" / "runs.csv") as f:
        assert sorted((r["variant"], r["seed"]) for r in csv.DictReader(f)) == sorted(
            (r["variant"], r["seed"])
            for r in csv.DictReader(before.splitlines())
            if (r["variant"], r["seed"]) != ("rel1", "2")
        )


def test_a_difference_is_called_one_only_beyond_seed_spread():
    from r3f_experiments.sigma_sweep import _paired

    def records(variant, values):
        return [{"variant": variant, "seed": seed, "best": value} for seed, value in enumerate(values, 1)]

    rdrop = records("rdrop", [80.0, 84.0, 88.0])
    # every seed better, but by less than the seeds' spread (std 4): not a difference
    assert "below the seed spread" in _paired(rdrop + records("a", [81.0, 85.0, 89.0]), "a", "rdrop")
    # every seed better by more than the spread
    assert "differs" in _paired(rdrop + records("b", [90.0, 94.0, 98.0]), "b", "rdrop")
    # a large mean difference with one seed of the other sign: the paired t-test does not reject
    assert "within seed noise" in _paired(rdrop + records("c", [99.0, 99.0, 87.0]), "c", "rdrop")
    assert _paired(rdrop, "rdrop", "rdrop") == "-"


def test_dropout_modes_choose_the_r3f_variants_per_sigma():
    from r3f_experiments.sigma_sweep import variants

    assert list(variants(["1e-1", "1"], ["independent"])) == ["std", "rdrop", "rel1e-1", "rel1"]
    both = variants(["1e-1"])
    assert list(both) == ["std", "rdrop", "rel1e-1", "rel1e-1-same"]
    assert both["rel1e-1-same"][-1] == "--r3f-same-dropout" and "--r3f-same-dropout" not in both["rel1e-1"]
    assert both["rel1e-1"][:5] == ["r3f", "--noise-scale", "relative", "--eps", "1e-1"]
