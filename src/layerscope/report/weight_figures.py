"""Figures of pruning curves (Heitmann figure 2)."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from layerscope.weights.pruning import PAPER_NAMES, pruning_summary

__all__ = ["pruning_figure"]

_CRITERION_COLOURS = {
    "smallest_norm": "tab:blue",
    "largest_norm": "tab:orange",
    "smallest_contribution": "tab:green",
    "largest_contribution": "tab:red",
    "random": "tab:grey",
}


def pruning_figure(
    table: pd.DataFrame, *, title: str = "", metric: str = "test accuracy"
) -> Figure:
    """Metric against units removed, one line per criterion; random as mean +- sd (error bars).

    Example:
        >>> table = pd.DataFrame({"criterion": ["smallest_norm"] * 2 + ["random"] * 4,
        ...     "seed": [-1, -1, 0, 0, 1, 1], "removed": [0, 1] * 3,
        ...     "metric": [1.0, 0.9, 1.0, 0.5, 1.0, 0.7]})
        >>> len(pruning_figure(table).axes)
        1
    """
    summary = pruning_summary(table)
    figure = Figure(figsize=(6.0, 4.0), layout="constrained")
    axes = figure.subplots()
    for criterion, rows in summary.groupby("criterion", observed=True, sort=False):
        label = f"{criterion} ({PAPER_NAMES.get(criterion, criterion)})"
        colour = _CRITERION_COLOURS.get(criterion)
        if criterion == "random":
            axes.errorbar(rows.removed, rows["mean"], yerr=rows.sd, color=colour, label=label,
                          capsize=2, linewidth=1)  # fmt: skip
        else:
            axes.plot(rows.removed, rows["mean"], color=colour, label=label, linewidth=1.5)
    axes.set_xlabel("units removed")
    axes.set_ylabel(metric)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    axes.set_title(title or "greedy pruning without retraining")
    return figure
