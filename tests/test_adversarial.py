"""SMART (criterion sentence_prediction_smart) and FreeLB (task sentence_prediction_adv):
the ascent math, passes counted by hooks, FreeLB's gradient against a hand-written loop and
its single optimizer step, and fairseq-train end to end with a resume."""

import copy
import os

import pytest
import torch
import torch.nn.functional as F
from fairseq.trainer import Trainer

from fairseq_r3f.adversarial import (freelb_ascent_step, freelb_init, normalize_per_token,
                                     smart_ascent_step)
from fairseq_r3f.pass_counter import PassCounter
from fairseq_r3f.perturb import EmbeddingBlockProbe, find_token_encoder

from conftest import TINY_ROBERTA, USER_DIR, CLASSIFICATION, build_in_process, fairseq_logs, run_fairseq, valid_batch

HEAD = "sentence_classification_head"
NO_DROPOUT = ["--dropout", "0", "--attention-dropout", "0", "--pooler-dropout", "0"]


# ------------------------------------------------------------------------------ the math --

def test_normalize_per_token():
    g = torch.Generator().manual_seed(0)
    v = torch.randn(2, 3, 5, generator=g)
    v[1, 2] = 0  # a pad row stays zero
    linf = normalize_per_token(v, "linf")
    assert torch.allclose(linf, v / (v.abs().amax(-1, keepdim=True) + 1e-6))
    assert torch.allclose(linf.abs().amax(-1)[v.abs().amax(-1) > 0], torch.ones(5), atol=1e-5)
    l2 = normalize_per_token(v, "l2")
    assert torch.allclose(l2.norm(dim=-1)[v.norm(dim=-1) > 0], torch.ones(5), atol=1e-5)
    assert linf[1, 2].abs().sum() == 0 and l2[1, 2].abs().sum() == 0
    with pytest.raises(ValueError, match="l2, linf"):
        normalize_per_token(v, "l1")


def test_smart_ascent_step():
    g = torch.Generator().manual_seed(1)
    noise, grad = 1e-5 * torch.randn(2, 4, 8, generator=g), torch.randn(2, 4, 8, generator=g)
    mask = torch.ones(2, 4, 1)
    mask[0, 3] = 0
    stepped = smart_ascent_step(noise, grad, 1e-3, "linf", mask)
    expected = (noise + 1e-3 * grad) * mask
    assert torch.allclose(stepped, expected / (expected.abs().amax(-1, keepdim=True) + 1e-6))
    assert stepped[0, 3].abs().sum() == 0
    overflow = grad.clone()
    overflow[0, 0, 0] = float("inf")  # a fp16 overflow: the noise stays finite
    assert torch.isfinite(smart_ascent_step(noise, overflow, 1e-3, "linf", mask)).all()


def test_freelb_ascent_step_and_projection():
    g = torch.Generator().manual_seed(2)
    grad = torch.randn(3, 4, 8, generator=g)
    zero = torch.zeros_like(grad)
    per_example = lambda x, p: torch.linalg.vector_norm(x.flatten(1), ord=p, dim=1)  # noqa: E731
    step = freelb_ascent_step(zero, grad, 0.1, "l2", 0)
    assert torch.allclose(per_example(step, 2), torch.full((3,), 0.1))
    # the gradient's scale (a fp16 loss scale) cancels
    assert torch.allclose(freelb_ascent_step(zero, 1024 * grad, 0.1, "l2", 0), step)
    assert torch.allclose(per_example(freelb_ascent_step(zero, grad, 1.0, "l2", 0.3), 2), torch.full((3,), 0.3))
    assert torch.allclose(per_example(freelb_ascent_step(zero, grad, 0.1, "linf", 0), float("inf")),
                          torch.full((3,), 0.1))
    assert freelb_ascent_step(zero, grad, 1.0, "linf", 0.05).abs().max() <= 0.05
    small = freelb_ascent_step(zero, grad, 0.1, "l2", 0.3)  # inside the ball: not projected
    assert torch.allclose(small, step)


def test_freelb_init():
    mask = torch.ones(4, 50, 1)
    mask[0, 30:] = 0
    g = torch.Generator().manual_seed(3)
    linf = freelb_init((4, 50, 64), mask, 0.2, "linf", generator=g)
    assert linf.abs().max() <= 0.2 and linf[0, 30:].abs().sum() == 0
    l2 = freelb_init((4, 50, 64), mask, 0.2, "l2", generator=g)
    assert l2[0, 30:].abs().sum() == 0
    # U(-1, 1) scaled by mag / sqrt(tokens x dim): per-example norm ~ mag / sqrt(3)
    assert torch.allclose(l2.flatten(1).norm(dim=1), torch.full((4,), 0.2 / 3 ** 0.5), rtol=0.05)
    assert freelb_init((4, 50, 64), mask, 0.0, "l2").abs().sum() == 0


# ------------------------------------------------------------------------------- SMART --

def smart(data, *flags):
    _, task, model, criterion = build_in_process(data, *TINY_ROBERTA, "--criterion", "sentence_prediction_smart",
                                                 *flags)
    model.train()
    return task, model, criterion


@pytest.mark.parametrize("steps,norm,place", [(1, "linf", "embedding-output"), (2, "linf", "embedding-output"),
                                              (2, "l2", "token-embeddings")])
def test_smart_passes_and_noise(steps, norm, place, synthetic_data):
    """1 + K + 1 forward passes (K + 2 reach a backward); the noise starts at sigma = 1e-5 and
    ends normalised per token, zero at pads, where --smart-noise-at puts it."""
    task, model, criterion = smart(synthetic_data, *NO_DROPOUT, "--smart-steps", str(steps),
                                   "--smart-norm-type", norm, "--smart-noise-at", place)
    sample = valid_batch(task)
    encoder = find_token_encoder(model)
    first_layer_inputs = []
    handle = encoder.layers[0].register_forward_pre_hook(
        lambda module, args: first_layer_inputs.append(args[0].detach().transpose(0, 1)))
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
    if steps > 1:  # from the second step on, norm(v) ~ 1 >> eps = 1e-6: the norm is 1
        assert torch.allclose(norms[real], torch.ones_like(norms[real]), atol=1e-4)
    else:  # the first step divides norm(v) ~ 3e-5 by (norm(v) + 1e-6), as MT-DNN does
        assert (norms[real] <= 1 + 1e-6).all() and (norms[real] > 0.9).all()
    assert final[~real].abs().max().item() == 0

    model.eval()
    with PassCounter(model) as passes, torch.no_grad():
        criterion(model, sample)
    assert passes.forward == 1  # validation: the clean pass only


def test_smart_bad_flags(synthetic_data):
    for flags, message in ((["--smart-step-size", "0"], "--smart-step-size must be > 0"),
                           (["--smart-steps", "-1"], "--smart-steps must be >= 0"),
                           (["--smart-lambda", "-1"], "--smart-lambda must be >= 0")):
        with pytest.raises(ValueError, match=message):
            smart(synthetic_data, *flags)


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


def test_freelb_gradient_is_the_mean_over_passes_and_one_optimizer_step(synthetic_data):
    steps, adv_lr, max_norm = 2, 0.1, 0.05
    cfg, task, model, criterion = build_in_process(
        synthetic_data, *TINY_ROBERTA, *NO_DROPOUT, "--task", "sentence_prediction_adv", "--criterion",
        "sentence_prediction", "--adv-steps", str(steps), "--adv-lr", str(adv_lr), "--adv-init-mag", "0",
        "--adv-max-norm", str(max_norm), "--clip-norm", "0")
    sample = valid_batch(task)
    reference = copy.deepcopy(model).train()
    expected = hand_written_freelb(reference, sample, steps, adv_lr, max_norm)
    clean_only = hand_written_freelb(copy.deepcopy(model).train(), sample, 0, adv_lr, max_norm)

    trainer = Trainer(cfg, task, model, criterion)
    with PassCounter(model) as passes:
        log = trainer.train_step([sample])
    assert (passes.forward, passes.backward) == (steps + 1, steps + 1)
    assert trainer.get_num_updates() == 1
    states = trainer.optimizer.optimizer.state
    assert states and all(int(state["step"]) == 1 for state in states.values())  # one Adam step
    assert log["adv_loss"] > log["loss"]  # the ascent raised the loss

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
        build_in_process(synthetic_data, *TINY_ROBERTA, "--task", "sentence_prediction_adv", "--adv-lr", "0",
                         "--criterion", "sentence_prediction")


# ------------------------------------------------------------------ fairseq-train e2e --

# FreeLB's runs use SMART's criterion with lambda_s = 0 (the plain cross-entropy loss) so that
# SMART can resume their checkpoint: fairseq refuses to resume an optimizer saved under another
# criterion class. Three fairseq-train runs in one save dir: FreeLB 0 -> 6 updates, FreeLB
# resumed 6 -> 10, SMART resumed 10 -> 14.
RUNS = (
    ("freelb", "6", ["--task", "sentence_prediction_adv", "--adv-steps", "2", "--criterion",
                     "sentence_prediction_smart", "--smart-lambda", "0"]),
    ("freelb", "10", ["--task", "sentence_prediction_adv", "--adv-steps", "2", "--criterion",
                      "sentence_prediction_smart", "--smart-lambda", "0"]),
    ("smart", "14", ["--criterion", "sentence_prediction_smart"]),
)


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory, synthetic_data):
    """(save dir, [output of each run in RUNS])."""
    save_dir = tmp_path_factory.mktemp("adversarial")
    outputs = []
    for _, updates, flags in RUNS:
        proc = run_fairseq("fairseq-train", synthetic_data, "--user-dir", USER_DIR, *CLASSIFICATION, *TINY_ROBERTA,
                           *flags, "--max-update", updates, "--save-dir", str(save_dir), "--log-interval", "2",
                           "--best-checkpoint-metric", "accuracy", "--maximize-best-checkpoint-metric")
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
        else:  # the adversarial passes' mean loss is above the (near-clean) first pass's
            assert float(final["train_adv_loss"]) > float(final["train_loss"])
            assert "train_symm_kl" not in final  # lambda_s = 0: no SMART passes
        previous = updates
    assert os.path.exists(save_dir / "checkpoint_best.pt")


@pytest.mark.slow
def test_wall_time_to_best_from_these_runs(trained_runs, tmp_path):
    """scripts/bench/wall_time.py on the runs above, laid out as a sweep: table and violin PNG."""
    import importlib.util

    from conftest import REPO

    _, outputs = trained_runs
    layout = {("freelb", 1): outputs[1], ("smart", 1): outputs[2], ("smart", 2): outputs[2]}
    for (method, seed), output in layout.items():
        (tmp_path / "RTE" / method / f"seed{seed}").mkdir(parents=True)
        (tmp_path / "RTE" / method / f"seed{seed}" / "train.log").write_text(output)
    spec = importlib.util.spec_from_file_location("wall_time", os.path.join(REPO, "scripts", "bench", "wall_time.py"))
    wall_time = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(wall_time)
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
