"""SMART and FreeLB with fairseq-train end to end (train, resume across methods), and the
wall-time-to-best report (r3f_experiments.bench.wall_time) from those runs."""

import os

import pytest

from tests.helpers import CLASSIFICATION, TINY_ROBERTA, USER_DIR, fairseq_logs, run_fairseq

# FreeLB's runs use SMART's criterion with lambda_s = 0 (the plain cross-entropy loss) so that
# SMART can resume their checkpoint: fairseq refuses to resume an optimizer saved under another
# criterion class. Three fairseq-train runs in one save dir: FreeLB 0 -> 6 updates, FreeLB
# resumed 6 -> 10, SMART resumed 10 -> 14.
RUNS = (
    (
        "freelb",
        "6",
        [
            "--task",
            "sentence_prediction_adv",
            "--adv-steps",
            "2",
            "--criterion",
            "sentence_prediction_smart",
            "--smart-lambda",
            "0",
        ],
    ),
    (
        "freelb",
        "10",
        [
            "--task",
            "sentence_prediction_adv",
            "--adv-steps",
            "2",
            "--criterion",
            "sentence_prediction_smart",
            "--smart-lambda",
            "0",
        ],
    ),
    ("smart", "14", ["--criterion", "sentence_prediction_smart"]),
)


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory, synthetic_data):
    """(save dir, [output of each run in RUNS])."""
    save_dir = tmp_path_factory.mktemp("adversarial")
    outputs = []
    for _, updates, flags in RUNS:
        proc = run_fairseq(
            "fairseq-train",
            synthetic_data,
            "--user-dir",
            USER_DIR,
            *CLASSIFICATION,
            *TINY_ROBERTA,
            *flags,
            "--max-update",
            updates,
            "--save-dir",
            str(save_dir),
            "--log-interval",
            "2",
            "--best-checkpoint-metric",
            "accuracy",
            "--maximize-best-checkpoint-metric",
        )
        outputs.append(proc.stdout + proc.stderr)
    return save_dir, outputs


@pytest.mark.slow
def test_smart_and_freelb_train_and_resume_with_fairseq_train(trained_runs):
    save_dir, outputs = trained_runs
    previous = None
    for (method, updates, _), output in zip(RUNS, outputs):
        logs = fairseq_logs(output)
        final = logs["train"][-1]
        assert int(final["train_num_updates"]) == int(updates) and logs["valid"], method
        if previous is not None:  # resumed from checkpoint_last.pt where the last run stopped
            assert f"Loaded checkpoint {save_dir}/checkpoint_last.pt (epoch" in output
            assert f"@ {previous} updates)" in output
        if method == "smart":
            assert float(final["train_symm_kl"]) > 0
            assert float(final["train_smart_to_embed"]) > 0.05  # the normalised noise's size is logged
        else:  # the adversarial passes' mean loss is above the (near-clean) first pass's
            assert float(final["train_adv_loss"]) > float(final["train_loss"])
            assert float(final["train_adv_to_embed"]) > 0  # the perturbation's size is logged
            assert "train_symm_kl" not in final  # lambda_s = 0: no SMART passes
        previous = updates
    assert os.path.exists(save_dir / "checkpoint_best.pt")


@pytest.mark.slow
def test_wall_time_to_best_from_these_runs(trained_runs, tmp_path):
    """r3f_experiments.bench.wall_time on the runs above, laid out as a sweep: table and PNG."""
    _, outputs = trained_runs
    layout = {("freelb", 1): outputs[1], ("smart", 1): outputs[2], ("smart", 2): outputs[2]}
    for (method, seed), output in layout.items():
        (tmp_path / "RTE" / method / f"seed{seed}").mkdir(parents=True)
        (tmp_path / "RTE" / method / f"seed{seed}" / "train.log").write_text(output)
    from r3f_experiments.bench import wall_time

    png = tmp_path / "wall.png"
    text = wall_time.main(["--out-dir", str(tmp_path), "--task", "RTE", "--baseline", "freelb", "--png", str(png)])

    # the SMART run validated once, at update 14; the last training record before it is the
    # train_inner record of update 14 (--log-interval 2)
    inner = [r for r in fairseq_logs(outputs[2])["train_inner"] if int(r["num_updates"]) == 14]
    wall = float(inner[-1]["wall"])
    smart_best = float(fairseq_logs(outputs[2])["valid"][-1]["valid_accuracy"])
    assert f"| smart | 2 | {wall:.0f} [{wall:.0f}, {wall:.0f}] |" in text and f"| {smart_best:.2f} |" in text
    assert "| freelb | 1 |" in text
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
