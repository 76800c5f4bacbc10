"""The realised-noise measure (``carried_fraction``): 1 when the noise arrives intact, 0 when
half precision rounds it away."""

import pytest
import torch

from fairseq_r3f.method.realised_noise import carried_fraction


def test_carried_fraction_of_half_precision_addition():
    """At realistic scale (std 0.05), adding sigma = 1e-5 noise in fp16, as the reference does
    under --fp16, carries less than half of it; adding in fp32 carries all of it."""
    g = torch.Generator().manual_seed(0)
    embeddings = 0.05 * torch.randn(32, 64, 256, generator=g)
    noise = torch.empty_like(embeddings).uniform_(-1e-5, 1e-5, generator=g)
    half = embeddings.half()
    in_half = (half + noise.half()).float() - half.float()
    in_fp32 = (embeddings + noise) - embeddings
    assert carried_fraction(in_half, noise).item() < 0.5
    assert carried_fraction(in_fp32, noise).item() == pytest.approx(1.0, abs=0.02)
    assert carried_fraction(torch.zeros_like(noise), noise).item() == 0.0
