"""R3F's modes and ablations: gradients equal the reference's formula, the one-sided mode's
noised pass holds no graph, same-dropout isolates the noise, and the realised-noise measure."""

import pytest
import torch
import torch.nn.functional as F

from fairseq_r3f.method.noise import sample_embedding_noise
from tests.helpers import TINY_ROBERTA, build_in_process, valid_batch

HEAD = "sentence_classification_head"
NO_DROPOUT = ["--dropout", "0", "--attention-dropout", "0", "--pooler-dropout", "0"]
LAMBDA = 0.7


def r3f(data, *flags):
    _, task, model, criterion = build_in_process(
        data,
        *TINY_ROBERTA,
        "--criterion",
        "sentence_prediction_r3f",
        "--r3f-lambda",
        str(LAMBDA),
        "--eps",
        "1e-2",
        *flags,
    )
    model.train()
    return task, model, criterion


def reference_formula_loss(model, sample, noise, one_sided=False):
    """The authors' loss written out: CE(clean) + lambda * (KL(p_n||p_c) + KL(p_c||p_n)) * n,
    with the noise given to the encoder directly (x.detach() + z)."""
    net_input = sample["net_input"]
    clean = model(**net_input, classification_head_name=HEAD)[0]
    src = net_input["src_tokens"]
    encoder = model.encoder.sentence_encoder
    with torch.set_grad_enabled(not one_sided):
        out = encoder(src, token_embeddings=encoder.embed_tokens(src).detach() + noise)
        noised = model.classification_heads[HEAD](out["encoder_out"][0].transpose(0, 1))
    n = src.size(0)
    kl = (
        F.kl_div(
            F.log_softmax(noised, -1, dtype=torch.float32), F.softmax(clean, -1, dtype=torch.float32), reduction="sum"
        )
        + F.kl_div(
            F.log_softmax(clean, -1, dtype=torch.float32), F.softmax(noised, -1, dtype=torch.float32), reduction="sum"
        )
    ) / n
    ce = F.nll_loss(F.log_softmax(clean, -1, dtype=torch.float32), sample["target"].view(-1), reduction="sum")
    return ce + LAMBDA * kl * n


def gradients(model, loss):
    model.zero_grad()
    loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize(
    "flags,one_sided",
    [
        ([], False),
        (["--r3f-stack-passes"], False),
        (["--r3f-passes", "stacked"], False),
        (["--r3f-passes", "two"], False),
        (["--r3f-one-sided"], True),
    ],
)
def test_gradients_equal_the_reference_formula(flags, one_sided, synthetic_data):
    task, model, criterion = r3f(synthetic_data, *NO_DROPOUT, *flags)
    sample = valid_batch(task)
    torch.manual_seed(0)
    ours = gradients(model, criterion(model, sample)[0])
    torch.manual_seed(0)  # the criterion's first random draw is the noise
    src = sample["net_input"]["src_tokens"]
    noise = sample_embedding_noise((*src.shape, 64), 1e-2, "uniform", src.device)
    reference = gradients(model, reference_formula_loss(model, sample, noise, one_sided))
    assert set(ours) == set(reference) and len(ours) > 20
    for name in ours:
        assert (ours[name] - reference[name]).abs().max().item() <= 1e-5, name
    # the KL term matters here: without it the gradients would differ
    plain = gradients(
        model,
        F.nll_loss(
            F.log_softmax(model(**sample["net_input"], classification_head_name=HEAD)[0], -1),
            sample["target"].view(-1),
            reduction="sum",
        ),
    )
    assert any(not torch.allclose(ours[k], plain[k], atol=1e-5) for k in plain)


def test_one_sided_noised_pass_holds_no_graph(synthetic_data):
    task, model, criterion = r3f(synthetic_data, "--r3f-one-sided")
    criterion.check_model(model)
    clean, noised, _ = criterion.perturbed_passes(model, valid_batch(task))
    assert clean.grad_fn is not None
    assert noised.grad_fn is None and not noised.requires_grad
    _, model2, both_sided = r3f(synthetic_data)
    both_sided.check_model(model2)
    assert both_sided.perturbed_passes(model2, valid_batch(task))[1].grad_fn is not None


@pytest.mark.parametrize("same_dropout", [True, False])
def test_same_dropout_isolates_the_noise(same_dropout, synthetic_data):
    """Dropout on; as eps -> 0 the KL vanishes only when both passes share their masks."""
    flags = ["--dropout", "0.3", "--attention-dropout", "0.3"] + (["--r3f-same-dropout"] if same_dropout else [])
    kls = {}
    for eps in ("1e-1", "1e-12"):
        task, model, criterion = r3f(synthetic_data, *flags, "--eps", eps)
        kls[eps] = criterion(model, valid_batch(task))[2]["symm_kl"].item()
    assert kls["1e-1"] > 1e-4
    if same_dropout:
        assert kls["1e-12"] < 1e-9
    else:
        assert kls["1e-12"] > 1e-4  # dropout disagreement alone


def test_noise_none_is_dropout_consistency(synthetic_data):
    task, model, criterion = r3f(synthetic_data, "--noise-type", "none")
    log = criterion(model, valid_batch(task))[2]
    assert log["symm_kl"].item() > 1e-4
    assert log["_diag_carried_sentences"] == log["noise_kl"] == log["_diag_kl_weight"] == 0  # no noise to measure
    assert log["_diag_sentences"] > 0  # the first step is diagnosed: embed_rms is measured
    task, model, criterion = r3f(synthetic_data, "--noise-type", "none", *NO_DROPOUT)
    assert criterion(model, valid_batch(task))[2]["symm_kl"].item() < 1e-10


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--r3f-stack-passes", "--r3f-one-sided"], "cannot be combined"),
        (["--r3f-stack-passes", "--r3f-same-dropout"], "cannot be combined"),
        (["--r3f-same-dropout", "--noise-type", "none"], "KL is 0 by construction"),
    ],
)
def test_incompatible_mode_flags(flags, message, synthetic_data):
    with pytest.raises(ValueError, match=message):
        r3f(synthetic_data, *flags)


@pytest.mark.parametrize("dtype,low,high", [(torch.float32, 0.95, 1.05), (torch.float16, -0.1, 0.5)])
def test_logged_noise_carried_by_precision(dtype, low, high, synthetic_data, caplog):
    """The training metric on the real criterion: fp32 carries sigma = 1e-5, a half model not
    (and the criterion warns about it). Token embeddings at a pre-trained model's scale (std
    0.1; a random init's 0.02 has more tiny entries, which fp16 resolves more finely)."""
    _, task, model, criterion = build_in_process(
        synthetic_data, *TINY_ROBERTA, "--criterion", "sentence_prediction_r3f"
    )
    with torch.no_grad():
        table = model.encoder.sentence_encoder.embed_tokens.weight
        table.mul_(0.1 / table.std())
    model.to(dtype).train()
    torch.manual_seed(0)
    with caplog.at_level("WARNING"):
        _, size, log = criterion(model, valid_batch(task))
    carried = log["noise_carried"].item() / size
    assert low < carried < high
    assert ("reaches the encoder's first layer" in caplog.text) == (dtype == torch.float16)


def test_precision_warning_when_the_noise_stops_arriving_later(synthetic_data, caplog):
    """noise_carried is checked at every diagnosed step: a drop later in training is reported
    (once, until it recovers, which is reported too), not only a loss at step 1."""
    _, model, criterion = r3f(synthetic_data)
    criterion.check_model(model)
    with caplog.at_level("INFO", logger="fairseq_r3f.noise_diagnostics"):
        for step, fraction in zip((1, 101, 201, 301, 401), (1.0, 0.4, 0.4, 0.95, 0.3)):
            criterion.diagnostics.steps = step
            criterion.diagnostics.warn_if_lost(fraction, torch.float16)
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    warnings = [m for level, m in messages if level == "WARNING"]
    assert len(warnings) == 2
    assert "only 40% of the --eps 0.01 noise" in warnings[0] and "training step 101" in warnings[0]
    assert "only 30%" in warnings[1] and "training step 401" in warnings[1]
    assert ("INFO", "R3F: the noise reaches the encoder again (95% at training step 301)") in messages


def test_auto_passes_are_chosen_by_device_and_logged_once(synthetic_data, monkeypatch, caplog):
    """--r3f-passes auto (the default): stacked on a CUDA device, two passes elsewhere; either way
    the loss and gradients equal the two-pass run's (dropout off, same noise), and the choice is
    logged once, at the first step."""
    from fairseq_r3f.criterions import sentence_prediction_r3f as module

    assert module.stack_by_default(torch.device("cuda", 0)) and not module.stack_by_default(torch.device("cpu"))

    def loss_and_gradients(criterion, model, sample):
        torch.manual_seed(0)  # the same noise
        loss = criterion(model, sample)[0]
        return loss.item(), gradients(model, loss)

    for device_says_stack in (False, True):  # what a CPU and a CUDA device choose
        monkeypatch.setattr(module, "stack_by_default", lambda device, stack=device_says_stack: stack)
        caplog.clear()
        task, model, criterion = r3f(synthetic_data, *NO_DROPOUT)
        sample = valid_batch(task)
        with caplog.at_level("INFO", logger=module.__name__):
            loss, grads = loss_and_gradients(criterion, model, sample)
            for _ in range(2):
                criterion(model, sample)
        assert criterion.stack_passes is device_says_stack
        chosen = [r.getMessage() for r in caplog.records if r.getMessage().startswith("R3F passes:")]
        assert len(chosen) == 1 and chosen[0].startswith("R3F passes: stacked") is device_says_stack
        assert "--r3f-passes auto" in chosen[0]
        criterion.stack_passes = False  # the two-pass run on the same model
        two_loss, two_grads = loss_and_gradients(criterion, model, sample)
        assert loss == pytest.approx(two_loss, abs=1e-5)
        assert all((grads[k] - two_grads[k]).abs().max().item() <= 1e-5 for k in two_grads)
    # modes that cannot stack run two passes under auto, and an explicit stack with them is refused
    monkeypatch.setattr(module, "stack_by_default", lambda device: True)
    assert r3f(synthetic_data, "--r3f-one-sided")[2].stack_passes is False
    with pytest.raises(ValueError, match="contradicts"):
        r3f(synthetic_data, "--r3f-stack-passes", "--r3f-passes", "two")
