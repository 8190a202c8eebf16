"""One pass of an already trained model over a dataset: per-layer statistics in a table."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
import torch
from torch import nn

from layerscope.errors import OptionError
from layerscope.tracking.modes import evaluation_mode
from layerscope.tracking.tracker import Tracker

__all__ = ["analyze"]


def _inputs(batch: Any) -> Any:
    """The model input of a batch: ``x`` of ``(x, y)`` pairs, else the batch itself."""
    if isinstance(batch, (tuple, list)) and batch:
        return batch[0]
    if isinstance(batch, dict) and "input" in batch:
        return batch["input"]
    return batch


def _to(x: Any, device: torch.device | None) -> Any:
    return x.to(device) if device is not None and isinstance(x, torch.Tensor) else x


def analyze(
    model: nn.Module,
    data: Iterable[Any],
    *,
    statistics: Sequence[str] | None = None,
    device: torch.device | str | None = None,
    **tracker_options: Any,
) -> pd.DataFrame:
    """Per-layer statistics of ``model``'s outputs over ``data``, in evaluation mode.

    Args:
        model: a trained (or untrained) network; every module's train/eval flag is restored.
        data: an iterable of batches: tensors, ``(inputs, targets)`` pairs, or dicts with an
            ``"input"`` key (e.g. a ``DataLoader``).
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
    """
    device = torch.device(device) if device is not None else None
    if statistics is not None:
        tracker_options["statistics"] = statistics
    tracker = Tracker(model, weights=False, **tracker_options)
    try:
        with evaluation_mode(model), tracker.phase("analysis"):
            for batch in data:
                model(_to(_inputs(batch), device))
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
