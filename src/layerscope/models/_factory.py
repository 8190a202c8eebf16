"""Registering, listing and creating models (after timm's ``_registry.py`` / ``_factory.py``).

Every model of the zoo lives in the shared registry :data:`layerscope.registry.MODELS`.
Factories take ``num_classes`` and ``in_channels`` plus their own keyword options.

Models of torchvision and timm resolve through a prefix, imported only when asked for:
``create_model("tv:resnet18")`` calls ``torchvision.models.get_model("resnet18", ...)`` and
``create_model("timm:resnet18")`` calls ``timm.create_model("resnet18", ...)``. Neither package
is needed for anything else; ``list_models()`` lists the registered models only.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from torch import nn

from layerscope.errors import ModelOptionError, ModelUnavailableError, OptionError
from layerscope.registry import MODELS

__all__ = [
    "create_model",
    "list_models",
    "register_model",
]

_PREFIXES = {"tv": "torchvision", "timm": "timm"}


def register_model(
    name: str | None = None, *, override: bool = False
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding a model factory to the shared registry under ``name``.

    The factory must accept ``num_classes`` and ``in_channels`` keywords.

    Example:
        >>> @register_model("tiny_doc_example")
        ... def tiny(*, num_classes=10, in_channels=3):
        ...     return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))
        >>> "tiny_doc_example" in list_models("tiny_*")
        True
        >>> _ = MODELS.remove("tiny_doc_example")  # keep the shared registry clean
    """
    return MODELS.register(name, override=override)


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of the registered models matching the ``fnmatch`` pattern.

    Example:
        >>> list_models("vgg1*")
        ['vgg11', 'vgg13', 'vgg16', 'vgg19']
    """
    return MODELS.list(pattern)


def _create_external(prefix: str, name: str, num_classes: int, in_channels: int, kwargs: dict):
    package = _PREFIXES[prefix]
    try:
        module = importlib.import_module(package)
    except Exception as error:  # ImportError, or a broken binary build of torchvision
        raise ModelUnavailableError(
            f"model '{prefix}:{name}' needs {package}, which cannot be imported here "
            f"({type(error).__name__}: {error}). Install {package} or pick a registered model: "
            f"{', '.join(list_models())}."
        ) from error
    if package == "timm":
        return module.create_model(name, num_classes=num_classes, in_chans=in_channels, **kwargs)
    if in_channels != 3:
        raise OptionError(
            f"torchvision model {name!r} takes 3 input channels, got in_channels={in_channels}; "
            f"use a registered model or timm (which adapts the stem)"
        )
    return importlib.import_module("torchvision.models").get_model(
        name, num_classes=num_classes, **kwargs
    )


def create_model(
    name: str, *, num_classes: int = 10, in_channels: int = 3, **kwargs: Any
) -> nn.Module:
    """Build the model registered as ``name`` (or ``tv:NAME`` / ``timm:NAME``).

    An unknown name suggests the closest registered ones; an unknown option names the
    factory's options.

    Example:
        >>> model = create_model("vgg11", num_classes=10, width=1 / 16)
        >>> model.features[0].out_channels
        4
        >>> create_model("resnet81")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        layerscope.errors.UnknownNameError: unknown model 'resnet81'. Did you mean 'resnet18', ...
    """
    prefix, sep, rest = name.partition(":")
    if sep and prefix in _PREFIXES:
        return _create_external(prefix, rest, num_classes, in_channels, kwargs)
    factory = MODELS.get(name)
    MODELS.check_options(name, kwargs, ModelOptionError)
    return factory(num_classes=num_classes, in_channels=in_channels, **kwargs)
