"""Figures of pruning curves (Heitmann figure 2) and low-rank residuals (figure 8)."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from layerscope.weights.pruning import PAPER_NAMES, pruning_summary

__all__ = ["low_rank_figure", "pruning_figure"]

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


def low_rank_figure(curves: pd.DataFrame, table: pd.DataFrame | None = None) -> Figure:
    """Relative residual ``||W - W_k|| / ||W||`` against k per layer, the chosen k marked (and,
    with ``table``, the metric after substituting W_k in the legend).

    Example:
        >>> curves = pd.DataFrame({"layer": ["fc"] * 3, "k": [1, 2, 3],
        ...                        "residual": [3.0, 1.0, 0.5], "relative_residual": [0.6, 0.2, 0.1]})
        >>> table = pd.DataFrame({"layer": ["fc"], "k": [2], "metric": [0.9], "metric_low_rank": [0.85]})
        >>> len(low_rank_figure(curves, table).axes)
        1
    """
    figure = Figure(figsize=(6.0, 4.0), layout="constrained")
    axes = figure.subplots()
    chosen = {} if table is None else table.set_index("layer").to_dict("index")
    for index, (layer, rows) in enumerate(curves.groupby("layer", sort=False)):
        colour = f"C{index % 10}"
        label = str(layer)
        if layer in chosen:
            row = chosen[layer]
            label += f" (k = {row['k']}"
            if pd.notna(row.get("metric_low_rank")):
                label += f": {row['metric']:.3f} -> {row['metric_low_rank']:.3f}"
            label += ")"
            hit = rows[rows.k == row["k"]]
            axes.scatter(hit.k, hit.relative_residual, color=colour, zorder=3)
        axes.plot(rows.k, rows.relative_residual, color=colour, label=label, linewidth=1)
    axes.set_xscale("log")
    axes.set_xlabel("rank k")
    axes.set_ylabel("relative residual ||W - W_k|| / ||W||")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    axes.set_title("low-rank approximation, elbow marked")
    return figure
