"""The fairseq-train cost benchmark (r3f_experiments.bench.train_cost) on the tiny CPU model: every
config runs through the real fairseq-train, the per-update figures come from its records, and the
ratios are taken within a round."""

import subprocess
import sys

import pytest

TRAIN_COST = [sys.executable, "-m", "r3f_experiments.bench.train_cost"]


@pytest.mark.slow
def test_configs_run_in_fairseq_train_and_the_table_holds_their_ratios(tmp_path):
    out = tmp_path / "cost.json"
    proc = subprocess.run(
        [
            *TRAIN_COST,
            "--rounds",
            "2",
            "--short",
            "3",
            "--long",
            "9",
            "--seq-len",
            "16",
            "--only",
            "standard",
            "reference",
            "ours",
            "--json-out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in proc.stdout.splitlines() if line.startswith("| ")}
    assert set(rows) == {"config", "standard", "reference", "ours"}
    assert rows["config"][4:] == [
        "CPU vs standard",
        "updates/s vs standard",
        "CPU vs reference",
        "updates/s vs reference |",
    ]
    import json

    rounds = json.loads(out.read_text())["rounds"]
    assert len(rounds) == 2 and all(set(r) == {"standard", "reference", "ours"} for r in rounds)
    for r in rounds:
        for m in r.values():
            assert m["cpu_ms"] > 0 and m["ups"] > 0 and m["peak_mib"] > 100
    # each ratio is the median of the per-round ratios
    ratios = sorted(r["ours"]["cpu_ms"] / r["standard"]["cpu_ms"] for r in rounds)
    assert rows["ours"][4].startswith(f"{(ratios[0] + ratios[1]) / 2:.2f} [{ratios[0]:.2f}, {ratios[1]:.2f}]")
    assert rows["standard"][4].startswith("1.00 [1.00, 1.00]")


def test_bad_measure_window_is_refused():
    proc = subprocess.run([*TRAIN_COST, "--short", "40", "--long", "100"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--long a multiple of --short" in proc.stderr
