"""Heatmaps of position probes (dissertation 9.3, figure 54): one panel per layer.

Reads :class:`~layerscope.probes.positions.PositionMap` records (``layerscope probe --reduction
pos8`` saves them in ``probes/positions-<reduction>.json``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from layerscope.probes.positions import PositionMap, load_position_maps
from layerscope.report.sections import REPORT_SECTIONS, ReportSection, Section

__all__ = ["position_heatmaps"]


def position_heatmaps(
    maps: dict[str, PositionMap], *, relative: bool = True, columns: int = 4
) -> Figure:
    """Heatmaps of probe test accuracy per position, one panel per layer, forward order.

    ``relative`` divides by the model's test accuracy (figure 54 of the dissertation; 1.0 =
    as good as the whole model); the colour scale is shared by all panels.

    Example:
        >>> m = PositionMap("c", 0, (0, 1), (0, 1), np.ones((2, 2)), np.full((2, 2), 0.4), 0.8)
        >>> len(position_heatmaps({"c": m}).axes)    # one panel and its colour bar
        2
    """
    if not maps:
        figure = Figure(figsize=(5, 2))
        axes = figure.add_subplot()
        axes.axis("off")
        axes.text(0.5, 0.5, "no position probes", ha="center", va="center")
        return figure
    ordered = sorted(maps.values(), key=lambda m: m.index)
    use_relative = relative and all(m.model_test_acc for m in ordered)
    values = [m.relative if use_relative else m.test_acc for m in ordered]
    finite = np.concatenate([v[np.isfinite(v)].ravel() for v in values] + [np.zeros(0)])
    low = float(finite.min()) if finite.size else 0.0
    high = float(finite.max()) if finite.size else 1.0
    count = len(ordered)
    ncols = min(columns, count)
    nrows = math.ceil(count / ncols)
    figure = Figure(figsize=(3.0 * ncols + 1.2, 2.9 * nrows + 0.4), layout="constrained")
    grid = figure.subplots(nrows, ncols, squeeze=False)
    image = None
    for axes, position_map, value in zip(grid.ravel(), ordered, values, strict=False):
        image = axes.imshow(value, vmin=low, vmax=high, cmap="viridis")
        axes.set_title(f"{position_map.index + 1}: {position_map.layer}", fontsize=9)
        axes.set_xticks(range(len(position_map.columns)), position_map.columns, fontsize=7)
        axes.set_yticks(range(len(position_map.rows)), position_map.rows, fontsize=7)
    for axes in grid.ravel()[count:]:
        axes.axis("off")
    label = "probe test accuracy / model test accuracy" if use_relative else "probe test accuracy"
    figure.colorbar(image, ax=grid.ravel().tolist(), label=label, shrink=0.8)
    figure.suptitle("Probes per feature-map position (rows x columns of the map)")
    return figure


def _section(run_dir, df) -> Section | None:
    """Heatmaps of position probes saved by ``layerscope probe --reduction pos8``."""
    found = sorted((Path(run_dir) / "probes").glob("positions-*.json"))
    if not found:
        return None
    figures = [(path.stem.replace("-", "_") + "_probes", position_heatmaps(load_position_maps(path)))
               for path in found]  # fmt: skip
    return Section(
        "Probes per position",
        figures,
        note="Test accuracy of a probe trained on one feature-map position, relative to the "
        "model's (dissertation 9.3, figure 54). Before the border layer the centre beats the "
        "borders; from it on the positions become alike.",
    )


REPORT_SECTIONS.add("positions", ReportSection(_section, order=10,
                                               description="position-probe heatmaps"))  # fmt: skip
