"""Importing the training frameworks on first use, with an error that names the extra to install.

``import layerscope`` and ``import layerscope.integrations`` load no framework: importing
``lightning`` alone takes seconds. A callback imports its framework when it is created.

Example:
    >>> require("no_such_framework", extra="lightning", what="this callback")
    Traceback (most recent call last):
    ...
    layerscope.errors.MissingDependencyError: this callback needs the no_such_framework package (No module named 'no_such_framework'); install it with pip install 'layerscope[lightning]' (after torch, see the README)
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from layerscope.errors import MissingDependencyError

__all__ = ["imported", "joined_class", "require"]


def require(module: str, *, extra: str, what: str) -> ModuleType:
    """Import ``module``; when it is missing, say which extra of layerscope installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        package = module.split(".")[0]
        raise MissingDependencyError(
            f"{what} needs the {package} package ({error}); install it with "
            f"pip install 'layerscope[{extra}]' (after torch, see the README)"
        ) from None


def imported(module: str) -> ModuleType | None:
    """``module`` if this process has already imported it, else ``None`` (imports nothing).

    Example:
        >>> imported("sys") is sys, imported("no_such_framework")
        (True, None)
    """
    return sys.modules.get(module)


_JOINED: dict[tuple[type, ...], type] = {}


def joined_class(cls: type, bases: tuple[type, ...]) -> type:
    """A subclass of ``cls`` and of the framework's ``bases`` (made once, then reused).

    The callbacks are defined without their framework, so that importing them imports none;
    ``cls.__new__`` swaps in this class when an instance is made. It is set on ``cls``'s module
    under its own name, so that pickle (Lightning's ``ddp_spawn``) finds it.

    Example:
        >>> class Base: ...
        >>> class Callback: ...
        >>> joined = joined_class(Callback, (Base,))
        >>> issubclass(joined, Callback) and issubclass(joined, Base), joined.__name__
        (True, 'Callback_Base')
    """
    key = (cls, *bases)
    joined = _JOINED.get(key)
    if joined is None:
        name = "_".join([cls.__name__, *(base.__module__.split(".")[0] for base in bases)])
        if any(base.__module__.split(".")[0] == cls.__module__.split(".")[0] for base in bases):
            name = "_".join([cls.__name__, *(base.__name__ for base in bases)])
        joined = type(name, (cls, *bases), {"__module__": cls.__module__})
        joined.__qualname__ = name
        module = sys.modules.get(cls.__module__)
        if module is not None:
            setattr(module, name, joined)
        _JOINED[key] = joined
    return joined
