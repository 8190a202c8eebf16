"""Figures of pruning curves (Heitmann figure 2), weight spectra with the Marchenko-Pastur
density (figures 6-7) and low-rank residuals (figure 8)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from layerscope.weights.heavy_tails import marchenko_pastur_bounds, marchenko_pastur_density
from layerscope.weights.pruning import PAPER_NAMES, pruning_summary
from layerscope.weights.spectra import LayerSpectrum

__all__ = ["low_rank_figure", "pruning_figure", "spectrum_figure"]

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
