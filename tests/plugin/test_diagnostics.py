"""R3F's diagnostics (noise_kl, embed_rms, noise_to_embed, noise_carried at every
--r3f-diagnostics-interval steps) and --noise-scale relative, in-process on a tiny RoBERTa."""

import copy

import pytest
import torch

from fairseq_r3f.method.noise import token_rms
from tests.helpers import TINY_ROBERTA, build_in_process, valid_batch

R3F = ["--criterion", "sentence_prediction_r3f"]


def diagnosed(data, *flags):
    _, task, model, criterion = build_in_process(data, *TINY_ROBERTA, *R3F, "--r3f-diagnostics-interval", "1", *flags)
    model.train()
    return task, model, criterion


def logged(criterion, model, sample, seed=0):
    torch.manual_seed(seed)
    loss, size, log = criterion(model, sample)
    return loss, size, log


def test_noise_kl_grows_with_sigma_and_is_the_noise_alone(synthetic_data):
    """Same dropout masks in the diagnostic passes: at sigma 1e-5 the noise alone makes almost no
    KL, at 1e-1 far more (dropout is on, so symm_kl itself is large at both)."""
    kls = {}
    for eps in ("1e-5", "1e-1"):
        task, model, criterion = diagnosed(synthetic_data, "--eps", eps)
        _, size, log = logged(criterion, model, valid_batch(task, size=16))
        kls[eps] = log["noise_kl"].item() / log["_diag_kl_weight"]
        assert log["symm_kl"].item() / size > 10 * kls["1e-5"]  # dropout disagreement dominates at 1e-5
    assert kls["1e-1"] > 100 * kls["1e-5"] > 0


def test_relative_sigma_is_absolute_sigma_times_the_embedding_rms(synthetic_data):
    task, model, relative = diagnosed(synthetic_data, "--eps", "0.3", "--noise-scale", "relative")
    sample = valid_batch(task)
    src = sample["net_input"]["src_tokens"]
    relative.check_model(model)
    encoder = relative._encoder
    keep = src.ne(encoder.padding_idx)
    embeddings = encoder.embed_tokens(src)
    rms = token_rms(embeddings, keep).item()
    assert 0 < rms < 1
    *_, absolute = build_in_process(synthetic_data, *TINY_ROBERTA, *R3F, "--eps", str(0.3 * rms))
    absolute.check_model(model)
    for noise_type in ("uniform", "normal"):
        relative.noise_type = absolute.noise_type = noise_type
        torch.manual_seed(7)
        rel = relative.draw_noise(src)
        torch.manual_seed(7)
        ab = absolute.draw_noise(src)
        assert torch.allclose(rel.added_to(embeddings), ab.added_to(embeddings), rtol=1e-4, atol=1e-9), noise_type
        assert torch.allclose(rel(embeddings), ab(embeddings), rtol=1e-4, atol=1e-9), noise_type
    _, _, log = logged(relative, model, sample)
    assert log["noise_to_embed"].item() / log["_diag_sentences"] == pytest.approx(0.3, rel=1e-5)
    assert log["embed_rms"].item() / log["_diag_sentences"] == pytest.approx(rms, rel=1e-5)


@pytest.mark.parametrize(
    "mode",
    [[], ["--r3f-stack-passes"], ["--r3f-same-dropout"], ["--noise-scale", "relative"]],
    ids=lambda m: " ".join(m) or "default",
)
def test_diagnostics_change_neither_loss_nor_gradients_nor_later_draws(mode, synthetic_data):
    task, model, with_diagnostics = diagnosed(synthetic_data, "--eps", "1e-2", *mode)
    *_, without = build_in_process(
        synthetic_data, *TINY_ROBERTA, *R3F, "--eps", "1e-2", *mode, "--r3f-diagnostics-interval", "0"
    )
    twin = copy.deepcopy(model)
    sample = valid_batch(task)

    def two_steps(criterion, net):
        torch.manual_seed(11)
        runs = []
        for _ in range(2):  # the second step starts from the RNG state the first left behind
            loss, _, log = criterion(net, sample)
            loss.backward()
            runs.append(
                (loss.detach(), log, {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None})
            )
        return runs, torch.rand(3)

    (steps_a, draw_a), (steps_b, draw_b) = two_steps(with_diagnostics, model), two_steps(without, twin)
    assert "noise_kl" in steps_a[0][1] and "noise_kl" not in steps_b[0][1] and "noise_carried" not in steps_b[0][1]
    for (loss_a, _, grads_a), (loss_b, _, grads_b) in zip(steps_a, steps_b):
        assert torch.equal(loss_a, loss_b)
        assert grads_a.keys() == grads_b.keys() and all(torch.equal(grads_a[n], grads_b[n]) for n in grads_a)
    assert torch.equal(draw_a, draw_b)


def test_interval_counts_training_steps(synthetic_data):
    task, model, criterion = diagnosed(synthetic_data, "--eps", "1e-2")
    criterion.diagnostics.interval = 3
    sample = valid_batch(task)
    logs = [logged(criterion, model, sample)[2] for _ in range(7)]
    # every training step logs the same keys (fairseq sums by the first output's keys), zero when not diagnosed
    assert all(list(log) == list(logs[0]) for log in logs)
    assert [log["_diag_sentences"] > 0 and log["noise_kl"] > 0 for log in logs] == [
        True,
        False,
        False,
        True,
        False,
        False,
        True,
    ]
    model.eval()  # validation is not a training step and makes no diagnostics
    assert "noise_kl" not in logged(criterion, model, sample)[2] and criterion.diagnostics.steps == 7


def test_a_tiny_noise_kl_is_logged_with_its_significant_digits(synthetic_data):
    """At the paper's sigma the noise's KL is about 1e-12 on a pretrained encoder: the log keeps
    its significant digits (a fixed number of decimals would print 0, "no noise arrives")."""
    from fairseq.logging import metrics
    from fairseq.logging.progress_bar import format_stat

    task, model, criterion = diagnosed(synthetic_data, "--eps", "1e-6")
    _, _, log = logged(criterion, model, valid_batch(task, size=16))
    raw = log["noise_kl"].item() / log["_diag_kl_weight"]
    assert 0 < raw < 1e-8
    with metrics.aggregate() as agg:
        type(criterion).reduce_metrics([log])
        printed = format_stat(agg.get_smoothed_value("noise_kl"))
    assert float(printed) == pytest.approx(raw, rel=1e-5)
