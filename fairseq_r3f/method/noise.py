"""Parametric embedding noise z ~ N(0, sigma^2 I) or U(-sigma, sigma) (paper, Sec. 3.1, Eq. 3)."""

from typing import Optional, Sequence

import torch

NOISE_TYPES = ("uniform", "normal")


def sample_embedding_noise(
    shape: Sequence[int],
    eps: float,
    noise_type: str,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Draw the perturbation ``z`` of R3F's Eq. 3 directly on ``device``.

    ``uniform`` draws from U(-eps, eps); ``normal`` from N(0, eps^2). Sampling on the
    device avoids a host-to-device copy per step. The caller chooses ``dtype``: at
    sigma = 1e-5 fp16 can only hold the noise as sub-normals, so callers with half
    precision embeddings sample (and add) in fp32 and round once afterwards.
    """
    if eps <= 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    noise = torch.empty(tuple(shape), device=device, dtype=dtype)
    if noise_type == "uniform":
        return noise.uniform_(-eps, eps, generator=generator)
    if noise_type == "normal":
        return noise.normal_(0.0, eps, generator=generator)
    raise ValueError(f"unknown noise type {noise_type!r}; expected one of {NOISE_TYPES}")


def add_noise(embeddings: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``embeddings + noise`` (x + z in Eq. 3) summed in at least fp32, rounded once to the
    embeddings' dtype: adding sigma = 1e-5 in half precision would lose it before the sum."""
    compute_dtype = torch.promote_types(embeddings.dtype, torch.float32)
    return (embeddings.to(compute_dtype) + noise).to(embeddings.dtype)


def add_embedding_noise(
    embeddings: torch.Tensor,
    eps: float,
    noise_type: str,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Draw z for ``embeddings`` and return ``add_noise(embeddings, z)``.

    Differentiable in ``embeddings``; ``sentence_prediction_r3f`` passes detached
    embeddings, so its noised pass does not train the embedding table.
    """
    compute_dtype = torch.promote_types(embeddings.dtype, torch.float32)
    noise = sample_embedding_noise(embeddings.shape, eps, noise_type, embeddings.device, compute_dtype, generator)
    return add_noise(embeddings, noise)


def token_rms(embeddings: torch.Tensor, keep: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Root mean square of the entries of ``embeddings`` (batch, length, dim), in fp32, over the
    positions where ``keep`` (batch, length) is true (all when None): the scale that
    ``--noise-scale relative`` measures sigma in. A 0-dim tensor, so no device sync."""
    squares = embeddings.detach().float().pow(2)
    if keep is None:
        return squares.mean().sqrt()
    weights = keep.unsqueeze(-1).to(squares.dtype)
    count = weights.sum() * squares.size(-1)
    return ((squares * weights).sum() / count.clamp_min(1)).sqrt()
