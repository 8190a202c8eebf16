"""What the Tracker records and how: :class:`TrackerOptions`, the one place its options are spelled.

The same dataclass is the Tracker's options (``Tracker(model, delta=0.9)`` or
``Tracker(model, options=TrackerOptions(delta=0.9))``), the ``tracker`` section of an experiment
config (``tracker.delta = 0.9``; :mod:`layerscope.lab.config` checks it with the rules declared
here), what ``run.json`` records, and what the trainer hands to its Tracker. A field's metadata
carries its rule (``rule``/``test``) for both the Python check and the config check, and marks
options that do not change a run's results (``technical``: left out of a config's run id).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import torch
from torch import nn

from layerscope.errors import OptionError, OptionTypeError
from layerscope.stats.covariance import DEFAULT_MAX_FEATURES
from layerscope.stats.spectrum import DEFAULT_DELTA, DEFAULT_STATISTICS, check_recordable
from layerscope.store.sinks import SINKS, Sink

__all__ = ["TrackerOptions", "rule"]


def rule(text: str, test: Callable[[Any], bool], **more: Any) -> dict[str, Any]:
    """Field metadata: ``test(value)`` must hold for a value that is not None, else the error
    says the value "must be ``text``"."""
    return {"rule": text, "test": test, **more}


def _sizes_at_least_one(value) -> bool:
    return all(v >= 1 for v in (value if isinstance(value, tuple) else (value,)))


_TECHNICAL = {"technical": True}


@dataclass(frozen=True)
class TrackerOptions:
    """Options of the :class:`~layerscope.tracking.Tracker`; defaults follow Delve and the
    dissertation (SPEC C1-C3).

    Example:
        >>> options = TrackerOptions.create(delta=0.9, exclude=["classifier.*"])
        >>> options.delta, options.exclude
        (0.9, ('classifier.*',))
        >>> TrackerOptions.create(detla=0.9)
        Traceback (most recent call last):
        ...
        layerscope.errors.OptionTypeError: unknown Tracker option 'detla'. Did you mean 'delta'? ...
    """

    # Registered scalar spectrum statistics written per layer and phase (layerscope list
    # statistics).
    statistics: tuple[str, ...] = DEFAULT_STATISTICS
    # Fraction of variance for intrinsic dimension and saturation (dissertation 8.1: 0.99).
    delta: float = field(default=DEFAULT_DELTA, metadata=rule("in (0, 1]", lambda v: 0 < v <= 1))
    # Layers to record: fnmatch name patterns ("features.*") or module types; None records every
    # convolution, linear, recurrent and attention layer.
    include: tuple[str | type[nn.Module], ...] | None = None
    # Layers to leave out (name patterns or types).
    exclude: tuple[str | type[nn.Module], ...] = ()
    # "mixed": float32 batch Gram products of shifted samples, float64 accumulation (the same
    # saturation and intrinsic dimension as float64, covariance within 1e-6 relative, at about
    # half the cost); "float64" forms every product in float64 as the dissertation did.
    precision: Literal["float64", "mixed"] = "mixed"
    # Where covariances live; None: beside each layer's output.
    device: str | torch.device | None = field(default=None, metadata=_TECHNICAL)
    # Shrink feature maps to at most this spatial size before accumulating (Delve); None keeps
    # every position, as the dissertation's experiments do.
    downsample: int | tuple[int, ...] | None = field(
        default=None, metadata=rule(">= 1", _sizes_at_least_one)
    )
    downsample_method: Literal["adaptive_avg", "nearest", "bilinear"] = "adaptive_avg"
    # Record every n-th batch only (Delve's option for long epochs).
    every_n_batches: int = field(default=1, metadata=rule(">= 1", lambda v: v >= 1))
    # Record at most this many batches per phase and epoch; None records all.
    max_batches: int | None = field(default=None, metadata=rule(">= 1", lambda v: v >= 1))
    # Cap the samples (rows / positions) one batch contributes per layer; None keeps all.
    max_samples: int | None = field(default=None, metadata=rule(">= 2", lambda v: v >= 2))
    # Refuse layers wider than this before any memory is allocated: a d x d float64 covariance
    # takes 8 d^2 bytes (8192: 512 MiB).
    max_features: int = field(
        default=DEFAULT_MAX_FEATURES, metadata=rule(">= 1", lambda v: v >= 1, **_TECHNICAL)
    )
    # Record relative weight change and distance from initialisation per epoch (SPEC C8).
    weights: bool = True
    # Where records go: registered sink names (layerscope list sinks) or sink objects; None:
    # ["sqlite"] with a run folder, else memory only. With a run folder and no readable format
    # among them (e.g. ["tensorboard"]), "sqlite" is added so that load() finds the records.
    sinks: tuple[str | Sink, ...] | None = field(default=None, metadata=_TECHNICAL)

    # ------------------------------------------------------------------ building
    @classmethod
    def create(cls, options: TrackerOptions | None = None, **values: Any) -> TrackerOptions:
        """``options`` (default: the defaults) with ``values`` replaced, normalised (lists become
        tuples, one name a one-element tuple) and checked."""
        base = options if options is not None else cls()
        if not isinstance(base, cls):
            raise OptionTypeError(
                f"options must be a TrackerOptions, got {type(base).__name__}; pass single "
                f"options as keywords instead (Tracker(model, delta=0.9))"
            )
        names = [f.name for f in fields(cls)]
        for name in values:
            if name not in names:
                close = difflib.get_close_matches(name, names, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise OptionTypeError(
                    f"unknown Tracker option {name!r}.{hint} Options: {', '.join(names)}."
                )
        normalised = {k: _normalise(v, cls._hints()[k]) for k, v in values.items()}
        return dataclasses.replace(base, **normalised).check()

    @classmethod
    def _hints(cls) -> dict[str, Any]:
        return typing.get_type_hints(cls)

    def check(self) -> TrackerOptions:
        """Raise a clear error for an option that cannot work; returns self."""
        hints = self._hints()
        for f in fields(self):
            value = getattr(self, f.name)
            if not _conforms(value, hints[f.name]):
                raise OptionTypeError(
                    f"Tracker option {f.name}={value!r} should be {_describe(hints[f.name])}"
                )
            test = f.metadata.get("test")
            if test is not None and value is not None and not test(value):
                raise OptionError(f"Tracker option {f.name}={value!r} must be {f.metadata['rule']}")
        check_recordable(self.statistics)
        for spec in self.sinks or ():
            if isinstance(spec, str):
                SINKS.get(spec)  # an unknown name fails here, with suggestions
        return self

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON-able data (module types and sink objects by name), for run.json.

        Example:
            >>> TrackerOptions(include=(nn.Conv2d,)).to_dict()["include"]
            ['Conv2d']
        """
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = [_name(v) for v in value]
            elif value is not None and not isinstance(value, (bool, int, float, str)):
                value = str(value)
            out[f.name] = value
        return out


def _name(value: Any) -> Any:
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return type(value).__name__


def _normalise(value: Any, annotation: Any) -> Any:
    """Lists as tuples and a lone name as a one-element tuple, for tuple-typed options."""
    wants_tuple = any(typing.get_origin(a) is tuple for a in _members(annotation))
    if not wants_tuple:
        return value
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, (str, type)) or (isinstance(value, Sink) and not isinstance(value, tuple)):
        return (value,)
    return value


def _members(annotation: Any) -> tuple:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _conforms(value: Any, annotation: Any) -> bool:
    """Whether a Python value has the annotated type (the annotations used in option classes)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin is Literal:
        return value in typing.get_args(annotation)
    if origin is tuple:
        args = typing.get_args(annotation)
        return isinstance(value, tuple) and all(_conforms(v, args[0]) for v in value)
    if origin is type:
        return isinstance(value, type) and issubclass(value, typing.get_args(annotation)[0])
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True  # pragma: no cover - annotations not used by option classes


def _describe(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "None"
    if origin is Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(annotation)))
    if origin is tuple:
        return f"a tuple (or list) of {_describe(typing.get_args(annotation)[0])}"
    if origin is type:
        return "a module type"
    return getattr(annotation, "__name__", str(annotation))
