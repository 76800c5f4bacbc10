"""SMART (criterion sentence_prediction_smart) and FreeLB (task sentence_prediction_adv) inside
fairseq, in-process: passes counted by hooks, FreeLB's gradient against a hand-written loop and
its single optimizer step, and refused flags."""

import copy

import pytest
import torch
import torch.nn.functional as F
from fairseq.trainer import Trainer

from fairseq_r3f.perturb import EmbeddingBlockProbe, find_token_encoder
from r3f_experiments.bench.pass_counter import PassCounter
from tests.helpers import TINY_ROBERTA, build_in_process, valid_batch

HEAD = "sentence_classification_head"
NO_DROPOUT = ["--dropout", "0", "--attention-dropout", "0", "--pooler-dropout", "0"]


# ------------------------------------------------------------------------------- SMART --


def smart(data, *flags):
    _, task, model, criterion = build_in_process(
        data, *TINY_ROBERTA, "--criterion", "sentence_prediction_smart", *flags
    )
    model.train()
    return task, model, criterion


# ------------------------------------------------------------------------------ FreeLB --


def hand_written_freelb(model, sample, steps, adv_lr, max_norm):
    """FreeLB's Alg. 1 written out (zero start, l2): the parameters' gradient averaged over the
    K + 1 passes, delta stepped along its normalised gradient and projected on the max-norm ball."""
    encoder = model.encoder.sentence_encoder
    src = sample["net_input"]["src_tokens"]
    params = list(model.parameters())
    total = [torch.zeros_like(p) for p in params]
    delta = torch.zeros(*src.shape, encoder.embed_tokens.embedding_dim)
    for _ in range(steps + 1):
        d = delta.clone().requires_grad_()
        features = encoder(src, token_embeddings=encoder.embed_tokens(src) + d)["encoder_out"][0].transpose(0, 1)
        logits = model.classification_heads[HEAD](features)
        loss = F.nll_loss(F.log_softmax(logits, -1), sample["target"].view(-1), reduction="sum")
        *grads, d_grad = torch.autograd.grad(loss, params + [d], allow_unused=True)
        for acc, grad in zip(total, grads):
            if grad is not None:
                acc += grad / (steps + 1)
        delta = delta + adv_lr * d_grad / d_grad.flatten(1).norm(dim=1).view(-1, 1, 1)
        norm = delta.flatten(1).norm(dim=1).view(-1, 1, 1)
        delta = torch.where(norm > max_norm, delta * max_norm / norm, delta)
    return total


# ------------------------------------------------------------------ fairseq-train e2e --


@pytest.mark.parametrize(
    "steps,norm,place,rule",
    [
        (1, "linf", "embedding-output", "normalize-sum"),
        (2, "linf", "embedding-output", "normalize-sum"),
        (2, "l2", "token-embeddings", "normalize-sum"),
        (2, "linf", "embedding-output", "normalized-gradient"),
    ],
)
def test_smart_passes_and_noise(steps, norm, place, rule, synthetic_data):
    """1 + K + 1 forward passes (K + 2 reach a backward); the noise starts at sigma = 1e-5 and
    ends normalised per token (or K steps of norm eta from its start, with the earlier step
    rule), zero at pads, where --smart-noise-at puts it."""
    task, model, criterion = smart(
        synthetic_data,
        *NO_DROPOUT,
        "--smart-steps",
        str(steps),
        "--smart-norm-type",
        norm,
        "--smart-noise-at",
        place,
        "--smart-step-rule",
        rule,
    )
    sample = valid_batch(task)
    encoder = find_token_encoder(model)
    first_layer_inputs = []
    handle = encoder.layers[0].register_forward_pre_hook(
        lambda module, args: first_layer_inputs.append(args[0].detach().transpose(0, 1))
    )
    with PassCounter(model) as passes, EmbeddingBlockProbe(encoder) as probe:
        loss, _, log = criterion(model, sample)
        loss.backward()
    handle.remove()
    assert (passes.forward, passes.backward) == (steps + 2, steps + 2)
    assert log["symm_kl"].item() > 0

    if place == "token-embeddings":
        # the embedding LayerNorm's input is embed_scale * (tokens + noise) + positions, and
        # RoBERTa's embed_scale is 1: its change from the clean pass is the noise
        inputs = [record[0] for record in probe.records]
    else:  # the first layer's input (dropout off) is the embedding block's output + noise
        inputs = first_layer_inputs
    noises = [x - inputs[0] for x in inputs[1:]]
    real = sample["net_input"]["src_tokens"].ne(encoder.padding_idx)
    assert 0.5e-5 < noises[0][real].std().item() < 2e-5
    final = noises[-1]
    norms = final.abs().amax(-1) if norm == "linf" else final.norm(dim=-1)
    if rule == "normalized-gradient":
        # each step is eta = 1e-3 times g / (max |g| + 1e-6): at most eta, near it where the
        # gradient is well above 1e-6 (the [CLS] rows by the last step)
        steps_taken = [(after - before).abs().amax(-1)[real] for before, after in zip(noises, noises[1:])]
        assert all((step <= 1e-3 * (1 + 1e-4)).all() for step in steps_taken)
        assert steps_taken[-1].max().item() > 0.5e-3
    elif steps > 1:  # from the second step on, norm(v) ~ 1 >> eps = 1e-6: the norm is 1
        assert torch.allclose(norms[real], torch.ones_like(norms[real]), atol=1e-4)
    else:  # the first step divides norm(v) ~ 3e-5 by (norm(v) + 1e-6), as MT-DNN does
        assert (norms[real] <= 1 + 1e-6).all() and (norms[real] > 0.9).all()
    assert final[~real].abs().max().item() == 0
    # smart_to_embed: the final noise's l2 norm against the clean tensor it is added to, per sentence
    clean = inputs[0] if place == "embedding-output" else encoder.embed_tokens(sample["net_input"]["src_tokens"])
    mask = real.unsqueeze(-1).float()
    sizes = (final * mask).flatten(1).norm(dim=1) / (clean.detach() * mask).flatten(1).norm(dim=1)
    assert log["smart_to_embed"].item() == pytest.approx(sizes.sum().item(), rel=1e-4)
    if rule == "normalize-sum":  # normalised per token: far above the starting sigma's size
        assert 0.05 < sizes.mean().item()

    model.eval()
    with PassCounter(model) as passes, torch.no_grad():
        criterion(model, sample)
    assert passes.forward == 1  # validation: the clean pass only


def test_smart_bad_flags(synthetic_data):
    for flags, message in (
        (["--smart-step-size", "0"], "--smart-step-size must be > 0"),
        (["--smart-steps", "-1"], "--smart-steps must be >= 0"),
        (["--smart-lambda", "-1"], "--smart-lambda must be >= 0"),
    ):
        with pytest.raises(ValueError, match=message):
            smart(synthetic_data, *flags)


@pytest.mark.parametrize("scale", ["absolute", "relative"])
def test_freelb_gradient_is_the_mean_over_passes_and_one_optimizer_step(scale, synthetic_data):
    steps, adv_lr, max_norm = 2, 0.1, 0.05
    if scale == "relative":  # counted in the token-embedding RMS, about 0.02 in this model (its init)
        adv_lr, max_norm = 4.0, 2.0
    cfg, task, model, criterion = build_in_process(
        synthetic_data,
        *TINY_ROBERTA,
        *NO_DROPOUT,
        "--task",
        "sentence_prediction_adv",
        "--criterion",
        "sentence_prediction",
        "--adv-steps",
        str(steps),
        "--adv-lr",
        str(adv_lr),
        "--adv-init-mag",
        "0",
        "--adv-max-norm",
        str(max_norm),
        "--clip-norm",
        "0",
        "--adv-scale",
        scale,
    )
    sample = valid_batch(task)
    unit = 1.0
    if scale == "relative":
        src = sample["net_input"]["src_tokens"]
        embeddings = find_token_encoder(model).embed_tokens(src).detach()
        unit = embeddings[src.ne(task.source_dictionary.pad())].pow(2).mean().sqrt().item()
        assert not 0.3 < unit < 3  # far from 1, so a missing scale would change the gradient
    reference = copy.deepcopy(model).train()
    expected = hand_written_freelb(reference, sample, steps, adv_lr * unit, max_norm * unit)
    clean_only = hand_written_freelb(copy.deepcopy(model).train(), sample, 0, adv_lr, max_norm)

    src = sample["net_input"]["src_tokens"]  # each sentence's clean embedding norm, before the step
    real = src.ne(task.source_dictionary.pad()).unsqueeze(-1).float()
    clean = (find_token_encoder(model).embed_tokens(src).detach() * real).flatten(1).norm(dim=1)

    trainer = Trainer(cfg, task, model, criterion)
    with PassCounter(model) as passes:
        log = trainer.train_step([sample])
    assert (passes.forward, passes.backward) == (steps + 1, steps + 1)
    assert trainer.get_num_updates() == 1
    states = trainer.optimizer.optimizer.state
    assert states and all(int(state["step"]) == 1 for state in states.values())  # one Adam step
    assert log["adv_loss"] > log["loss"]  # the ascent raised the loss
    # adv_lr > max_norm: every ascent step ends on the ball, so ||delta_K|| = max_norm (x unit)
    assert log["adv_to_embed"] == pytest.approx((max_norm * unit / clean).mean().item(), abs=1e-4)

    n = sample["target"].numel()  # fairseq divides the summed gradient by the sample size
    compared = differs = 0
    for p, want, clean in zip(model.parameters(), expected, clean_only):
        if p.grad is None:
            continue
        assert torch.allclose(p.grad * n, want, atol=1e-5, rtol=1e-4)
        differs += not torch.allclose(want, clean, atol=1e-4)
        compared += 1
    assert compared > 20 and differs > 10  # and the perturbations changed the gradient


def test_freelb_bad_flags(synthetic_data):
    with pytest.raises(ValueError, match="--adv-lr must be > 0"):
        build_in_process(
            synthetic_data,
            *TINY_ROBERTA,
            "--task",
            "sentence_prediction_adv",
            "--adv-lr",
            "0",
            "--criterion",
            "sentence_prediction",
        )
