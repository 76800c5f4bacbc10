"""Checks of the plugin's flags that fairseq's parser does not make."""

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
