"""R4F: a classification head that is at most 1-Lipschitz (paper, Sec. 3.2).

Every ``nn.Linear`` of the head (``dense`` and ``out_proj`` in fairseq's RoBERTa and
BART heads) is reparameterised with ``torch.nn.utils.parametrizations.spectral_norm``,
so W_eff = W / sigma_max(W). The head's activations (tanh, GELU, ReLU) are 1-Lipschitz
and dropout is the identity at evaluation, so the whole head is.

Checkpoint format. A parametrised Linear stores ``parametrizations.weight.original``,
``..._u`` and ``..._v``. fairseq's ``upgrade_state_dict_named`` of RoBERTa and BART reads
``<head>.out_proj.weight`` and ``<head>.dense.weight`` to size heads before loading,
which is why fairseq's own spectral-norm checkpoints cannot be resumed. The head
therefore also writes the effective weight under the plain ``weight`` key (derived,
read-only information for fairseq and for humans) and drops it again when loading.
"""

import logging

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from .patching import wrap_once

logger = logging.getLogger(__name__)


def _linear_layers(head: nn.Module):
    return [(name, m) for name, m in head.named_modules() if isinstance(m, nn.Linear)]


def effective_weight(linear: nn.Linear) -> torch.Tensor:
    """W / sigma as the parametrisation computes it at evaluation (stored u, v; no power step).

    Reading ``linear.weight`` in training mode would run a power iteration and change
    ``u`` and ``v``; saving a checkpoint must not change the training run.
    """
    original = linear.parametrizations.weight.original
    sn = linear.parametrizations.weight[0]
    sigma = torch.vdot(sn._u, torch.mv(original.flatten(1), sn._v))
    return original / sigma


def is_lipschitz_head(head: nn.Module) -> bool:
    layers = _linear_layers(head)
    return bool(layers) and all(parametrize.is_parametrized(m, "weight") for _, m in layers)


def _state_dict_post_hook(module, state_dict, prefix, local_metadata):
    for name, linear in _linear_layers(module):
        state_dict[f"{prefix}{name}.weight"] = effective_weight(linear).detach()


def _load_state_dict_pre_hook(module, state_dict, prefix, *args):
    # The plain ``weight`` is derived from (original, u, v); loading uses those.
    for name, _ in _linear_layers(module):
        state_dict.pop(f"{prefix}{name}.weight", None)


def top_singular_vectors(weight: torch.Tensor):
    """(u, v), the left and right singular vectors of ``weight``'s largest singular value, in its
    dtype: the power iteration's fixed point, from an SVD (computed in fp32)."""
    left, _, right_h = torch.linalg.svd(weight.flatten(1).float(), full_matrices=False)
    return left[:, 0].to(weight.dtype), right_h[0].to(weight.dtype)


def _start_power_iteration_at_sigma_max(linear: nn.Linear) -> None:
    """Put the stored (u, v) at the weight's top singular vectors before training, so sigma is
    exact from the first step and the head 1-Lipschitz from the start.

    torch runs 15 iterations at registration (on a 64x64 random matrix sigma is ~0.5% low), and
    an iteration stopped on a tolerance stalls short where the top two singular values are close
    (0.8% low on 2 of 3,000 random 16x16 weights). Afterwards every training forward runs one
    more step, which tracks the slowly changing weight.
    """
    sn = linear.parametrizations.weight[0]
    with torch.no_grad():
        u, v = top_singular_vectors(linear.parametrizations.weight.original)
        sn._u.copy_(u)
        sn._v.copy_(v)


def _without_hook_spectral_norm(head: nn.Module, name: str, linear: nn.Linear) -> nn.Linear:
    """Replace a Linear carrying torch.nn.utils.spectral_norm (fairseq's flag puts it on
    ``out_proj``) by a plain Linear with the same parameters.

    ``torch.nn.utils.remove_spectral_norm`` would leave its load-state-dict hook behind
    on current torch (it looks for the hook by type, but torch now stores it wrapped),
    and that hook then rewrites the keys of every checkpoint loaded into the head.
    """
    plain = nn.Linear(linear.in_features, linear.out_features, bias=linear.bias is not None)
    plain.to(device=linear.weight_orig.device, dtype=linear.weight_orig.dtype)
    with torch.no_grad():
        plain.weight.copy_(linear.weight_orig)
        if linear.bias is not None:
            plain.bias.copy_(linear.bias)
    parent_name, _, attr = name.rpartition(".")
    setattr(head.get_submodule(parent_name), attr, plain)
    return plain


def make_head_lipschitz(head: nn.Module) -> nn.Module:
    """Spectrally normalise every Linear weight of ``head`` in place; returns ``head``.

    Idempotent. A Linear that carries fairseq's old hook-based spectral norm (which
    fairseq applies to ``out_proj`` only) is converted to the parametrisation.
    """
    if is_lipschitz_head(head):
        return head
    layers = _linear_layers(head)
    if not layers:
        raise TypeError(f"{type(head).__name__} has no nn.Linear to normalise")
    for name, linear in layers:
        if parametrize.is_parametrized(linear, "weight"):
            continue
        if hasattr(linear, "weight_orig"):
            linear = _without_hook_spectral_norm(head, name, linear)
        spectral_norm(linear, name="weight", n_power_iterations=1)
        _start_power_iteration_at_sigma_max(linear)
    head.register_state_dict_post_hook(_state_dict_post_hook)
    head.register_load_state_dict_pre_hook(_load_state_dict_pre_hook)
    return head


def _wrap_register_classification_head(model_cls) -> None:
    """After ``model_cls.register_classification_head``, make the head 1-Lipschitz when
    the model was built with ``--spectral-norm-classification-head``.

    Wrapping registration (rather than the task) covers every path that creates a head:
    ``SentencePredictionTask.build_model`` and the ``upgrade_state_dict_named`` that
    ``load_model_ensemble`` / ``from_pretrained`` run when reloading a checkpoint.
    """

    def wrapper(original):
        def register_classification_head(self, name, *args, **kwargs):
            original(self, name, *args, **kwargs)
            if getattr(self.args, "spectral_norm_classification_head", False):
                make_head_lipschitz(self.classification_heads[name])
                logger.info("R4F: spectral norm on every Linear of classification head %r", name)

        return register_classification_head

    wrap_once(
        model_cls,
        "register_classification_head",
        wrapper,
        "with --spectral-norm-classification-head every head registered is 1-Lipschitz (R4F)",
    )


def convert_checkpoint_heads(model: nn.Module, state_dict: dict, prefix: str = "") -> list:
    """Make a checkpoint's heads load into ``model``'s, whichever of the two is R4F; returns what
    was converted, as "(head).(layer): how" strings.

    - A plain head restored into an R4F model: its trained weight becomes the parametrisation's
      ``original`` and ``u``, ``v`` its top singular vectors, so the head is the trained one,
      spectrally normalised (its outputs change scale). Without this, fairseq's
      ``upgrade_state_dict_named`` finds no ``parametrizations`` keys and silently puts a fresh
      head in their place ("Overwriting ...").
    - An R4F head restored into a plain model: the effective weight W / sigma, which an R4F
      checkpoint stores under the plain key, is loaded; the parametrisation's keys are dropped.
      The head computes exactly what it computed in the R4F run.
    """
    converted = []
    for head_name, head in (getattr(model, "classification_heads", None) or {}).items():
        base = f"{prefix}classification_heads.{head_name}."
        lipschitz = is_lipschitz_head(head)
        for name, _ in _linear_layers(head):
            plain = f"{base}{name}.weight"
            original = f"{base}{name}.parametrizations.weight.original"
            vectors = (f"{base}{name}.parametrizations.weight.0._u", f"{base}{name}.parametrizations.weight.0._v")
            if lipschitz and plain in state_dict and original not in state_dict:
                weight = state_dict[plain]
                state_dict[original] = weight
                state_dict[vectors[0]], state_dict[vectors[1]] = top_singular_vectors(weight)
                converted.append(f"{head_name}.{name}: plain weight loaded, spectrally normalised")
            elif not lipschitz and original in state_dict:
                if plain not in state_dict:
                    raise ValueError(
                        f"{original}: an R4F head without its effective weight {plain}; restore it "
                        "with --spectral-norm-classification-head"
                    )
                for key in (original, *vectors):
                    state_dict.pop(key, None)
                converted.append(f"{head_name}.{name}: R4F head loaded as its effective weight W / sigma")
    return converted


def install() -> None:
    from fairseq.models.bart import BARTModel
    from fairseq.models.roberta import RobertaModel  # XLMRModel subclasses it

    for model_cls in (RobertaModel, BARTModel):
        _wrap_register_classification_head(model_cls)
