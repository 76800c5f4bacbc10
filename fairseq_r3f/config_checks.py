"""Checks of the plugin's flags that fairseq's parser does not make: finite values, and upper bounds
of the magnitudes (noise scales, step sizes, KL weights) above which no value can be meant."""

import dataclasses
import math


def _items(cfg):
    if hasattr(cfg, "items"):  # an omegaconf DictConfig (fairseq-train, fairseq-hydra-train)
        return cfg.items()
    return ((f.name, getattr(cfg, f.name)) for f in dataclasses.fields(cfg))


def refuse_non_finite(cfg, owner: str) -> None:
    """A ValueError naming the first float flag of ``cfg`` that is nan or +-inf.

    fairseq parses "nan" and "inf" as floats, and a comparison with nan is always False: a range
    check alone lets ``--r3f-lambda nan`` through (and then trains without the KL), and an
    infinite step size or noise scale only surfaces as nan gradients that name no flag.
    """
    for name, value in _items(cfg):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{owner}: --{name.replace('_', '-')} must be a finite number, got {value}")


# The largest value of each magnitude flag that can be meant, and why anything above it cannot be.
# Every one is orders of magnitude above what the papers and recipes use; a value above it (a typo,
# a unit mix-up) trains to nan or inf gradients, which fairseq reports without naming a flag.
# --adv-scale relative counts FreeLB's magnitudes in the embeddings' RMS: the same bounds hold
_RELATIVE_ADV = "with --adv-scale relative that norm is sqrt(512 x 1024) = 724 in RMS units"
UPPER_BOUNDS = {
    "eps": (
        100.0,
        "it is the noise scale sigma; token embeddings have an RMS of about 0.02-0.06 (0.02 at BERT's and "
        "RoBERTa's initialisation, 0.056 in all-MiniLM-L6-v2), and with "
        "--noise-scale relative sigma is counted in that RMS, so noise above 100 leaves nothing of the input "
        "(the paper uses 1e-5, the sigma sweep at most 1)",
    ),
    "r3f_lambda": (
        1e4,
        "it weighs the symmetric KL against the task loss; above 1e4 the task loss is less than 1e-4 of the "
        "objective (the paper's grids stop at 5, and at about 10 per target token for summarization)",
    ),
    "smart_lambda": (
        1e4,
        "it weighs the symmetric KL against the task loss; above 1e4 the task loss is less than 1e-4 of the "
        "objective (SMART's authors use 1 to 10)",
    ),
    "smart_noise_std": (
        100.0,
        "it is the std of the initial noise on embeddings of unit scale (the embedding block's output) or of "
        "RMS about 0.02-0.06 (--smart-noise-at token-embeddings); noise above 100 leaves nothing of the input "
        "(SMART's default is 1e-5)",
    ),
    "adv_init_mag": (
        1e3,
        "it is the size of FreeLB's random start on the token embeddings: per coordinate (linf) they have an "
        "RMS of about 0.02-0.06, per example (l2) a norm of about 15-45 for 512 tokens of 1024 dimensions; "
        f"{_RELATIVE_ADV}, so a start above 1e3 leaves nothing of the input (FreeLB's settings are 0.1 to 1)",
    ),
    "adv_lr": (
        1e3,
        "it is FreeLB's ascent step on the token embeddings: per coordinate (linf) they have an RMS of about "
        f"0.02-0.06, per example (l2) a norm of about 15-45 for 512 tokens of 1024 dimensions; {_RELATIVE_ADV}, "
        "so a step above 1e3 leaves nothing of the input (FreeLB's settings are 0.025 to 0.2)",
    ),
}


def refuse_out_of_bounds(cfg, owner: str) -> None:
    """A ValueError naming the first flag of ``cfg`` above its bound in ``UPPER_BOUNDS``, and why."""
    for name, value in _items(cfg):
        if name in UPPER_BOUNDS and isinstance(value, (int, float)) and value > UPPER_BOUNDS[name][0]:
            bound, why = UPPER_BOUNDS[name]
            raise ValueError(f"{owner}: --{name.replace('_', '-')} must be <= {bound:g}, got {value:g}: {why}")
