"""The one way the plugin changes fairseq functions: wrapped once, the original kept, and what
changed said."""

import types

import fairseq_r3f  # noqa: F401  (installs the plugin's wrappers)
from fairseq_r3f.patching import MARK, PATCHES, wrap_once


def test_wrap_once_keeps_the_original_and_says_why():
    owner = types.ModuleType("somewhere")
    owner.f = lambda x: x + 1
    original = owner.f

    def add_ten(inner):
        return lambda x: inner(x) + 10

    assert wrap_once(owner, "f", add_ten, "adds ten")
    assert owner.f(1) == 12 and owner.f.__wrapped__ is original and getattr(owner.f, MARK)
    assert not wrap_once(owner, "f", add_ten, "adds ten again")  # a second load changes nothing
    assert owner.f(1) == 12
    assert PATCHES["somewhere.f"] == "adds ten" and owner.f.__doc__.endswith("adds ten.")


def test_every_fairseq_function_the_plugin_changes_is_listed():
    from fairseq import checkpoint_utils, utils
    from fairseq.models.bart import BARTModel
    from fairseq.models.roberta import RobertaModel

    wrapped = [
        checkpoint_utils.load_checkpoint_to_cpu,
        utils.import_user_module,
        *(
            getattr(cls, name)
            for cls in (RobertaModel, BARTModel)
            for name in ("register_classification_head", "upgrade_state_dict_named")
        ),
    ]
    assert all(getattr(f, MARK, False) and callable(f.__wrapped__) for f in wrapped)
    assert {
        "fairseq.checkpoint_utils.load_checkpoint_to_cpu",
        "fairseq.utils.import_user_module",
        "fairseq.models.roberta.model.RobertaModel.register_classification_head",
        "fairseq.models.bart.model.BARTModel.upgrade_state_dict_named",
    } <= set(PATCHES)
