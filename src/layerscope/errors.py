"""Typed exceptions and warnings raised by layerscope.

Every error a user can cause subclasses ``ValueError`` or ``TypeError`` so that existing
``except ValueError`` code keeps working, and its message names the thing, the value, the rule
and the fix.
"""

from __future__ import annotations


class LayerTooWideError(ValueError):
    """A layer has more output features than a full covariance may hold.

    Raised before any memory is allocated; the message names the layer (when known), its width,
    the memory a covariance would need and how to proceed.
    """


class StateMismatchError(ValueError):
    """Two streaming statistics that cannot be merged (different widths, dtypes or options)."""


class NonFiniteBatchWarning(RuntimeWarning):
    """Batches containing NaN or inf were rejected and not folded into a statistic."""


class UnknownNameError(KeyError):
    """A name that is not in a registry; the message suggests the closest valid names.

    Subclasses ``KeyError`` because it is a failed lookup, but prints its message plainly.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class PhaseError(RuntimeError):
    """The tracker's epoch/phase calls happened in an order that cannot be right."""


class ConfigError(ValueError):
    """An experiment config that cannot run, found before anything trains.

    The message names the file (when known), the key path (``optimizer.lr``), the value, the rule
    and the fix.
    """


class ConfigKeyError(ConfigError):
    """An unknown key (with the closest valid key suggested) or a missing required key."""


class ConfigTypeError(ConfigError, TypeError):
    """A config value of the wrong type; names the key, the value and the expected type."""


class DatasetNotFoundError(FileNotFoundError, ValueError):
    """A dataset's files are not on disk; the message says which files to put in which folder."""


class DatasetFormatError(ValueError):
    """A dataset file exists but is not in its format (bad magic number, truncated, wrong keys)."""
