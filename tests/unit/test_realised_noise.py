"""R3F's modes and ablations: gradients equal the reference's formula, the one-sided mode's
noised pass holds no graph, same-dropout isolates the noise, and the realised-noise measure."""

import pytest
import torch
import torch.nn.functional as F

from fairseq_r3f.method.realised_noise import carried_fraction

from tests.helpers import TINY_ROBERTA, build_in_process

HEAD = "sentence_classification_head"
NO_DROPOUT = ["--dropout", "0", "--attention-dropout", "0", "--pooler-dropout", "0"]
LAMBDA = 0.7


def r3f(data, *flags):
    _, task, model, criterion = build_in_process(
        data, *TINY_ROBERTA, "--criterion", "sentence_prediction_r3f", "--r3f-lambda", str(LAMBDA),
        "--eps", "1e-2", *flags)
    model.train()
    return task, model, criterion


def reference_formula_loss(model, sample, noise, one_sided=False):
    """The authors' loss written out: CE(clean) + lambda * (KL(p_n||p_c) + KL(p_c||p_n)) * n,
    with the noise given to the encoder directly (x.detach() + z)."""
    net_input = sample["net_input"]
    clean = model(**net_input, classification_head_name=HEAD)[0]
    src = net_input["src_tokens"]
    encoder = model.encoder.sentence_encoder
    with torch.set_grad_enabled(not one_sided):
        out = encoder(src, token_embeddings=encoder.embed_tokens(src).detach() + noise)
        noised = model.classification_heads[HEAD](out["encoder_out"][0].transpose(0, 1))
    n = src.size(0)
    kl = (F.kl_div(F.log_softmax(noised, -1, dtype=torch.float32), F.softmax(clean, -1, dtype=torch.float32),
                   reduction="sum")
          + F.kl_div(F.log_softmax(clean, -1, dtype=torch.float32), F.softmax(noised, -1, dtype=torch.float32),
                     reduction="sum")) / n
    ce = F.nll_loss(F.log_softmax(clean, -1, dtype=torch.float32), sample["target"].view(-1), reduction="sum")
    return ce + LAMBDA * kl * n


def gradients(model, loss):
    model.zero_grad()
    loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_carried_fraction_of_half_precision_addition():
    """At realistic scale (std 0.05), adding sigma = 1e-5 noise in fp16, as the reference does
    under --fp16, carries less than half of it; adding in fp32 carries all of it."""
    g = torch.Generator().manual_seed(0)
    embeddings = (0.05 * torch.randn(32, 64, 256, generator=g))
    noise = torch.empty_like(embeddings).uniform_(-1e-5, 1e-5, generator=g)
    half = embeddings.half()
    in_half = (half + noise.half()).float() - half.float()
    in_fp32 = (embeddings + noise) - embeddings
    assert carried_fraction(in_half, noise).item() < 0.5
    assert carried_fraction(in_fp32, noise).item() == pytest.approx(1.0, abs=0.02)
    assert carried_fraction(torch.zeros_like(noise), noise).item() == 0.0
