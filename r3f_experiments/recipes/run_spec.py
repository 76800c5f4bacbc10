"""One fine-tuning run as an ordered list of settings, rendered two ways from the same values:
the ``fairseq-train`` command line (what the shell recipes run) and the YAML config of
``fairseq-hydra-train`` (what ``configs/`` holds).

A setting is a fairseq flag with its value and the place fairseq's hydra config keeps it
(group and key): ``Setting("--lr", "1e-5", "optimization", "lr")``. Values keep the paper's
notation ("1e-5", not 1e-05) so the command line reads like the tables; YAML parses them as
numbers. ``True`` is a switch (``--amp``), ``False`` only appears in the YAML.
"""

from typing import Dict, List, NamedTuple, Optional, Sequence, Union

Value = Union[str, int, bool]

# The YAML's groups, in fairseq's own order of config groups.
GROUPS = (
    "common",
    "task",
    "criterion",
    "checkpoint",
    "distributed_training",
    "dataset",
    "optimizer",
    "lr_scheduler",
    "optimization",
    "model",
)
# Hydra's value for a setting that the user must give on the command line.
REQUIRED = "???"


class Setting(NamedTuple):
    flag: Optional[str]  # None: a YAML-only setting (its fairseq-train default is what we want)
    value: Value
    group: str
    key: str


def flag(name: str, value: Value, group: str, key: Optional[str] = None) -> Setting:
    """``--name value`` kept at ``group.key`` (key defaults to the flag's name in snake case)."""
    return Setting(name, value, group, key or name[2:].replace("-", "_"))


def yaml_only(group: str, key: str, value: Value) -> Setting:
    return Setting(None, value, group, key)


def argv(settings: Sequence[Setting]) -> List[str]:
    """The fairseq-train flags of ``settings``, in order (switches without a value)."""
    out: List[str] = []
    for s in settings:
        if s.flag is None or s.value is False:
            continue
        out.append(s.flag)
        if s.value is not True:
            out.append(str(s.value))
    return out


def _yaml_scalar(value: Value) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def yaml_text(settings: Sequence[Setting], header: Sequence[str], list_keys=("lr", "update_freq")) -> str:
    """The ``fairseq-hydra-train`` config of ``settings`` (``# @package _group_``, one block per
    group); ``header`` lines become comments at the top. Keys fairseq types as lists (``lr``,
    ``update_freq``) are written as one-element lists."""
    groups: Dict[str, List[str]] = {g: [] for g in GROUPS}
    for s in settings:
        if s.group not in groups:
            raise ValueError(f"unknown config group {s.group!r} for {s.flag or s.key}")
        scalar = _yaml_scalar(s.value)
        if s.key in list_keys:
            scalar = f"[{scalar}]"
        groups[s.group].append(f"  {s.key}: {scalar}")
    lines = ["# @package _group_", *(f"# {h}".rstrip() for h in header)]
    for group in GROUPS:
        if groups[group]:
            lines += ["", f"{group}:", *groups[group]]
    return "\n".join(lines) + "\n"


class RecipeError(ValueError):
    """An unknown task, dataset or method, or settings that do not go together; the message
    names what is accepted."""


def pretrained_settings(pretrained: Optional[str]) -> List[Setting]:
    """Start from a pre-trained model with ``--finetune-from-model``: fairseq loads it (and resets
    optimizer, scheduler, meters and data position) only when the save dir holds no
    checkpoint_last.pt, so a rerun resumes where the killed run stopped; and it refuses a path that
    does not exist (``--restore-file`` would start from random init). None or "" trains from the
    model the flags describe (random init)."""
    if not pretrained:
        return []
    return [flag("--finetune-from-model", pretrained, "checkpoint")]
