"""Adversarial perturbations of token embeddings: the ascent-step math of SMART and FreeLB.

Pure tensor functions (no model, no fairseq), shared by ``sentence_prediction_smart``
(SMART: Jiang et al., ACL 2020, Alg. 1, as its authors' MT-DNN code runs it) and the task
``sentence_prediction_adv`` (FreeLB: Zhu et al., ICLR 2020, Alg. 1, as its authors'
fairseq fork runs it). Every perturbation has the embeddings' shape (batch, length, dim).
"""

import contextlib
from typing import Optional, Union

import torch

NORM_TYPES = ("l2", "linf")
SMART_STEP_RULES = ("normalize-sum", "normalized-gradient")

# MT-DNN's default adv_epsilon: keeps the per-token normalisation finite for a zero vector.
SMART_NORM_EPS = 1e-6
# FreeLB's fairseq code clamps the per-example l2 gradient norm at 1e-10, the linf one at 1e-8.
FREELB_MIN_GRAD_NORM = {"l2": 1e-10, "linf": 1e-8}


def check_choice(value: str, choices, flag: str) -> str:
    if value not in choices:
        raise ValueError(f"{flag} must be one of {', '.join(choices)}; got {value!r}")
    return value


def check_norm_type(norm_type: str, flag: str) -> str:
    return check_choice(norm_type, NORM_TYPES, flag)


def token_mask(tokens: torch.Tensor, padding_idx: int) -> torch.Tensor:
    """(batch, length, 1), fp32: 1 at real tokens, 0 at pads."""
    return tokens.ne(padding_idx).unsqueeze(-1).float()


def finite_or_zero(grad: torch.Tensor) -> torch.Tensor:
    """The gradient with nan/inf entries set to 0.

    Under fp16/amp loss scaling an overflowing step yields inf gradients; fairseq then skips
    the optimizer step and lowers the scale. Zeroing them (rather than testing them, which
    would synchronise with the device every step) keeps the perturbation finite meanwhile.
    """
    return torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)


def normalize_per_token(vector: torch.Tensor, norm_type: str, eps: float = SMART_NORM_EPS) -> torch.Tensor:
    """``vector`` divided, token by token, by its norm over the embedding dimension (+ eps).

    SMART's projection step (Jiang et al. 2020, Alg. 1: "tilde x_i <- Pi(tilde x_i + eta g_i)")
    as MT-DNN implements it (``_norm_grad``, ``norm_level`` 0): ``linf`` divides by
    ``max_j |v_j|`` (every token ends with inf-norm ~1), ``l2`` by ``||v||_2`` (l2-norm ~1).
    There is no epsilon-ball: the result has unit norm per token, whatever the step size.
    """
    check_norm_type(norm_type, "norm_type")
    if norm_type == "linf":
        scale = vector.abs().amax(dim=-1, keepdim=True)
    else:
        scale = torch.linalg.vector_norm(vector, ord=2, dim=-1, keepdim=True)
    return vector / (scale + eps)


def smart_ascent_step(
    noise: torch.Tensor,
    grad: torch.Tensor,
    step_size: float,
    norm_type: str,
    mask: Optional[torch.Tensor] = None,
    rule: str = "normalize-sum",
) -> torch.Tensor:
    """One SMART ascent step on the noise (Jiang et al. 2020, Alg. 1 lines 6-7: g = grad of
    l_s w.r.t. the noise, eta = step size), by one of MT-DNN's two published step rules:

    - ``normalize-sum`` (its current ``SmartPerturbation``): normalize_per_token(noise + eta g),
      the step taken on the unnormalised gradient, then the sum normalised per token, so every
      token's noise has norm ~1 whatever eta is;
    - ``normalized-gradient`` (its earlier release, and the paper's ascent along g / ||g||):
      noise + eta normalize_per_token(g), a step of norm at most eta per token (less where
      the gradient's norm is not well above the normalisation's eps).

    ``mask`` (1 at tokens, 0 at pads) keeps pads at zero noise.
    """
    check_choice(rule, SMART_STEP_RULES, "rule")
    grad = finite_or_zero(grad)
    along_normalized_gradient = rule == "normalized-gradient"
    stepped = noise + step_size * (normalize_per_token(grad, norm_type) if along_normalized_gradient else grad)
    if mask is not None:
        stepped = stepped * mask
    return stepped if along_normalized_gradient else normalize_per_token(stepped, norm_type)


def _per_example_norm(x: torch.Tensor, norm_type: str) -> torch.Tensor:
    """Norm of each example's whole (length x dim) perturbation, shaped (batch, 1, 1)."""
    ord_ = 2 if norm_type == "l2" else float("inf")
    return torch.linalg.vector_norm(x.flatten(1).float(), ord=ord_, dim=1).view(-1, 1, 1)


def freelb_init(
    shape,
    mask: torch.Tensor,
    init_mag: float,
    norm_type: str,
    generator: Optional[torch.Generator] = None,
    unit: Union[float, torch.Tensor] = 1.0,
) -> torch.Tensor:
    """FreeLB's random start delta_0 (Zhu et al. 2020, Alg. 1 line 4), fp32, zero at pads.

    ``l2``: U(-1, 1) per entry, scaled by init_mag / sqrt(n_tokens * dim) per example (so its
    l2 norm is about init_mag / sqrt(3)); ``linf``: U(-init_mag, init_mag). init_mag = 0
    starts from zero. ``mask`` is (batch, length, 1), 1 at tokens. ``unit``: what init_mag is
    counted in (e.g. a 0-dim tensor: the embeddings' RMS, applied without a host sync).
    """
    check_norm_type(norm_type, "--adv-norm-type")
    if init_mag == 0:
        return torch.zeros(shape, device=mask.device, dtype=torch.float32)
    mask = mask.float()
    delta = torch.empty(shape, device=mask.device, dtype=torch.float32).uniform_(-1, 1, generator=generator)
    delta = delta * mask
    if norm_type == "l2":
        dims = mask.sum(dim=(1, 2)).clamp(min=1) * shape[-1]
        return delta * (init_mag * unit / dims.sqrt()).view(-1, 1, 1)
    return delta * (init_mag * unit)


def freelb_ascent_step(
    delta: torch.Tensor,
    grad: torch.Tensor,
    adv_lr: float,
    norm_type: str,
    max_norm: float,
    unit: Union[float, torch.Tensor] = 1.0,
) -> torch.Tensor:
    """delta_t = Pi(delta_{t-1} + adv_lr * g / ||g||) (Zhu et al. 2020, Alg. 1 lines 9-10).

    Norms are per example over the whole sequence, as FreeLB's code takes them. Projection
    (``max_norm`` > 0): ``l2`` rescales an example whose ||delta||_2 exceeds max_norm onto the
    ball; ``linf`` clamps every entry to [-max_norm, max_norm]. ``max_norm`` <= 0: no
    projection. The gradient's scale (e.g. a fp16 loss scale) cancels in g / ||g||. ``unit``: what
    adv_lr and max_norm are counted in, as in ``freelb_init``.
    """
    grad = finite_or_zero(grad.float())
    denominator = _per_example_norm(grad, norm_type).clamp(min=FREELB_MIN_GRAD_NORM[norm_type])
    delta = delta.float() + (adv_lr * unit) * grad / denominator
    if max_norm > 0:
        radius = max_norm * unit
        if norm_type == "l2":
            norm = _per_example_norm(delta, "l2")
            delta = delta * torch.where(norm > radius, radius / norm, torch.ones_like(norm))
        else:
            delta = delta.clamp(-radius, radius)
    return delta


def size_against_embeddings(delta: torch.Tensor, embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per example (shape (batch,)), ||delta||_2 / ||embeddings||_2 over the real tokens.

    FreeLB's magnitudes are absolute l2 norms over a whole sequence, so what one setting does
    depends on the encoder's embedding scale, width and the text's length; this ratio is that
    setting's size against the input it perturbs, comparable across encoders. ``mask`` is
    (batch, length, 1), 1 at tokens.
    """
    mask = mask.float()
    perturbation = (delta.float() * mask).flatten(1).norm(dim=1)
    clean = (embeddings.float() * mask).flatten(1).norm(dim=1)
    return perturbation / clean.clamp(min=torch.finfo(torch.float32).tiny)


def local_gradients(model) -> contextlib.AbstractContextManager:
    """``model.no_sync()`` where the model is wrapped for data parallelism, else a no-op.

    Passes whose gradients are accumulated locally and reduced with a later pass's (FreeLB's
    first K passes; SMART's ascent passes, which take no parameter gradient at all) skip
    DistributedDataParallel's gradient all-reduce. fairseq's ``legacy_ddp`` reduces once per
    update anyway; its ``no_sync`` only marks the gradients as accumulating.
    """
    no_sync = getattr(model, "no_sync", None)
    return no_sync() if callable(no_sync) else contextlib.nullcontext()
