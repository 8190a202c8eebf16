"""Figures of pruning curves (Heitmann figure 2), weight spectra with the Marchenko-Pastur
density (figures 6-7) and low-rank residuals (figure 8)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from layerscope.weights.heavy_tails import marchenko_pastur_bounds, marchenko_pastur_density
from layerscope.weights.pruning import PAPER_NAMES, pruning_summary
from layerscope.weights.spectra import LayerSpectrum

__all__ = [
    "graph_figure",
    "low_rank_figure",
    "metric_over_epochs",
    "pruning_figure",
    "spectrum_figure",
]

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


def spectrum_figure(spectrum: LayerSpectrum, *, title: str = "", bins: int = 60) -> Figure:
    """Histogram of a layer's eigenvalues (density) with the Marchenko-Pastur density of the same
    Q and scale s^2 (left, linear axes) and the same on log-log axes (right).

    The eigenvalues are those of the smaller side, so for Q < 1 (more units than inputs) the
    m - n zeros of W Wᵀ are not drawn and the MP curve is its continuous part divided by Q.

    Example:
        >>> from torch import nn
        >>> from layerscope.weights import layer_spectrum
        >>> len(spectrum_figure(layer_spectrum(nn.Linear(64, 32))).axes)
        2
    """
    figure = Figure(figsize=(9.0, 3.6), layout="constrained")
    linear, logarithmic = figure.subplots(1, 2)
    values = spectrum.eigenvalues[spectrum.eigenvalues > 0]
    if len(values) == 0:
        for axes in (linear, logarithmic):
            axes.text(0.5, 0.5, "all eigenvalues are 0", ha="center", transform=axes.transAxes)
        return figure
    linear.hist(values, bins=bins, density=True, alpha=0.6, label="ESD")
    positive = values[values > 0]
    edges = np.logspace(np.log10(positive.min()), np.log10(positive.max()), bins)
    logarithmic.hist(positive, bins=edges, density=True, alpha=0.6, label="ESD")
    if spectrum.variance > 0 and spectrum.rows > 0:
        q = spectrum.ratio
        lo, hi = marchenko_pastur_bounds(q, spectrum.variance)
        grid = np.linspace(max(lo, 1e-12), hi, 400)
        density = marchenko_pastur_density(grid, q, spectrum.variance) / min(1.0, q)
        for axes in (linear, logarithmic):
            axes.plot(grid, density, color="tab:red", label=f"MP (Q = {q:.2f})")
            axes.axvline(hi, color="tab:red", linestyle=":", linewidth=1)
    logarithmic.set_xscale("log")
    logarithmic.set_yscale("log")
    for axes in (linear, logarithmic):
        axes.set_xlabel("eigenvalue of W W^T")
        axes.grid(alpha=0.3)
    linear.set_ylabel("density")
    linear.legend(fontsize=8)
    figure.suptitle(title or "empirical spectral density")
    return figure


def metric_over_epochs(df: pd.DataFrame, statistic: str, *, ylabel: str = "", title: str = "",
                       per_unit: bool = False) -> Figure:  # fmt: skip
    """One line per layer of a phase-"weights" statistic against the epoch (``per_unit``:
    divided by the layer's number of units, for the frame potential: FP / m >= 1).

    Example:
        >>> df = pd.DataFrame({"phase": "weights", "layer": ["a", "a"], "layer_index": [0, 0],
        ...                    "epoch": [0, 1], "statistic": "esd_alpha", "value": [3.0, 2.5]})
        >>> len(metric_over_epochs(df, "esd_alpha").axes)
        1
    """
    rows = df[(df.phase == "weights") & (df.statistic == statistic)]
    figure = Figure(figsize=(6.5, 4.0), layout="constrained")
    axes = figure.subplots()
    layers = rows.groupby("layer").layer_index.min().sort_values(na_position="last").index
    for index, layer in enumerate(layers):
        line = rows[rows.layer == layer].sort_values("epoch")
        values = line.value.to_numpy()
        if per_unit:
            units = df[(df.phase == "weights") & (df.layer == layer)
                       & df.statistic.str.startswith("frame_potential_contribution[")]  # fmt: skip
            count = units.statistic.nunique()
            values = values / count if count else values
        colour = _layer_colour(index, len(layers))
        axes.plot(line.epoch, values, color=colour, label=str(layer), linewidth=1)
    axes.set_xlabel("epoch")
    axes.set_ylabel(ylabel or statistic)
    axes.grid(alpha=0.3)
    if 0 < len(layers) <= 12:
        axes.legend(fontsize=6)
    axes.set_title(title or statistic)
    return figure


def _layer_colour(index: int, count: int):
    from matplotlib import colormaps

    return colormaps["viridis"](index / max(count - 1, 1))


def graph_figure(graph: dict, *, title: str = "") -> Figure:
    """A weight-similarity graph drawn by :func:`~layerscope.weights.graphs.graph_layout`:
    node area by row norm, edge opacity by weight.

    Example:
        >>> import torch
        >>> from layerscope.weights.graphs import weight_graph
        >>> len(graph_figure(weight_graph(torch.randn(6, 4))).axes)
        1
    """
    from layerscope.weights.graphs import graph_layout

    positions = graph_layout(graph)
    figure = Figure(figsize=(5.0, 5.0), layout="constrained")
    axes = figure.subplots()
    for link in graph["links"]:
        (x0, y0), (x1, y1) = positions[link["source"]], positions[link["target"]]
        axes.plot([x0, x1], [y0, y1], color="grey", alpha=0.15 + 0.6 * link["weight"],
                  linewidth=0.6)  # fmt: skip
    norms = [node["norm"] for node in graph["nodes"]]
    top = max(norms) if norms and max(norms) > 0 else 1.0
    sizes = [10 + 90 * n / top for n in norms]
    axes.scatter(positions[:, 0], positions[:, 1], s=sizes, color="tab:blue", zorder=3)
    axes.set_xticks([])
    axes.set_yticks([])
    edges = len(graph["links"])
    axes.set_title(title or f"weight graph: {len(norms)} units, {edges} edges", fontsize=9)
    return figure
