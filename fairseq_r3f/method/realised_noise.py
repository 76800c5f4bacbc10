"""How much of the intended perturbation z the encoder really receives.

At sigma = 1e-5, half precision rounds most of z away: an fp16 embedding entry of size
0.05 has a spacing of 3e-5 between representable values, so adding |z| < 1.5e-5 gives
back the same number. The measure here compares the change of the first encoder
layer's input (after token embeddings x scale, positions and the embedding LayerNorm),
as the layer sees it, with the change that z would make in exact (fp32) arithmetic.
"""

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


def carried_fraction(actual_change: torch.Tensor, intended_change: torch.Tensor) -> torch.Tensor:
    """<actual, intended> / <intended, intended>, in fp32: 1 when the perturbation arrives
    intact, 0 when it is rounded away.

    A projection rather than a ratio of norms: rounding also adds changes of one unit in
    the last place in random directions, which would inflate a norm ratio but average out
    of the projection.
    """
    actual, intended = actual_change.float(), intended_change.float()
    return (actual * intended).sum() / (intended * intended).sum().clamp_min(1e-30)


def intended_layer_input_change(
    pre_norm_clean: torch.Tensor,
    scaled_noise: torch.Tensor,
    layer_norm: Optional[nn.LayerNorm],
) -> torch.Tensor:
    """The change of the embedding block's output that ``scaled_noise`` would cause in fp32.

    ``pre_norm_clean`` is the clean pass's input to the embedding LayerNorm (scaled token
    embeddings + positions); ``scaled_noise`` is embed_scale * z; ``layer_norm`` is the
    encoder's ``layernorm_embedding`` (None when the encoder has none).
    """
    if layer_norm is None:
        return scaled_noise.float()
    x = pre_norm_clean.float()

    def norm(t):
        weight = None if layer_norm.weight is None else layer_norm.weight.float()
        bias = None if layer_norm.bias is None else layer_norm.bias.float()
        return F.layer_norm(t, layer_norm.normalized_shape, weight, bias, layer_norm.eps)

    return norm(x + scaled_noise.float()) - norm(x)
