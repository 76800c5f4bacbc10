"""The plugin's changes to fairseq functions, made one way: wrap once, keep the original (as the
wrapper's ``__wrapped__``), and say what was changed (``PATCHES``, and the wrapper's docstring)."""

import functools
import inspect
from typing import Callable, Dict

MARK = "_r3f_wrapped"
# "module.Owner.name" -> what the wrapper changes, for every fairseq function the plugin wraps
PATCHES: Dict[str, str] = {}


def wrap_once(owner, name: str, make_wrapper: Callable[[Callable], Callable], why: str) -> bool:
    """Replace ``owner.name`` (a function of a module, or a method of a class) by
    ``make_wrapper(original)``, unless it is wrapped already; True when it was wrapped now."""
    original = getattr(owner, name)
    if getattr(original, MARK, False):
        return False
    wrapper = functools.update_wrapper(make_wrapper(original), original)  # name, doc, attributes, __wrapped__
    wrapper.__doc__ = f"{original.__doc__ or ''}\n\nWrapped by fairseq-r3f: {why}."
    setattr(wrapper, MARK, True)
    setattr(owner, name, wrapper)
    where = f"{owner.__name__ if inspect.ismodule(owner) else owner.__module__ + '.' + owner.__qualname__}.{name}"
    PATCHES[where] = why
    return True
