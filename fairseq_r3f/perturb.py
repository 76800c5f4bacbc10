"""Route perturbed token embeddings into a fairseq Transformer encoder.

One mechanism for every encoder built on fairseq's ``TransformerEncoderBase``:
RoBERTa / XLM-R (``model.encoder.sentence_encoder``) and BART (``model.encoder``).
A forward pre-hook on that encoder replaces its ``token_embeddings`` argument with
``perturb(embed_tokens(src_tokens))``. Hooking the encoder itself, rather than passing
``token_embeddings=`` through the model's ``forward``, matters: in fairseq 0.12
``RobertaEncoder.forward`` drops that argument, so the authors' reference adds no
noise at all to RoBERTa. Hooking the encoder rather than ``embed_tokens`` keeps the
noise out of BART's decoder, which shares the embedding table.
"""

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from fairseq.models.transformer import TransformerEncoderBase
from torch import nn


class UnperturbableModelError(TypeError):
    """The model has no fairseq Transformer encoder whose token embeddings can be perturbed."""


def find_token_encoder(model: nn.Module) -> TransformerEncoderBase:
    """Return the (first) fairseq Transformer encoder inside ``model``."""
    for module in model.modules():
        if isinstance(module, TransformerEncoderBase):
            return module
    raise UnperturbableModelError(
        f"{type(model).__name__} has no fairseq TransformerEncoderBase, so its token "
        "embeddings cannot be perturbed; R3F/R4F need a RoBERTa, XLM-R or BART style "
        "model (--arch roberta_*, xlmr_*, bart_*)."
    )


@contextmanager
def perturbed_token_embeddings(
    encoder: TransformerEncoderBase,
    perturb: Callable[[torch.Tensor], torch.Tensor],
) -> Iterator[None]:
    """Within the block, every call of ``encoder`` sees ``perturb(token embeddings)``.

    ``perturb`` receives the encoder's own token embeddings (before ``embed_scale``,
    positions and the embedding LayerNorm, as in the paper's f(x + z)) and returns the
    embeddings the encoder should use. Embeddings given explicitly by the caller are
    perturbed instead of being recomputed.
    """

    def pre_hook(module, args, kwargs):
        if len(args) > 3:
            raise TypeError(
                "perturbed_token_embeddings needs token_embeddings passed by keyword"
            )
        embeddings = kwargs.get("token_embeddings")
        if embeddings is None:
            src_tokens = args[0] if args else kwargs["src_tokens"]
            embeddings = module.embed_tokens(src_tokens)
        kwargs["token_embeddings"] = perturb(embeddings)
        return args, kwargs

    handle = encoder.register_forward_pre_hook(pre_hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()
