"""Every flag the plugin adds, with its help text and default: ``python -m fairseq_r3f --flags``.

``fairseq-train --help`` cannot list them: fairseq parses its command line twice, and ``--help`` is
answered by the first parse, before the flags of the chosen ``--task``, ``--criterion`` and
``--arch`` are added to the parser. It lists the plugin's criterion, task and BPE names among the
choices, but no flag of any task, criterion or model, fairseq's own included.
"""

import dataclasses
import enum
from typing import List

from .registration import PROVIDED

PACKAGE = __name__.split(".")[0]
WHY_NOT_HELP = (
    "fairseq-train --help lists none of these: it answers --help at the first of its two parses of the "
    "command line, before the flags of --task, --criterion and --arch are added."
)
# fairseq's flag whose meaning the plugin changes (it adds no model flag of its own)
CHANGED_MODEL_FLAGS = {
    "spectral_norm_classification_head": (
        "fairseq's model flag of RoBERTa, XLM-R and BART, default off; with the plugin every Linear of "
        "the classification head is spectrally normalised, so the head is 1-Lipschitz (R4F), and its "
        "checkpoints resume and reload (fairseq alone normalises out_proj only)"
    ),
}


def _registered_dataclass(kind: str, name: str):
    if kind == "task":
        from fairseq.tasks import TASK_DATACLASS_REGISTRY

        return TASK_DATACLASS_REGISTRY[name]
    from fairseq.registry import REGISTRIES

    return REGISTRIES[kind]["dataclass_registry"][name]


def plugin_fields(config_cls) -> List[dataclasses.Field]:
    """The fields of ``config_cls`` that the plugin adds: those no fairseq dataclass among its bases
    declares (a task of the plugin extends fairseq's ``sentence_prediction``, whose flags it keeps)."""
    inherited = set()
    for base in config_cls.__mro__[1:]:
        if dataclasses.is_dataclass(base) and not base.__module__.startswith(PACKAGE + "."):
            inherited.update(f.name for f in dataclasses.fields(base))
    return [f for f in dataclasses.fields(config_cls) if f.name not in inherited]


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def _fairseq_base(config_cls):
    """The name of the fairseq config ``config_cls`` extends, whose flags it keeps; None if none."""
    for base in config_cls.__mro__[1:]:
        if (
            dataclasses.is_dataclass(base)
            and not base.__module__.startswith(PACKAGE + ".")
            and base.__name__ != "FairseqDataclass"
        ):
            return base.__name__
    return None


def _usage(field: dataclasses.Field) -> str:
    kind = field.type
    if kind is bool:
        return flag_name(field.name)
    if isinstance(kind, enum.EnumMeta):
        return f"{flag_name(field.name)} {{{','.join(str(e.value) for e in kind)}}}"
    name = getattr(kind, "__name__", None) or str(kind).replace("typing.", "")
    return f"{flag_name(field.name)} {name.upper()}"


def _default(field: dataclasses.Field):
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "required"
    if isinstance(value, enum.Enum):
        value = value.value
    if field.type is bool:
        return "on" if value else "off"
    return repr(value)


def listing() -> str:
    """The plugin's flags by criterion, task and BPE (``PROVIDED``), then fairseq's flags it changes."""
    lines = [WHY_NOT_HELP, ""]
    for kind, names in PROVIDED.items():
        for name in names:
            config_cls = _registered_dataclass(kind, name)
            base = _fairseq_base(config_cls)
            extra = f" (and the flags of fairseq's {base})" if base else ""
            lines.append(f"--{kind} {name}{extra}")
            for field in plugin_fields(config_cls):
                lines.append(f"  {_usage(field)}  (default: {_default(field)})")
                lines.append(f"      {field.metadata.get('help', '')}")
            lines.append("")
    lines.append("model: fairseq's flags whose meaning the plugin changes")
    for name, help_text in CHANGED_MODEL_FLAGS.items():
        lines.append(f"  {flag_name(name)}  (default: off)")
        lines.append(f"      {help_text}")
    return "\n".join(lines) + "\n"
