"""Position probes: one probe per feature-map position, as heatmaps (dissertation 9.3, fig. 54).

A ``pos`` extraction (``reductions=["pos8"]``) keeps, for an at most 8 x 8 grid of positions of
every layer's feature map, the channel vector at that position; :func:`train_probes` then trains
one probe per position. Figure 54 plots each position's probe test accuracy relative to the
model's test accuracy: in early layers the centre beats the borders (it integrates more of the
image), from the border layer on the positions become alike (the "compressing stage").

:func:`position_maps` turns the results into one :class:`PositionMap` per layer,
:func:`save_position_maps` / :func:`load_position_maps` keep them as JSON in the run folder, and
:func:`layerscope.report.positions.position_heatmaps` draws them.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from layerscope.errors import LatentsError
from layerscope.store.atomic import atomic_write_text

__all__ = [
    "PositionMap",
    "load_position_maps",
    "position_maps",
    "save_position_maps",
]


@dataclass(frozen=True)
class PositionMap:
    """Probe accuracies of one layer on a grid of positions.

    Attributes:
        layer, index: the layer's name and forward index.
        rows, columns: the feature-map indices of the grid's rows and columns (a 1-D map has
            one row, index 0).
        train_acc, test_acc: (len(rows), len(columns)) accuracies.
        model_test_acc: the model's test accuracy (None if unknown).
    """

    layer: str
    index: int
    rows: tuple[int, ...]
    columns: tuple[int, ...]
    train_acc: np.ndarray
    test_acc: np.ndarray
    model_test_acc: float | None = None

    @property
    def relative(self) -> np.ndarray:
        """Test accuracy relative to the model's (figure 54); NaN when the model's is unknown."""
        if not self.model_test_acc:
            return np.full_like(self.test_acc, math.nan)
        return self.test_acc / self.model_test_acc

    def to_dict(self) -> dict:
        return {
            "layer": self.layer,
            "index": self.index,
            "rows": list(self.rows),
            "columns": list(self.columns),
            "train_acc": self.train_acc.tolist(),
            "test_acc": self.test_acc.tolist(),
            "model_test_acc": self.model_test_acc,
        }

    @classmethod
    def from_dict(cls, data: dict) -> PositionMap:
        return cls(
            data["layer"],
            data["index"],
            tuple(data["rows"]),
            tuple(data["columns"]),
            np.asarray(data["train_acc"], dtype=float),
            np.asarray(data["test_acc"], dtype=float),
            data.get("model_test_acc"),
        )


def position_maps(results) -> dict[str, PositionMap]:
    """Per-layer heatmaps from the :class:`~layerscope.probes.results.ProbeResults` of a
    ``pos`` extraction (layers in forward order). 3-D maps keep their first two axes' grid and
    average over the rest.

    Example:
        >>> from layerscope.probes.results import ProbeResult, ProbeResults, ProbeSettings
        >>> found = [ProbeResult("c", 0, 8, 1.0, 0.5 + 0.1 * i, 5, True, "gradient", 0.1,
        ...                      position=(r, c)) for i, (r, c) in
        ...          enumerate([(0, 0), (0, 4), (4, 0), (4, 4)])]
        >>> maps = position_maps(ProbeResults("run", "pos2", ProbeSettings(), tuple(found),
        ...                                   {"test": 0.8}))
        >>> maps["c"].test_acc.round(2).tolist(), maps["c"].columns
        ([[0.5, 0.6], [0.7, 0.8]], (0, 4))
        >>> float(maps["c"].relative[1, 1])
        1.0
    """
    by_layer: dict[str, list] = {}
    for result in results.results:
        if result.position is None:
            raise LatentsError(
                f"probe results of reduction {results.reduction!r} are whole-layer probes; "
                f"position maps need a pos extraction (reductions=['pos8'])"
            )
        by_layer.setdefault(result.layer, []).append(result)
    maps = {}
    for layer, found in by_layer.items():
        # (row, column) per probe: a 1-D map is one row, a dense output one cell, and axes
        # beyond the second are averaged over
        keys = [_cell(tuple(r.position)) for r in found]
        rows = tuple(sorted({k[0] for k in keys}))
        columns = tuple(sorted({k[1] for k in keys}))
        sums = np.zeros((2, len(rows), len(columns)))
        counts = np.zeros((len(rows), len(columns)))
        for result, (row, column) in zip(found, keys, strict=True):
            i, j = rows.index(row), columns.index(column)
            sums[:, i, j] += (result.train_acc, result.test_acc)
            counts[i, j] += 1
        with np.errstate(invalid="ignore", divide="ignore"):
            train, test = sums / counts
        maps[layer] = PositionMap(
            layer, found[0].index, rows, columns, train, test, results.model_accuracy.get("test")
        )
    return maps


def _cell(position: tuple[int, ...]) -> tuple[int, int]:
    if len(position) == 0:
        return (0, 0)
    if len(position) == 1:
        return (0, position[0])
    return (position[0], position[1])


def save_position_maps(path: str | os.PathLike, maps: dict[str, PositionMap]) -> Path:
    """Write maps as JSON (atomically); read back with :func:`load_position_maps`.

    Example:
        >>> import tempfile
        >>> m = PositionMap("c", 0, (0,), (0, 1), np.ones((1, 2)), np.array([[0.5, 0.7]]), 0.7)
        >>> path = save_position_maps(Path(tempfile.mkdtemp()) / "p.json", {"c": m})
        >>> load_position_maps(path)["c"].relative.round(3).tolist()
        [[0.714, 1.0]]
    """
    path = Path(path)
    atomic_write_text(path, json.dumps([m.to_dict() for m in maps.values()], indent=1))
    return path


def load_position_maps(path: str | os.PathLike) -> dict[str, PositionMap]:
    """Maps saved by :func:`save_position_maps`, in forward order.

    Example:
        >>> import tempfile
        >>> maps = {name: PositionMap(name, i, (0,), (0, 1), np.ones((1, 2)),
        ...                           np.array([[0.5, 0.6]]), 0.6)
        ...         for i, name in enumerate(["conv1", "conv2"])}
        >>> loaded = load_position_maps(save_position_maps(Path(tempfile.mkdtemp()) / "p.json",
        ...                                                maps))
        >>> list(loaded), loaded["conv2"].test_acc.tolist(), loaded["conv2"].columns
        (['conv1', 'conv2'], [[0.5, 0.6]], (0, 1))
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return {item["layer"]: PositionMap.from_dict(item) for item in data}
