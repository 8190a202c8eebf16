"""Figures of a delta sweep (dissertation 7.3, figure 43) and the report section that shows them.

Reads the sweep stored as records of phase ``"projection"`` (``layerscope project RUN_DIR``,
:func:`layerscope.lab.project_run`).
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from layerscope.projection.records import PROJECTION_PHASE, read_sweep
from layerscope.projection.sweeps import sweep_metric
from layerscope.report.sections import REPORT_SECTIONS, ReportSection, Section

__all__ = ["projection_dimensions", "projection_relative", "projection_summary"]

_COLOURS = {"pca": "tab:blue", "random": "tab:orange"}


def _positions(table: pd.DataFrame) -> tuple[list[float], dict[float, int]]:
    """Deltas ascending and their positions: the grids are dense near 1, so the axis is the
    grid's order rather than delta itself (labels show the values)."""
    deltas = sorted(table.delta.unique())
    return deltas, {delta: i for i, delta in enumerate(deltas)}


def _delta_axis(axes, deltas: list[float]) -> None:
    step = max(1, len(deltas) // 10)
    ticks = list(range(0, len(deltas), step))
    axes.set_xticks(ticks, [f"{deltas[i]:g}" for i in ticks], rotation=45, fontsize=8)
    axes.set_xlabel("delta (grid order)")
    axes.grid(alpha=0.3)


def projection_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per delta (descending): relative metric of each baseline (the mean over random seeds,
    with their minimum and maximum) and the total kept dimensions.

    Example:
        >>> table = pd.DataFrame({"delta": [0.9, 0.9, 0.9], "baseline": ["pca", "random", "random"],
        ...     "seed": [None, 0, 1], "accuracy": [0.8, 0.2, 0.4], "relative_accuracy": [0.9, 0.2, 0.4],
        ...     "total_dimensions": [7, 7, 7]})
        >>> projection_summary(table).to_dict("records")
        [{'delta': 0.9, 'relative_accuracy (pca)': 0.9, 'relative_accuracy (random)': 0.30000000000000004, 'relative_accuracy (random, min)': 0.2, 'relative_accuracy (random, max)': 0.4, 'total_dimensions': 7}]
    """
    relative = f"relative_{sweep_metric(table)}"
    summary = pd.DataFrame(index=pd.Index(sorted(table.delta.unique(), reverse=True), name="delta"))
    for baseline, rows in table.groupby("baseline", sort=True):
        values = rows.groupby("delta")[relative]
        summary[f"{relative} ({baseline})"] = values.mean()
        if baseline == "random" and rows.seed.nunique() > 1:
            summary[f"{relative} (random, min)"] = values.min()
            summary[f"{relative} (random, max)"] = values.max()
    summary["total_dimensions"] = table.groupby("delta").total_dimensions.first()
    return summary.reset_index()


def projection_relative(table: pd.DataFrame) -> Figure:
    """Relative metric against delta: PCA projections (left) beside random orthonormal ones of
    the same k (right), as figure 43. Several random seeds: their mean and range.

    Example:
        >>> table = pd.DataFrame({"delta": [0.9, 0.99] * 2, "baseline": ["pca"] * 2 + ["random"] * 2,
        ...     "seed": [None, None, 0, 0], "accuracy": [0.8, 0.9, 0.1, 0.5],
        ...     "relative_accuracy": [0.85, 0.98, 0.1, 0.5], "total_dimensions": [5, 9, 5, 9]})
        >>> len(projection_relative(table).axes)
        2
    """
    metric = sweep_metric(table)
    relative = f"relative_{metric}"
    deltas, position = _positions(table)
    baselines = [b for b in ("pca", "random") if b in set(table.baseline)]
    figure = Figure(figsize=(5.0 * len(baselines), 3.8), layout="constrained")
    grid = figure.subplots(1, len(baselines), squeeze=False, sharey=True)[0]
    for axes, baseline in zip(grid, baselines, strict=True):
        rows = table[table.baseline == baseline].groupby("delta")[relative]
        x = [position[d] for d in rows.mean().index]
        colour = _COLOURS[baseline]
        axes.plot(x, rows.mean().to_numpy(), marker="o", color=colour, label=baseline)
        if baseline == "random" and table[table.baseline == "random"].seed.nunique() > 1:
            axes.fill_between(x, rows.min().to_numpy(), rows.max().to_numpy(), color=colour,
                              alpha=0.2, label="range over seeds")  # fmt: skip
        axes.axhline(1.0, color="grey", linestyle=":", linewidth=1)
        title = "PCA: top-k eigendirections" if baseline == "pca" else "random orthonormal, same k"
        axes.set_title(title, fontsize=10)
        _delta_axis(axes, deltas)
    grid[0].set_ylabel(f"{metric} / unprojected {metric}")
    figure.suptitle("Projected networks: every recorded layer projected, one global delta")
    return figure


def projection_dimensions(table: pd.DataFrame) -> Figure:
    """Total kept dimensions sum_l k_l against delta, beside sum_l d_l.

    Example:
        >>> table = pd.DataFrame({"delta": [0.9, 0.99], "total_dimensions": [5, 9],
        ...                       "total_features": [12, 12]})
        >>> projection_dimensions(table).axes[0].get_ylabel()
        'kept dimensions, all layers'
    """
    deltas, position = _positions(table)
    totals = table.groupby("delta").total_dimensions.first()
    figure = Figure(figsize=(6.0, 3.6), layout="constrained")
    axes = figure.add_subplot()
    axes.plot([position[d] for d in totals.index], totals.to_numpy(), marker="o", color="tab:green")
    features = int(table.total_features.iloc[0])
    axes.axhline(features, color="grey", linestyle=":", label=f"all dimensions ({features})")
    axes.set_ylabel("kept dimensions, all layers")
    axes.set_ylim(bottom=0)
    axes.legend(fontsize=8)
    _delta_axis(axes, deltas)
    figure.suptitle("Dimensions the projected network keeps (sum of k over layers)")
    return figure


def _format(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _section(run_dir, df: pd.DataFrame) -> Section | None:
    """The stored sweep: figures and the per-delta table."""
    if df is None or not (df.phase == PROJECTION_PHASE).any():
        return None
    table = read_sweep(df)
    if table.empty:
        return None
    metric = sweep_metric(table)
    summary = projection_summary(table)
    html = summary.to_html(index=False, border=0, float_format=_format, escape=True)
    figures = [
        ("projection_relative", projection_relative(table)),
        ("projection_dimensions", projection_dimensions(table)),
    ]
    return Section(
        "Projected networks",
        figures,
        note=f"Every recorded layer's output projected onto the top-k eigendirections of its "
        f"covariance (fitted on the training split), k explaining delta of the variance, and the "
        f"model evaluated on the test split (dissertation 7.3, figure 43). The random baseline "
        f"keeps the same k per layer but random orthonormal directions. Unprojected "
        f"{metric}: {table[f'unprojected_{metric}'].iloc[0]:.4f}; all dimensions: "
        f"{int(table.total_features.iloc[0])}.",
        html=html,
    )


REPORT_SECTIONS.add("projection", ReportSection(
    _section, order=30, phases=frozenset({PROJECTION_PHASE}),
    description="delta sweep of projected networks (PCA and random baseline)",
))  # fmt: skip
