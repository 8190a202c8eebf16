"""Versions of the packages a result depends on, recorded in every run folder."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

_PACKAGES = ("layerscope", "torch", "numpy", "scipy", "scikit-learn", "pandas", "matplotlib")


def package_versions() -> dict[str, str]:
    """Python, platform and the versions of layerscope's main dependencies.

    Example:
        >>> "torch" in package_versions()
        True
    """
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions
