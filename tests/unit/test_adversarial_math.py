"""The ascent-step math of SMART and FreeLB (``fairseq_r3f.method.adversarial``) on tensors:
per-token normalisation, SMART's step, FreeLB's random start, step and projection."""

import pytest
import torch

from fairseq_r3f.method.adversarial import (
    freelb_ascent_step,
    freelb_init,
    normalize_per_token,
    size_against_embeddings,
    smart_ascent_step,
)

# ------------------------------------------------------------------ fairseq-train e2e --


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


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_smart_ascent_step_along_the_normalized_gradient(norm):
    g = torch.Generator().manual_seed(3)
    noise, grad = 1e-5 * torch.randn(2, 4, 8, generator=g), torch.randn(2, 4, 8, generator=g)
    mask = torch.ones(2, 4, 1)
    mask[1, 0] = 0
    stepped = smart_ascent_step(noise, grad, 1e-3, norm, mask, "normalized-gradient")
    step = stepped - noise
    size = step.abs().amax(-1) if norm == "linf" else step.norm(dim=-1)
    real = mask[..., 0].bool()
    assert torch.allclose(size[real], torch.full_like(size[real], 1e-3), rtol=1e-4)  # a step of norm eta
    assert torch.allclose(step[real] / 1e-3, normalize_per_token(grad, norm)[real], atol=1e-4)
    assert stepped[1, 0].abs().sum() == 0
    with pytest.raises(ValueError, match="normalize-sum, normalized-gradient"):
        smart_ascent_step(noise, grad, 1e-3, norm, mask, "projected")


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
    assert torch.allclose(
        per_example(freelb_ascent_step(zero, grad, 0.1, "linf", 0), float("inf")), torch.full((3,), 0.1)
    )
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
    assert torch.allclose(l2.flatten(1).norm(dim=1), torch.full((4,), 0.2 / 3**0.5), rtol=0.05)
    assert freelb_init((4, 50, 64), mask, 0.0, "l2").abs().sum() == 0


@pytest.mark.parametrize("norm_type", ["l2", "linf"])
def test_freelb_magnitudes_in_a_tensor_unit(norm_type):
    """``unit`` (--adv-scale relative: the embeddings' RMS as a 0-dim tensor) scales the start, the
    step and the radius alike: the same as the magnitudes multiplied by it."""
    unit = torch.tensor(0.05)
    mask = torch.ones(3, 6, 1)
    mask[1, 4:] = 0
    start = freelb_init((3, 6, 8), mask, 2.0, norm_type, generator=torch.Generator().manual_seed(4), unit=unit)
    scaled = freelb_init((3, 6, 8), mask, 2.0 * 0.05, norm_type, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(start, scaled)
    grad = torch.randn(3, 6, 8, generator=torch.Generator().manual_seed(5))
    for adv_lr, max_norm in ((4.0, 0), (20.0, 1.0), (0.5, 30.0)):  # no projection, projected, inside
        got = freelb_ascent_step(start, grad, adv_lr, norm_type, max_norm, unit)
        want = freelb_ascent_step(start, grad, adv_lr * 0.05, norm_type, max_norm * 0.05)
        assert torch.allclose(got, want)
        assert not torch.allclose(got, freelb_ascent_step(start, grad, adv_lr, norm_type, max_norm))


def test_size_against_embeddings_counts_real_tokens_only():
    embeddings = torch.full((2, 4, 3), 2.0)  # norm over 2 tokens x 3 dims: 2 * sqrt(6)
    mask = torch.ones(2, 4, 1)
    mask[0, 2:] = 0
    delta = 0.1 * embeddings
    delta[0, 2:] = 50.0  # at pads: must not count, nor the embeddings there
    embeddings[0, 2:] = 1e3
    got = size_against_embeddings(delta, embeddings, mask)
    assert torch.allclose(got, torch.tensor([0.1, 0.1]))
    # an all-pad row gives 0, not nan
    assert size_against_embeddings(delta, embeddings, torch.zeros(2, 4, 1)).eq(0).all()
