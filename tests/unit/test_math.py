"""The method's math in isolation: symmetric KL (Eq. 3) and the noise sampler."""

import math

import pytest
import torch

from fairseq_r3f.method.divergence import symmetric_kl
from fairseq_r3f.method.noise import add_embedding_noise, sample_embedding_noise

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def test_symmetric_kl_is_zero_for_equal_inputs():
    logits = torch.randn(5, 3)
    assert torch.allclose(symmetric_kl(logits, logits.clone()), torch.zeros(5), atol=1e-7)


def test_symmetric_kl_is_symmetric_and_positive():
    a, b = torch.randn(7, 4), torch.randn(7, 4)
    kl_ab, kl_ba = symmetric_kl(a, b), symmetric_kl(b, a)
    assert torch.equal(kl_ab, kl_ba)
    assert (kl_ab > 0).all()


def test_symmetric_kl_matches_hand_computed_value():
    p, q = torch.tensor([0.7, 0.2, 0.1]), torch.tensor([0.2, 0.5, 0.3])
    expected = sum(pi * math.log(pi / qi) + qi * math.log(qi / pi) for pi, qi in zip(p.tolist(), q.tolist()))
    got = symmetric_kl(p.log().unsqueeze(0), q.log().unsqueeze(0))
    assert got.shape == (1,)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # softmax is shift invariant: logits, not log-probabilities, are the input
    assert symmetric_kl(p.log() + 3.0, q.log() - 1.0).item() == pytest.approx(expected, rel=1e-5)


def test_symmetric_kl_keeps_batch_dims_and_computes_in_fp32():
    a, b = torch.randn(2, 3, 11).half(), torch.randn(2, 3, 11).half()
    kl = symmetric_kl(a, b)
    assert kl.shape == (2, 3) and kl.dtype == torch.float32
    assert torch.allclose(kl, symmetric_kl(a.float(), b.float()), atol=1e-5)


def test_symmetric_kl_gradients_are_finite_even_for_saturated_logits():
    a = torch.tensor([[80.0, -80.0, 0.0]], requires_grad=True)
    b = torch.tensor([[-80.0, 80.0, 0.0]], requires_grad=True)
    kl = symmetric_kl(a, b).sum()
    kl.backward()
    assert torch.isfinite(kl) and kl.item() > 100
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()


def test_symmetric_kl_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="equal shape"):
        symmetric_kl(torch.zeros(2, 3), torch.zeros(2, 4))


@pytest.mark.parametrize("device", DEVICES)
def test_uniform_noise_range_and_moments(device):
    eps = 1e-5
    z = sample_embedding_noise((400, 500), eps, "uniform", torch.device(device))
    assert z.device.type == device and z.dtype == torch.float32
    assert z.abs().max().item() <= eps
    assert z.min().item() < -0.99 * eps and z.max().item() > 0.99 * eps
    assert abs(z.mean().item()) < 0.01 * eps
    assert z.std().item() == pytest.approx(eps / math.sqrt(3), rel=0.01)


@pytest.mark.parametrize("device", DEVICES)
def test_normal_noise_std(device):
    eps = 1e-5
    z = sample_embedding_noise((400, 500), eps, "normal", torch.device(device))
    assert z.device.type == device
    assert z.std().item() == pytest.approx(eps, rel=0.01)
    assert abs(z.mean().item()) < 0.01 * eps
    assert z.abs().max().item() > 3 * eps  # a Gaussian, not a bounded distribution


def test_noise_rejects_bad_arguments():
    with pytest.raises(ValueError, match="eps must be > 0"):
        sample_embedding_noise((2,), 0.0, "uniform", torch.device("cpu"))
    with pytest.raises(ValueError, match="unknown noise type 'gaussian'"):
        sample_embedding_noise((2,), 1e-5, "gaussian", torch.device("cpu"))


def test_add_noise_keeps_dtype_and_moves_values_by_at_most_eps():
    emb = torch.randn(4, 6, 8)
    noised = add_embedding_noise(emb, 1e-3, "uniform")
    assert noised.dtype == emb.dtype and noised.shape == emb.shape
    diff = (noised - emb).abs()
    assert diff.max().item() <= 1e-3 + 1e-7 and diff.mean().item() > 1e-4
    half = add_embedding_noise(emb.half(), 1e-3, "normal")
    assert half.dtype == torch.float16


def test_add_noise_passes_gradients_to_its_input():
    emb = torch.randn(3, 5, requires_grad=True)
    add_embedding_noise(emb, 1e-5, "uniform").sum().backward()
    assert torch.equal(emb.grad, torch.ones(3, 5))
