"""Checks on what a Tracker is given: a run folder free for its records, user scalars that are
numbers. Each error names the fix."""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

from layerscope.errors import OptionError, OptionTypeError
from layerscope.store.runs import stored_epochs

__all__ = ["refuse_existing_records", "scalar_values"]


def refuse_existing_records(run_dir: str | os.PathLike, run: str, epoch: int) -> None:
    """A run folder must not already hold records of ``run`` from ``epoch`` on.

    Example:
        >>> import tempfile
        >>> refuse_existing_records(tempfile.mkdtemp(), "r", 0)   # an empty folder is free
    """
    count, first, last = stored_epochs(run_dir, run, epoch)
    if count:
        raise OptionError(
            f"run folder {run_dir} already holds {count} records of run "
            f"{run!r} from epoch {first} to {last}. Use a new run_dir, delete the "
            f"folder, pass start_epoch={last + 1} to continue after them, or remove them "
            f"first (SQLiteSink(path).discard_from({run!r}, {epoch}))."
        )


def scalar_values(scalars: Mapping[str, object]) -> dict[str, float]:
    """User scalars as floats (numbers or one-element tensors).

    Example:
        >>> scalar_values({"loss": torch.tensor(0.5), "accuracy": 1})
        {'loss': 0.5, 'accuracy': 1.0}
    """
    values = {}
    for name, value in scalars.items():
        try:
            values[name] = float(value.item() if isinstance(value, torch.Tensor) else value)
        except (TypeError, ValueError, RuntimeError):
            raise OptionTypeError(
                f"scalar {name!r} must be a number or a one-element tensor, got "
                f"{type(value).__name__}"
            ) from None
    return values
