"""Bad flags are refused at start-up with a message that names the flag."""

import pytest
import torch

from fairseq_r3f.criterions.sentence_prediction_r3f import (
    SentencePredictionR3FConfig,
    SentencePredictionR3FCriterion,
)
from tests.helpers import TINY_ROBERTA, build_in_process, valid_batch

R3F = ["--criterion", "sentence_prediction_r3f"]


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--eps", "0"], "--eps must be > 0"),
        (["--eps=-1e-5"], "--eps must be > 0"),
        (["--r3f-lambda=-0.1"], "--r3f-lambda must be >= 0"),
        (["--regression-target"], "does not support --regression-target"),
        (["--report-acc-and-f1", "--num-classes", "3"], "--report-acc-and-f1 needs a binary task"),
    ],
)
def test_bad_criterion_flags(flags, message, synthetic_data):
    with pytest.raises(ValueError, match=message):
        build_in_process(synthetic_data, *TINY_ROBERTA, *R3F, *flags)


def test_unknown_noise_type_from_flags(synthetic_data, capsys):
    with pytest.raises(SystemExit):
        build_in_process(synthetic_data, *TINY_ROBERTA, *R3F, "--noise-type", "gaussian")
    err = capsys.readouterr().err
    assert "--noise-type" in err and "gaussian" in err


def test_unknown_noise_type_from_python_or_yaml(synthetic_data):
    _, task, _, _ = build_in_process(synthetic_data, *TINY_ROBERTA, *R3F)
    with pytest.raises(ValueError, match="--noise-type must be one of uniform, normal"):
        SentencePredictionR3FCriterion(SentencePredictionR3FConfig(noise_type="gaussian"), task)


def test_model_without_the_named_head(synthetic_data):
    _, task, model, _ = build_in_process(synthetic_data, *TINY_ROBERTA, *R3F)
    *_, other = build_in_process(synthetic_data, *TINY_ROBERTA, *R3F, "--classification-head-name", "other_head")
    with pytest.raises(ValueError, match="--classification-head-name 'other_head'.*sentence_classification_head"):
        other(model, valid_batch(task))


def test_model_whose_embeddings_cannot_be_perturbed(synthetic_data):
    _, task, _, criterion = build_in_process(synthetic_data, *TINY_ROBERTA, *R3F)

    class NotATransformer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(100, 8)
            self.classification_heads = torch.nn.ModuleDict({"sentence_classification_head": torch.nn.Linear(8, 2)})

    with pytest.raises(ValueError, match="--arch: NotATransformer has no fairseq TransformerEncoderBase"):
        criterion(NotATransformer(), valid_batch(task))


@pytest.mark.parametrize(
    "flags",
    [
        ["--criterion", "sentence_prediction_r3f", "--r3f-lambda", "nan"],
        ["--criterion", "sentence_prediction_r3f", "--r3f-lambda", "inf"],
        ["--criterion", "sentence_prediction_r3f", "--eps", "nan"],
        ["--criterion", "sentence_prediction_r3f", "--eps", "inf"],
        ["--criterion", "sentence_prediction_smart", "--smart-lambda", "nan"],
        ["--criterion", "sentence_prediction_smart", "--smart-step-size", "inf"],
        ["--criterion", "sentence_prediction_smart", "--smart-noise-std", "inf"],
        ["--criterion", "sentence_prediction", "--task", "sentence_prediction_adv", "--adv-lr", "inf"],
        ["--criterion", "sentence_prediction", "--task", "sentence_prediction_adv", "--adv-init-mag", "inf"],
        ["--criterion", "sentence_prediction", "--task", "sentence_prediction_adv", "--adv-max-norm", "nan"],
    ],
    ids=lambda flags: " ".join(flags[-2:]),
)
def test_non_finite_flags_are_refused_naming_the_flag(flags, synthetic_data):
    """nan passes every range check (nan < 0 and nan > 0 are both false): --r3f-lambda nan would
    train without the KL, --adv-max-norm nan without projection, inf ends in nan gradients."""
    with pytest.raises(ValueError, match=f"{flags[-2]} must be a finite number, got {flags[-1]}"):
        build_in_process(synthetic_data, *TINY_ROBERTA, *flags)


def test_non_finite_flags_of_the_summarization_criterion():
    from fairseq_r3f.criterions.label_smoothed_cross_entropy_r3f import (
        LabelSmoothedCrossEntropyR3FConfig,
        LabelSmoothedCrossEntropyR3FCriterion,
    )

    for name in ("r3f_lambda", "eps", "label_smoothing"):
        cfg = LabelSmoothedCrossEntropyR3FConfig(**{name: float("nan")})
        with pytest.raises(ValueError, match=f"--{name.replace('_', '-')} must be a finite number, got nan"):
            LabelSmoothedCrossEntropyR3FCriterion(cfg, task=None)


@pytest.mark.parametrize(
    "flags",
    [
        ["--criterion", "sentence_prediction_r3f", "--eps", "1e30"],
        ["--criterion", "sentence_prediction_r3f", "--r3f-lambda", "1e30"],
        ["--criterion", "sentence_prediction_smart", "--smart-noise-std", "1e30"],
        ["--criterion", "sentence_prediction_smart", "--smart-lambda", "1e30"],
        ["--criterion", "sentence_prediction", "--task", "sentence_prediction_adv", "--adv-init-mag", "1e30"],
        ["--criterion", "sentence_prediction", "--task", "sentence_prediction_adv", "--adv-lr", "1e30"],
    ],
    ids=lambda flags: " ".join(flags[-2:]),
)
def test_absurd_magnitudes_are_refused_naming_the_flag_and_why(flags, synthetic_data):
    """Finite but absurd: 1e30 passes the finiteness and sign checks and ends in nan gradients that
    name no flag; refused when the criterion or task is built, with the bound and the reason."""
    from fairseq_r3f.config_checks import UPPER_BOUNDS

    name = flags[-2].lstrip("-").replace("-", "_")
    bound, why = UPPER_BOUNDS[name]
    with pytest.raises(ValueError, match=f"{flags[-2]} must be <= {bound:g}, got 1e\\+30: it "):
        build_in_process(synthetic_data, *TINY_ROBERTA, *flags)
    build_in_process(synthetic_data, *TINY_ROBERTA, *flags[:-1], f"{bound:g}")  # the bound itself is accepted


def test_absurd_magnitudes_of_the_summarization_criterion():
    from fairseq_r3f.criterions.label_smoothed_cross_entropy_r3f import (
        LabelSmoothedCrossEntropyR3FConfig,
        LabelSmoothedCrossEntropyR3FCriterion,
    )

    for name in ("r3f_lambda", "eps"):
        cfg = LabelSmoothedCrossEntropyR3FConfig(**{name: 1e30})
        with pytest.raises(ValueError, match=f"--{name.replace('_', '-')} must be <= .*, got 1e\\+30"):
            LabelSmoothedCrossEntropyR3FCriterion(cfg, task=None)
