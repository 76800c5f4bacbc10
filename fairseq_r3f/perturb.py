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
from typing import Callable, Iterator, Optional

import torch
from fairseq.models.transformer import TransformerEncoderBase
from torch import nn

from .method.noise import add_embedding_noise, add_noise, sample_embedding_noise, token_rms
from .method.realised_noise import carried_fraction, intended_layer_input_change


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
            raise TypeError("perturbed_token_embeddings needs token_embeddings passed by keyword")
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


class EmbeddingNoise:
    """One draw of R3F's z for a batch, and how it enters the noised pass (Eq. 3: f(x + z)).

    ``shape`` is (batch, length, embed_dim) of the token embeddings it will perturb;
    ``noise_type`` "none" draws nothing, so the "noised" pass differs from the clean one
    only by dropout. Called on embeddings, it returns ``x.detach() + z``: detached as in
    the authors' reference, so the noised pass does not train the embedding table.
    Every R3F criterion draws its noise here, so the noise means the same in each.

    ``relative``: ``eps`` is a fraction of the RMS of the embeddings it is added to (over the
    positions where ``keep`` is true, e.g. non-pad tokens), so z is drawn at unit scale and
    multiplied by eps x RMS when the embeddings are seen (``added_to``).
    """

    def __init__(
        self,
        shape,
        eps: float,
        noise_type: str,
        device: torch.device,
        relative: bool = False,
        keep: Optional[torch.Tensor] = None,
    ):
        self.eps, self.noise_type, self.relative, self.keep = eps, noise_type, relative, keep
        self.z = None
        if noise_type != "none":
            # absolute: the draw is the noise itself, exactly as before relative scales existed
            self.z = sample_embedding_noise(shape, 1.0 if relative else eps, noise_type, device)

    def sigma(self, embeddings: torch.Tensor, keep: Optional[torch.Tensor] = None):
        """The noise scale for ``embeddings``: eps, or eps x their RMS (a 0-dim tensor)."""
        return self.eps * token_rms(embeddings, keep) if self.relative else self.eps

    def added_to(self, embeddings: torch.Tensor) -> Optional[torch.Tensor]:
        """The noise this draw adds to ``embeddings`` (None for noise type "none")."""
        if self.z is None or not self.relative:
            return self.z
        return self.z * self.sigma(embeddings, self.keep)

    def __call__(self, embeddings: torch.Tensor) -> torch.Tensor:
        if self.z is None:
            return embeddings.detach()
        return add_noise(embeddings.detach(), self.added_to(embeddings))

    def fresh(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``x.detach() + z'`` with a new z' of ``embeddings``' shape, for inputs whose
        shape is only known inside the forward pass (the decoder's, step by step; a relative
        scale is taken over all of its positions)."""
        if self.noise_type == "none":
            return embeddings.detach()
        if not self.relative:
            return add_embedding_noise(embeddings.detach(), self.eps, self.noise_type)
        unit = sample_embedding_noise(embeddings.shape, 1.0, self.noise_type, embeddings.device)
        return add_noise(embeddings.detach(), unit * self.sigma(embeddings))


@contextmanager
def perturbed_decoder_embeddings(decoder: nn.Module, perturb: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """Within the block, the decoder's token embeddings pass through ``perturb``.

    fairseq's decoder takes no ``token_embeddings`` argument, so the perturbation goes on
    the output of its ``embed_tokens``, and only while the decoder itself runs: BART's
    encoder calls the same (shared) module, and must not get the decoder's noise.
    """
    embed_tokens = getattr(decoder, "embed_tokens", None)
    if embed_tokens is None:
        raise UnperturbableModelError(
            f"--r3f-decoder-noise: the decoder {type(decoder).__name__} has no embed_tokens, so its "
            "token embeddings cannot be perturbed"
        )
    depth = [0]  # > 0 while the decoder's forward runs

    def enter(*_):
        depth[0] += 1

    def leave(*_):
        depth[0] -= 1

    def embed_hook(module, args, output):
        return perturb(output) if depth[0] else output

    handles = [
        decoder.register_forward_pre_hook(enter),
        decoder.register_forward_hook(leave),
        embed_tokens.register_forward_hook(embed_hook),
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def perturbed_embedding_output(
    encoder: TransformerEncoderBase,
    perturb: Callable[[torch.Tensor], torch.Tensor],
) -> Iterator[None]:
    """Within the block, the output of the encoder's embedding block (its embedding LayerNorm:
    token embeddings, positions and LayerNorm, before dropout), a unit-scale batch x length x dim
    tensor, is replaced by ``perturb(output)``. SMART perturbs there (MT-DNN's ``embed_encode``).
    """
    layer_norm = getattr(encoder, "layernorm_embedding", None)
    if layer_norm is None:
        raise UnperturbableModelError(
            f"{type(encoder).__name__} has no embedding LayerNorm (layernorm_embedding) whose "
            "output can be perturbed; use --smart-noise-at token-embeddings"
        )
    handle = layer_norm.register_forward_hook(lambda module, args, output: perturb(output))
    try:
        yield
    finally:
        handle.remove()


class EmbeddingBlockProbe:
    """Records the input and output of the encoder's embedding LayerNorm in each pass.

    Its output is the first encoder layer's input before dropout, in the dtype the layer
    sees; comparing the clean and the noised pass there tells how much of the noise the
    encoder really receives (``realised_noise``). Encoders without ``layernorm_embedding``
    are not measured (``complete`` stays False).
    """

    def __init__(self, encoder: TransformerEncoderBase):
        self.layer_norm = getattr(encoder, "layernorm_embedding", None)
        self.padding_idx = encoder.padding_idx
        self.records = []
        self._handle = None

    def __enter__(self):
        if self.layer_norm is not None:
            self._handle = self.layer_norm.register_forward_hook(
                lambda module, args, output: self.records.append((args[0].detach(), output.detach()))
            )
        return self

    def __exit__(self, *exc):
        if self._handle is not None:
            self._handle.remove()
        return False

    @property
    def complete(self) -> bool:
        """Two passes, or one stacked pass (clean rows first, noised rows second)."""
        return len(self.records) in (1, 2)

    def carried_fraction(self, scaled_noise: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Fraction of ``scaled_noise`` (embed_scale * z) that reached the layer input, over
        the non-pad positions of ``tokens``.

        Pads are left out: their embedding is 0, so the LayerNorm blows a pad row's noise
        up to unit size, which would swamp the measure (fairseq zeroes pad rows anyway).
        """
        if len(self.records) == 2:
            (clean_in, clean_out), (_, noised_out) = self.records
        else:
            ((both_in, both_out),) = self.records
            n = both_in.size(0) // 2
            clean_in, clean_out, noised_out = both_in[:n], both_out[:n], both_out[n:]
        with torch.no_grad():
            keep = tokens.ne(self.padding_idx).unsqueeze(-1)
            intended = intended_layer_input_change(clean_in, scaled_noise, self.layer_norm)
            return carried_fraction((noised_out.float() - clean_out.float()) * keep, intended * keep)


class RngState:
    """The global CPU (and current CUDA device's) RNG state, to replay dropout masks."""

    def __init__(self, cpu: torch.Tensor, cuda: Optional[torch.Tensor], device: torch.device):
        self.cpu, self.cuda, self.device = cpu, cuda, device

    @classmethod
    def capture(cls, device: torch.device) -> "RngState":
        cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        return cls(torch.get_rng_state(), cuda, device)

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda, self.device)
