"""The perturbation reaches the encoder, for RoBERTa and for BART, through one mechanism.

With dropout off, noised logits must differ from clean ones for a large eps and agree as
eps -> 0. (The authors' reference passes ``token_embeddings=`` to ``RobertaModel.forward``,
which fairseq 0.12 drops: its "noised" RoBERTa logits equal the clean ones exactly.)
"""

import pytest
import torch

from fairseq_r3f.method.noise import add_embedding_noise
from fairseq_r3f.perturb import UnperturbableModelError, find_token_encoder, perturbed_token_embeddings
from tests.helpers import TINY_BART, TINY_ROBERTA, build_in_process, valid_batch

HEAD = "sentence_classification_head"
ARCHS = {"roberta": TINY_ROBERTA, "bart": TINY_BART}


def eval_model(arch, data, *extra):
    _, task, model, criterion = build_in_process(data, *ARCHS[arch], "--criterion", "sentence_prediction_r3f", *extra)
    model.eval()  # dropout off
    return task, model, criterion


def logits_of(model, sample):
    with torch.no_grad():
        return model(**sample["net_input"], classification_head_name=HEAD)[0]


@pytest.mark.parametrize("arch", ARCHS)
def test_noise_reaches_encoder_and_vanishes_as_eps_goes_to_zero(arch, synthetic_data):
    task, model, _ = eval_model(arch, synthetic_data)
    sample = valid_batch(task)
    encoder = find_token_encoder(model)
    clean = logits_of(model, sample)
    assert torch.equal(clean, logits_of(model, sample))  # deterministic without dropout
    diffs = {}
    for eps in (1e-1, 1e-3, 1e-9):
        torch.manual_seed(0)
        with perturbed_token_embeddings(encoder, lambda e: add_embedding_noise(e, eps, "uniform")):
            diffs[eps] = (logits_of(model, sample) - clean).abs().max().item()
    assert diffs[1e-1] > 1e-3
    assert diffs[1e-1] > diffs[1e-3] > diffs[1e-9]
    assert diffs[1e-9] < 1e-6
    # the hook is gone after the block
    assert torch.equal(logits_of(model, sample), clean)


def test_reference_style_token_embeddings_argument_is_dropped_by_roberta(synthetic_data):
    """Why a hook on the encoder: the keyword the reference relies on never arrives."""
    task, model, _ = eval_model("roberta", synthetic_data)
    sample = valid_batch(task)
    src = sample["net_input"]["src_tokens"]
    emb = model.encoder.sentence_encoder.embed_tokens(src)
    with torch.no_grad():
        dropped = model(
            **sample["net_input"], classification_head_name=HEAD, token_embeddings=emb + 0.1 * torch.randn_like(emb)
        )[0]
    assert torch.equal(dropped, logits_of(model, sample))


def test_bart_decoder_embeddings_are_not_perturbed(synthetic_data):
    task, model, _ = eval_model("bart", synthetic_data)
    sample = valid_batch(task)
    assert model.decoder.embed_tokens is model.encoder.embed_tokens  # shared table
    seen = []
    handle = model.decoder.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(
            m.embed_tokens(kwargs.get("prev_output_tokens", args[0] if args else None))
        ),
        with_kwargs=True,
    )
    logits_of(model, sample)
    with perturbed_token_embeddings(find_token_encoder(model), lambda e: e + 0.5):
        logits_of(model, sample)
    handle.remove()
    assert len(seen) == 2 and torch.equal(seen[0], seen[1])


@pytest.mark.parametrize("arch", ARCHS)
def test_criterion_kl_is_zero_without_noise_or_dropout(arch, synthetic_data):
    """Training-mode criterion with all dropout off: KL comes from the noise alone."""
    no_dropout = ["--dropout", "0", "--attention-dropout", "0", "--pooler-dropout", "0"]
    sample = None
    kls = {}
    for eps in ("1e-1", "1e-12"):
        task, model, criterion = eval_model(arch, synthetic_data, *no_dropout, "--eps", eps)
        sample = sample or valid_batch(task)
        model.train()
        loss, size, log = criterion(model, sample)
        kls[eps] = log["symm_kl"].item()
        assert size == sample["nsentences"]
        assert loss.item() == pytest.approx(log["loss"].item() + kls[eps], rel=1e-5)  # lambda = 1
    assert kls["1e-1"] > 1e-6
    assert kls["1e-12"] < 1e-9


def test_unperturbable_model_is_named():
    with pytest.raises(UnperturbableModelError, match="--arch roberta_"):
        find_token_encoder(torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.LSTM(4, 4)))
