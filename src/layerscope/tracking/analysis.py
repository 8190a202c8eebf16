"""One pass of an already trained model over a dataset: per-layer statistics in a table."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
import torch
from torch import nn

from layerscope.errors import OptionError, OptionTypeError
from layerscope.tracking.modes import evaluation_mode
from layerscope.tracking.tracker import Tracker

__all__ = ["Forward", "analyze", "default_forward"]


#: ``forward(model, batch)``: how one batch of ``data`` goes through the model.
Forward = Callable[[nn.Module, Any], Any]


def _move(batch: Any, device: torch.device | None) -> Any:
    """``batch`` with its tensors (also inside tuples, lists and mappings) on ``device``."""
    if device is None:
        return batch
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {key: _move(value, device) for key, value in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_move(value, device) for value in batch)
    return batch


def _keywords_refused(model: nn.Module, keys: list[str]) -> list[str]:
    """The keys that ``model.forward`` takes no keyword for (none if it takes ``**kwargs``)."""
    try:
        parameters = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):  # no signature to read: let the call decide
        return []
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return []
    names = {p.name for p in parameters if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
    return [key for key in keys if key not in names]


def default_forward(model: nn.Module, batch: Any) -> Any:
    """Run one batch: a tensor as is; ``x`` of ``(x, y)``; a mapping's ``"input"``, or the
    mapping as keywords (``input_ids``, ``attention_mask``, ``labels``: the Hugging Face case).

    Example:
        >>> default_forward(nn.Linear(3, 1), {"input": torch.zeros(2, 3)}).shape
        torch.Size([2, 1])
        >>> default_forward(nn.Linear(3, 1), {"pixels": torch.zeros(2, 3), "label": 0})
        Traceback (most recent call last):
        ...
        layerscope.errors.OptionTypeError: analyze(): a batch is a mapping with keys ['pixels', 'label'], but Linear.forward takes no keyword 'pixels', 'label'. Say how a batch goes through the model with forward=, e.g. analyze(model, data, forward=lambda model, batch: model(batch['pixels']))
    """
    if isinstance(batch, (tuple, list)) and batch:
        return model(batch[0])
    if isinstance(batch, Mapping):
        if "input" in batch:
            return model(batch["input"])
        keys = [str(key) for key in batch]
        refused = _keywords_refused(model, keys)
        if refused or not keys:
            first = keys[0] if keys else "input"
            raise OptionTypeError(
                f"analyze(): a batch is a mapping with keys {keys}, but "
                f"{type(model).__name__}.forward takes no keyword "
                f"{', '.join(map(repr, refused or keys))}. Say how a batch goes through the "
                f"model with forward=, e.g. analyze(model, data, forward=lambda model, batch: "
                f"model(batch[{first!r}]))"
            )
        return model(**batch)
    return model(batch)


def analyze(
    model: nn.Module,
    data: Iterable[Any],
    *,
    forward: Forward | None = None,
    statistics: Sequence[str] | None = None,
    device: torch.device | str | None = None,
    **tracker_options: Any,
) -> pd.DataFrame:
    """Per-layer statistics of ``model``'s outputs over ``data``, in evaluation mode.

    Args:
        model: a trained (or untrained) network; every module's train/eval flag is restored.
        data: an iterable of batches (e.g. a ``DataLoader``): tensors, ``(inputs, targets)``
            pairs, dicts with an ``"input"`` key, or dicts of the model's keyword arguments
            (``input_ids``, ``attention_mask``, ...: a Hugging Face model's batches).
        forward: ``forward(model, batch)`` runs one batch through the model, for batches of
            another shape (default: :func:`default_forward`, as just described).
        statistics: statistic names (default: the Tracker's defaults).
        device: move inputs there first (default: leave them where they are).
        **tracker_options: :class:`~layerscope.tracking.options.TrackerOptions` (``delta``,
            ``include``, ``downsample``, ...).

    Returns:
        One row per recorded layer in forward order, a column per statistic, plus ``index``,
        ``type`` and ``features``.

    Example:
        >>> model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
        >>> batches = [torch.randn(32, 8) for _ in range(4)]
        >>> table = analyze(model, batches, statistics=["saturation", "intrinsic_dimension"])
        >>> list(table.index), list(table.columns)
        (['0', '2'], ['index', 'type', 'features', 'samples', 'saturation', 'intrinsic_dimension'])
        >>> int(table.loc["0", "samples"])
        128
        >>> pairs = [(x, 0) for x in batches]                  # another shape of batch
        >>> table = analyze(model, pairs, forward=lambda model, batch: model(batch[0] * 2))
        >>> int(table.loc["2", "samples"])
        128
    """
    device = torch.device(device) if device is not None else None
    if statistics is not None:
        tracker_options["statistics"] = statistics
    tracker = Tracker(model, weights=False, **tracker_options)
    try:
        with evaluation_mode(model), tracker.phase("analysis"):
            for batch in data:
                (forward or default_forward)(model, _move(batch, device))
        tracker.close()
    finally:
        tracker._abort()  # no-op after close(); removes hooks if a batch failed
    df = tracker.dataframe()
    rows = df[df.layer.notna() & (df.phase == "analysis")]
    if rows.empty:
        raise OptionError("analyze(): the model produced no recorded outputs; is `data` empty?")
    table = rows.pivot_table(index="layer", columns="statistic", values="value", aggfunc="last")
    layers = {info.name: info for info in tracker.layers}
    order = [name for name in layers if name in table.index]
    names = ["samples", *[s for s in tracker.options.statistics if s in table.columns]]
    table = table.reindex(order)[names + [c for c in table.columns if c not in names]]
    table.insert(0, "features", [layers[n].num_features for n in order])
    table.insert(0, "type", [layers[n].type for n in order])
    table.insert(0, "index", [layers[n].index for n in order])
    table.columns.name = None
    return table
