"""R4F: --spectral-norm-classification-head makes every Linear of the head 1-Lipschitz."""

import pytest
import torch
from torch.nn.utils import parametrize

from fairseq_r3f.lipschitz_head import effective_weight, make_head_lipschitz
from tests.helpers import TINY_BART, TINY_ROBERTA, build_in_process, valid_batch

HEAD = "sentence_classification_head"
ARCHS = {"roberta": TINY_ROBERTA, "bart": TINY_BART}


@pytest.mark.parametrize("arch", ARCHS)
def test_flag_changes_the_module(arch, synthetic_data):
    *_, plain, _ = build_in_process(synthetic_data, *ARCHS[arch], "--criterion", "sentence_prediction_r3f")
    *_, r4f, _ = build_in_process(
        synthetic_data, *ARCHS[arch], "--criterion", "sentence_prediction_r3f", "--spectral-norm-classification-head"
    )
    for name in ("dense", "out_proj"):
        assert not parametrize.is_parametrized(getattr(plain.classification_heads[HEAD], name))
        layer = getattr(r4f.classification_heads[HEAD], name)
        assert parametrize.is_parametrized(layer, "weight")
        assert not hasattr(layer, "weight_orig")  # fairseq's hook-based version is replaced
        r4f.eval()
        assert torch.linalg.matrix_norm(layer.weight.detach(), 2).item() == pytest.approx(1.0, abs=1e-3)


def test_state_dict_has_fairseq_keys_and_roundtrips(synthetic_data):
    args = [*TINY_ROBERTA, "--criterion", "sentence_prediction_r3f", "--spectral-norm-classification-head"]
    _, task, model, _ = build_in_process(synthetic_data, *args)
    model.train()
    head = model.classification_heads[HEAD]
    for _ in range(3):  # training-mode forwards advance the power iteration
        head(torch.randn(4, 5, 64))
    u_before = head.dense.parametrizations.weight[0]._u.clone()
    state = model.state_dict()
    # saving must not advance the power iteration (it would change the training run)
    assert torch.equal(head.dense.parametrizations.weight[0]._u, u_before)
    for name in ("dense", "out_proj"):
        key = f"classification_heads.{HEAD}.{name}.weight"
        assert key in state  # what fairseq's upgrade_state_dict_named reads
        assert torch.equal(state[key], effective_weight(getattr(head, name)))
    _, _, fresh, _ = build_in_process(synthetic_data, *args)
    fresh.load_state_dict(state, strict=True)
    model.eval()
    fresh.eval()
    sample = valid_batch(task)
    with torch.no_grad():
        a, _ = model(**sample["net_input"], classification_head_name=HEAD)
        b, _ = fresh(**sample["net_input"], classification_head_name=HEAD)
    assert torch.equal(a, b)


def test_make_head_lipschitz_is_idempotent_and_bounds_every_matrix():
    head = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    with torch.no_grad():
        head[0].weight.mul_(10)
    make_head_lipschitz(head)
    make_head_lipschitz(head)
    assert len(head[0].parametrizations.weight) == 1
    head.eval()
    for layer in (head[0], head[2]):
        assert torch.linalg.matrix_norm(layer.weight.detach(), 2).item() <= 1 + 1e-5
    x, y = torch.randn(64, 16), torch.randn(64, 16)
    # 1-Lipschitz as a whole: outputs move no more than inputs
    assert ((head(x) - head(y)).norm(dim=-1) <= (x - y).norm(dim=-1) + 1e-5).all()


def test_sigma_is_exact_from_the_start_when_the_top_two_singular_values_are_close():
    """Power iteration converges as (sigma_2 / sigma_1)^2 per step, so one stopped on a tolerance
    stalls short of sigma_max here (10 against 9.99) and the head starts above 1-Lipschitz."""
    g = torch.Generator().manual_seed(0)
    left, _ = torch.linalg.qr(torch.randn(16, 16, generator=g))
    right, _ = torch.linalg.qr(torch.randn(16, 16, generator=g))
    singular_values = torch.linspace(1, 5, 16)
    singular_values[0], singular_values[1] = 10.0, 9.99
    head = torch.nn.Sequential(torch.nn.Linear(16, 16))
    with torch.no_grad():
        head[0].weight.copy_(left @ torch.diag(singular_values) @ right.t())
    make_head_lipschitz(head)
    head.eval()
    assert torch.linalg.matrix_norm(head[0].weight.detach(), 2).item() == pytest.approx(1.0, abs=1e-5)


def test_make_head_lipschitz_needs_a_linear():
    with pytest.raises(TypeError, match="no nn.Linear"):
        make_head_lipschitz(torch.nn.Tanh())


@pytest.mark.parametrize("arch", ARCHS)
def test_checkpoint_heads_convert_between_plain_and_r4f(arch, synthetic_data, caplog):
    """A plain head restored into an R4F model is that head, spectrally normalised (fairseq alone
    would put a fresh head in its place); an R4F head restored into a plain model computes
    exactly what it computed (its effective weight W / sigma)."""
    flags = [*ARCHS[arch], "--criterion", "sentence_prediction_r3f"]
    *_, plain, _ = build_in_process(synthetic_data, *flags)
    *_, r4f, _ = build_in_process(synthetic_data, *flags, "--spectral-norm-classification-head")
    with torch.no_grad():  # a "trained" plain head, unlike the fresh R4F one
        for p in plain.classification_heads[HEAD].parameters():
            p.add_(torch.randn_like(p))
    plain_head = plain.classification_heads[HEAD]
    with caplog.at_level("WARNING"):
        r4f.load_state_dict(plain.state_dict(), strict=True, model_cfg=None)
    assert "plain weight loaded, spectrally normalised" in caplog.text
    r4f.eval()
    for name in ("dense", "out_proj"):
        layer, trained = getattr(r4f.classification_heads[HEAD], name), getattr(plain_head, name).weight
        assert torch.equal(layer.parametrizations.weight.original, trained)
        assert torch.allclose(layer.weight, trained / torch.linalg.matrix_norm(trained, 2), atol=1e-5)

    # and back: the R4F model's state into a fresh plain model gives the same outputs
    *_, plain_again, _ = build_in_process(synthetic_data, *flags)
    plain_again.load_state_dict(r4f.state_dict(), strict=True, model_cfg=None)
    plain_again.eval()
    features = torch.randn(4, 5, 64)
    assert torch.allclose(
        plain_again.classification_heads[HEAD](features), r4f.classification_heads[HEAD](features), atol=1e-5
    )
