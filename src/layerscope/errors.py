"""Every exception and warning layerscope raises, under one base class each.

A mistake a user can make raises a subclass of :class:`LayerscopeError`, and also of the builtin
it resembles (``ValueError``, ``TypeError``, ``KeyError``, ``FileNotFoundError``), so that
existing ``except ValueError`` code keeps working. Its message names the thing, the value, the
rule and the fix, in the syntax of where the user is (a config key, a command-line flag, a
Python keyword). The command line reports a :class:`LayerscopeError` without a traceback, any
other exception (a bug) with its traceback.

The fix a message gives comes from :func:`fix` (with :func:`user_context` and
:func:`toml_lines`, at the end of this module; not in ``__all__``, which lists the exceptions):
config lines, flags or keywords, for where the user is.

Warnings derive from :class:`LayerscopeWarning`, so ``warnings.simplefilter("ignore",
LayerscopeWarning)`` silences all of them.

Example:
    >>> from layerscope.errors import LayerscopeError, OptionError
    >>> try:
    ...     raise OptionError("delta must be in (0, 1], got 2")
    ... except ValueError as error:   # also a ValueError
    ...     isinstance(error, LayerscopeError)
    True
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Iterator
from typing import Any, Literal

__all__ = [
    "ConfigError",
    "ConfigKeyError",
    "ConfigTypeError",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "DegenerateInputError",
    "FewSamplesWarning",
    "LatentsError",
    "LayerSelectionError",
    "LayerTooWideError",
    "LayerscopeError",
    "LayerscopeWarning",
    "MissingDependencyError",
    "ModelOptionError",
    "ModelUnavailableError",
    "NonFiniteBatchWarning",
    "OptionError",
    "OptionTypeError",
    "PhaseError",
    "ProbeSettingsError",
    "ProjectionError",
    "ReceptiveFieldError",
    "RunFolderError",
    "SimilarityInputError",
    "StateMismatchError",
    "StoreError",
    "TooFewSamplesError",
    "TraceError",
    "UndefinedSimilarityWarning",
    "UnknownNameError",
]


class LayerscopeError(Exception):
    """Base class of every error a user of layerscope can cause."""


class LayerscopeWarning(UserWarning):
    """Base class of every warning layerscope issues."""


# --------------------------------------------------------------------------- general
class OptionError(LayerscopeError, ValueError):
    """An argument or option whose value cannot work (out of range, wrong combination)."""


class OptionTypeError(LayerscopeError, TypeError):
    """An argument or option of the wrong type."""


class UnknownNameError(LayerscopeError, KeyError, ValueError):
    """A name that is not in a registry; the message suggests the closest valid names.

    A ``KeyError`` (a failed lookup) and a ``ValueError`` (a bad value for an option), which
    prints its message plainly.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(LayerscopeError, ImportError):
    """An optional package is not installed; the message names the extra that installs it."""


class RunFolderError(LayerscopeError, FileNotFoundError):
    """A run folder, store or checkpoint that is not there (or not what was expected)."""


class StoreError(LayerscopeError, ValueError):
    """A store file that exists but cannot be read or written as a layerscope store."""


# --------------------------------------------------------------------------- numerics and tracking
class StateMismatchError(OptionError):
    """Two streaming statistics that cannot be merged (different widths, dtypes or options)."""


class LayerTooWideError(OptionError):
    """A layer has more output features than a full covariance may hold.

    Raised before any memory is allocated; the message names the layer (when known), its width,
    the memory a covariance would need and how to proceed.
    """


class LayerSelectionError(OptionError):
    """include/exclude selected nothing, or named something that is not there."""


class PhaseError(LayerscopeError, RuntimeError):
    """The tracker's epoch/phase calls happened in an order that cannot be right."""


# --------------------------------------------------------------------------- experiments
class ConfigError(LayerscopeError, ValueError):
    """An experiment config that cannot run, found before anything trains.

    The message names the file (when known), the key path (``optimizer.lr``), the value, the rule
    and the fix.
    """


class ConfigKeyError(ConfigError):
    """An unknown key (with the closest valid key suggested) or a missing required key."""


class ConfigTypeError(ConfigError, TypeError):
    """A config value of the wrong type; names the key, the value and the expected type."""


class DatasetNotFoundError(LayerscopeError, FileNotFoundError, ValueError):
    """A dataset's files are not on disk; the message says which files to put in which folder."""


class DatasetFormatError(LayerscopeError, ValueError):
    """A dataset file exists but is not in its format (bad magic number, truncated, wrong keys)."""


class ModelOptionError(LayerscopeError, TypeError):
    """A model factory was given a keyword option it does not have."""


class ModelUnavailableError(LayerscopeError, ValueError):
    """A ``tv:`` / ``timm:`` model was asked for but that package cannot be imported."""


# --------------------------------------------------------------------------- analyses
class TraceError(LayerscopeError, ValueError):
    """The model could not be run on the example input (wrong size, channels, ...)."""


class ReceptiveFieldError(LayerscopeError, ValueError):
    """A receptive-field analysis was asked for something it cannot do (bad option, no border)."""


class SimilarityInputError(LayerscopeError, ValueError):
    """Activation matrices that cannot be compared (shape, sample count, NaN, option)."""


class TooFewSamplesError(SimilarityInputError):
    """Too few samples for a CCA-type measure: correlations of 1 would follow from counting."""


class DegenerateInputError(SimilarityInputError):
    """A representation with no variance (or no estimable variance): similarity is undefined."""


class LatentsError(LayerscopeError, ValueError):
    """A reduction, a layer output or a latents folder that cannot be used as asked."""


class ProbeSettingsError(LayerscopeError, ValueError):
    """A probe option or input that cannot work (bad C, too few classes, shape mismatch)."""


class ProjectionError(LayerscopeError, ValueError):
    """A PCA layer or projected network that cannot project: no samples seen yet, a layer the
    model never called, a loader that yields nothing, or sweeps that cannot be compared."""


# --------------------------------------------------------------------------- warnings
class NonFiniteBatchWarning(LayerscopeWarning, RuntimeWarning):
    """Batches containing NaN or inf were rejected and not folded into a statistic."""


class FewSamplesWarning(LayerscopeWarning):
    """Few samples per kept direction: CCA-type values are inflated even for unrelated data."""


class UndefinedSimilarityWarning(LayerscopeWarning):
    """Some entries of a similarity matrix are undefined (NaN): a representation had no variance."""


# --------------------------------------------------------------------------- fixes in messages
# The same mistake can be made in Python (``Tracker(model, max_features=...)``), in a config
# file (``[tracker]`` / ``max_features = ...``) or on the command line (``--max-batches 5``).
# Code that knows where the user is says so with ``user_context`` (the trainer of configured
# runs: "config"; the ``layerscope`` command: "cli"), and a message asks ``fix`` for the variant
# of that place. Python is the default; a place without its own variant falls back to the
# config's lines (the command line runs configs), then to Python.

Where = Literal["python", "config", "cli"]
_WHERE: contextvars.ContextVar[Where] = contextvars.ContextVar("layerscope_where", default="python")


def where() -> Where:
    """Where the user is now: ``"python"`` (default), ``"config"`` or ``"cli"``."""
    return _WHERE.get()


@contextlib.contextmanager
def user_context(place: Where) -> Iterator[None]:
    """Within the block, messages give their fix for ``place``.

    Example:
        >>> with user_context("cli"):
        ...     where()
        'cli'
        >>> where()
        'python'
    """
    if place not in ("python", "config", "cli"):
        raise OptionError(f"place must be 'python', 'config' or 'cli', got {place!r}")
    token = _WHERE.set(place)
    try:
        yield
    finally:
        _WHERE.reset(token)


def fix(*, python: str, config: str | None = None, cli: str | None = None) -> str:
    """The variant of a fix for where the user is (fallbacks: see the comment above).

    Example:
        >>> print(fix(python="Tracker(model, max_features=9000)",
        ...           config=toml_lines("tracker.max_features", 9000)))
        Tracker(model, max_features=9000)
        >>> with user_context("config"):
        ...     print(fix(python="Tracker(model, max_features=9000)",
        ...               config=toml_lines("tracker.max_features", 9000)))
        in the config (its [tracker] table, or a new one at the end):
            [tracker]
            max_features = 9000
    """
    place = where()
    if place == "cli" and cli is not None:
        return cli
    if place in ("cli", "config") and config is not None:
        return config
    return python


def toml_value(value: Any) -> str:
    """A value as TOML writes it: strings quoted, lists in brackets, tables inline.

    Example:
        >>> toml_value(["fc", 2]), toml_value(True), toml_value({"root": "data"})
        ('["fc", 2]', 'true', '{root = "data"}')
    """
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def toml_lines(key: str, value: Any, **same_table: Any) -> str:
    """The config lines that set dotted ``key`` to ``value`` (and each of ``same_table``'s keys of
    the same table to its value), in its table, indented as a block (TOML ignores the
    indentation, so the block pastes as it is).

    Example:
        >>> print(toml_lines("checkpoints.keep", "all"))
        in the config (its [checkpoints] table, or a new one at the end):
            [checkpoints]
            keep = "all"
        >>> print(toml_lines("executor.name", "processes", jobs=2))
        in the config (its [executor] table, or a new one at the end):
            [executor]
            name = "processes"
            jobs = 2
        >>> print(toml_lines("epochs", 3))
        at the top of the config (before any [table]):
            epochs = 3
    """
    *tables, name = key.split(".")
    line = "\n".join(f"    {k} = {toml_value(v)}" for k, v in {name: value, **same_table}.items())
    if not tables:
        return f"at the top of the config (before any [table]):\n{line}"
    table = ".".join(tables)
    return f"in the config (its [{table}] table, or a new one at the end):\n    [{table}]\n{line}"
