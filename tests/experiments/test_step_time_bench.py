"""The per-step cost benchmarks (r3f_experiments.bench.step_time and seq2seq_step_time) on the tiny
CPU models: every config runs fairseq's own train step with the criterion it names (standard:
fairseq's, reference: the authors' rxf_src, ours: this plugin's) on batches of the asked shape, and
the table has one row per config. Nothing is asserted on the times themselves."""

import json
import subprocess
import sys

import pytest

CRITERIA = {
    "r3f_experiments.bench.step_time": {
        "standard": "fairseq.criterions.sentence_prediction.SentencePredictionCriterion",
        "reference": "rxf_src.sentence_prediction_r3f.SentencePredictionR3F",
        "ours": "fairseq_r3f.criterions.sentence_prediction_r3f.SentencePredictionR3FCriterion",
        "ours-one-sided": "fairseq_r3f.criterions.sentence_prediction_r3f.SentencePredictionR3FCriterion",
    },
    "r3f_experiments.bench.seq2seq_step_time": {
        "standard": "fairseq.criterions.label_smoothed_cross_entropy.LabelSmoothedCrossEntropyCriterion",
        "reference": "rxf_src.label_smoothed_cross_entropy_r3f.LabelSmoothedCrossEntropyR3FCriterion",
        "ours": "fairseq_r3f.criterions.label_smoothed_cross_entropy_r3f.LabelSmoothedCrossEntropyR3FCriterion",
    },
}


@pytest.mark.parametrize("module", sorted(CRITERIA))
def test_every_config_trains_with_the_criterion_it_names(module, tmp_path):
    expected = CRITERIA[module]
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", module, "--steps", "2", "--warmup", "1", "--repeats", "1"]
    command += ["--batch-size", "4", "--seq-len", "24", "--json-out", str(out), "--only", *expected]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    result = json.loads(out.read_text())
    assert sorted(result["runs"]) == sorted(expected)
    for config, criterion in expected.items():
        (run,) = result["runs"][config]
        assert run["criterion"] == criterion, config
        assert run["batch_shapes"] == [[4, 24]], config
        assert run["step_ms"] > 0 and run["cpu_ms"] > 0, config
        assert f"| {config} |" in proc.stdout, config
    assert "| standard | " in proc.stdout and "1.00x" in proc.stdout


# the paper's Table 1, measured: (forward, backward) encoder passes per training step
PASSES = {
    "standard": (1, 1),
    "r3f": (2, 2),
    "r3f-one-sided": (2, 1),
    "r3f-stacked": (2, 2),
    "r4f": (2, 2),
    "smart-K1": (3, 3),
    "smart-K2": (4, 4),
    "freelb-K1": (2, 2),
    "freelb-K3": (4, 4),
}


def test_cost_counts_each_methods_passes_and_not_the_diagnostics(tmp_path):
    """One warm-up step: the counted step is the first, where R3F's diagnostics would add passes of
    their own if the benchmark left them on."""
    out = tmp_path / "cost.json"
    command = [sys.executable, "-m", "r3f_experiments.bench.cost", "--steps", "1", "--warmup", "1", "--repeats", "1"]
    command += ["--batch-size", "4", "--seq-len", "24", "--json-out", str(out), "--only", *PASSES]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    summary = json.loads(out.read_text())["summary"]
    assert {config: (s["forward"], s["backward"]) for config, s in summary.items()} == PASSES
    for config, (forward, backward) in PASSES.items():
        assert f"| {config} | {forward} / {backward} |" in proc.stdout, config
