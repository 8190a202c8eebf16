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

__all__ = ["imported", "require"]


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
