"""Loading the plugin is all or nothing, and a clash with another copy of its names is an error
that names the clash and the cure.

The authors' reference (``fairseq/examples/rxf/rxf_src``) registers ``sentence_prediction_r3f`` and
``label_smoothed_cross_entropy_r3f`` too. fairseq's registries refuse a second registration with
"Cannot register duplicate criterion (...)", which names neither the cause nor the cure, and a
plugin that has already patched torch and fairseq by then is left half-installed. So the plugin
checks its names before it changes anything, and rewrites fairseq's error when a later
``--user-dir`` brings the same names.
"""

import os
import re
import sys

from .patching import wrap_once

# Every name the plugin registers with fairseq, by registry.
PROVIDED = {
    "criterion": ("sentence_prediction_r3f", "label_smoothed_cross_entropy_r3f", "sentence_prediction_smart"),
    "task": ("sentence_prediction_adv", "sentence_prediction_probe"),
    "bpe": ("wordpiece",),
}
CURE = (
    "fairseq-r3f provides these names itself: load one of the two, e.g. drop the reference's "
    "--user-dir (fairseq/examples/rxf/rxf_src) when fine-tuning with fairseq-r3f."
)


class PluginClashError(ImportError):
    """Another module registers a name this plugin provides."""


def _registries():
    from fairseq.criterions import CRITERION_REGISTRY
    from fairseq.data.encoders import BPE_REGISTRY
    from fairseq.tasks import TASK_REGISTRY

    return {"criterion": CRITERION_REGISTRY, "task": TASK_REGISTRY, "bpe": BPE_REGISTRY}


def refuse_registered_names() -> None:
    """Before the plugin changes anything: none of its names may be registered already."""
    registries = _registries()
    for kind, names in PROVIDED.items():
        for name in names:
            owner = registries[kind].get(name)
            if owner is not None:
                module = sys.modules.get(owner.__module__)
                where = getattr(module, "__file__", None) or owner.__module__
                raise PluginClashError(
                    f"fairseq-r3f cannot be loaded: the {kind} {name!r} is already registered by "
                    f"{owner.__module__} ({where}). {CURE}"
                )


def refuse_repeated_user_dir(argv=None) -> None:
    """fairseq keeps only the last of several ``--user-dir`` flags and loads nothing of the others.
    This runs when the plugin is the last (the one fairseq imports); when it is not, fairseq never
    imports it, and the package's Hydra plugin (``hydra_plugins/fairseq_r3f_user_dirs``) refuses."""
    argv = sys.argv if argv is None else argv
    dirs = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--user-dir"]
    dirs += [a.split("=", 1)[1] for a in argv if a.startswith("--user-dir=")]
    if len({os.path.abspath(d) for d in dirs}) > 1:
        raise ValueError(
            f"--user-dir is given {len(dirs)} times ({', '.join(dirs)}): fairseq loads only the "
            "last one. Pass a single --user-dir."
        )


_DUPLICATE = re.compile(r"Cannot register duplicate (\w+) \(([^)]+)\)")


def explain_clashes_of_later_user_dirs() -> None:
    """Wrap fairseq's ``import_user_module`` so that a later ``--user-dir`` registering one of the
    plugin's names fails with a message naming both sides and the cure."""
    from fairseq import utils

    def wrapper(original):
        def import_user_module(args):
            try:
                return original(args)
            except ValueError as e:
                match = _DUPLICATE.search(str(e))
                if match and any(match.group(2) in names for names in PROVIDED.values()):
                    raise PluginClashError(
                        f"--user-dir {getattr(args, 'user_dir', None)} registers the {match.group(1)} "
                        f"{match.group(2)!r}, which fairseq-r3f (already loaded) provides. {CURE}"
                    ) from e
                raise

        return import_user_module  # fairseq's ``memo`` of loaded folders is carried over with its attributes

    wrap_once(
        utils,
        "import_user_module",
        wrapper,
        "a later --user-dir registering one of the plugin's names fails naming both sides",
    )
