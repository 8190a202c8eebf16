"""Figures for representation similarity (SPEC C9, C12): a layer x layer heatmap, and each layer's
similarity to the final epoch over training (seed 004, after Morcos et al. 2018).

Built on :class:`matplotlib.figure.Figure` directly, never pyplot, so importing or calling this
changes no global matplotlib state (backend, rc, open figures) and works headless; saving goes
through the Agg canvas matplotlib picks for the file format. Files are written atomically: to a
temporary file in the target folder, then ``os.replace``, so a reader never sees half a figure.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from layerscope.report.figures import save_figure
from layerscope.report.sections import REPORT_SECTIONS, ReportSection, Section
from layerscope.similarity.layers import SimilarityMatrix, SimilarityOverEpochs
from layerscope.similarity.measures import MEASURES

__all__ = [
    "OVER_EPOCHS_FILE",
    "plot_similarity_matrix",
    "plot_similarity_over_epochs",
    "read_over_epochs",
]

#: What ``layerscope similarity RUN_DIR --over-epochs`` writes into the run folder.
OVER_EPOCHS_FILE = "similarity_over_epochs.json"
#: A layer "settles" at the first epoch from which on its similarity to the last stays above.
SETTLED = 0.9


def _label(measure: str) -> str:
    """How figures name a measure (its registered label, else its name)."""
    return MEASURES.get(measure).label if measure in MEASURES else measure


#: Show at most this many tick labels per axis; the rest are thinned evenly.
MAX_TICK_LABELS = 40


def _ticks(names: tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
    step = max(1, int(np.ceil(len(names) / MAX_TICK_LABELS)))
    positions = np.arange(0, len(names), step)
    return positions, [names[i] for i in positions]


def plot_similarity_matrix(
    matrix: SimilarityMatrix,
    *,
    path: str | os.PathLike | None = None,
    title: str | None = None,
    labels: tuple[str, str] = ("model A", "model B"),
    annotate: bool | None = None,
) -> Figure:
    """Heatmap of a layer x layer similarity matrix, first layer at the bottom left.

    Undefined entries (NaN) are grey. ``annotate`` writes the values in the cells (default:
    when the matrix has at most 12 x 12 cells). Saved to ``path`` if given.

    Example:
        >>> import numpy as np
        >>> m = SimilarityMatrix(np.eye(3), ("a", "b", "c"), ("a", "b", "c"), "cka", 100, "flatten")
        >>> figure = plot_similarity_matrix(m)
        >>> figure.axes[0].get_xlabel()
        'model B layer'
    """
    values = np.asarray(matrix.values, dtype=np.float64)
    figure = Figure(
        figsize=(1.2 + 0.45 * max(4, len(matrix.cols)), 1.0 + 0.4 * max(4, len(matrix.rows)))
    )
    axes = figure.add_subplot()
    image = axes.imshow(
        np.ma.masked_invalid(values),
        origin="lower",
        vmin=min(0.0, float(np.nanmin(values)) if np.isfinite(values).any() else 0.0),
        vmax=1.0,
        cmap=_colormap(),
        aspect="auto",
        interpolation="nearest",
    )
    figure.colorbar(image, ax=axes, label=_label(matrix.measure))
    for axis, names in ((axes.xaxis, matrix.cols), (axes.yaxis, matrix.rows)):
        positions, shown = _ticks(names)
        axis.set_ticks(positions, shown)
    axes.tick_params(axis="x", labelrotation=90)
    axes.set_xlabel(f"{labels[1]} layer")
    axes.set_ylabel(f"{labels[0]} layer")
    if annotate is None:
        annotate = values.shape[0] <= 12 and values.shape[1] <= 12
    if annotate:
        for (i, j), value in np.ndenumerate(values):
            text = "n/a" if not np.isfinite(value) else f"{value:.2f}"
            colour = "black" if np.isfinite(value) and value > 0.6 else "white"
            axes.text(j, i, text, ha="center", va="center", fontsize=7, color=colour)
    axes.set_title(
        title or f"{_label(matrix.measure)} ({matrix.num_samples} samples, {matrix.spatial})"
    )
    if path is not None:
        save_figure(figure, path)
    return figure


def _colormap():
    from matplotlib import colormaps  # inside: no import-time cost for users without figures

    return colormaps["magma"].with_extremes(bad="lightgrey")


def plot_similarity_over_epochs(
    result: SimilarityOverEpochs,
    *,
    path: str | os.PathLike | None = None,
    title: str | None = None,
) -> Figure:
    """One line per layer: similarity at each epoch to the same layer at the final epoch.

    Example:
        >>> import numpy as np
        >>> r = SimilarityOverEpochs(np.array([[0.5, 0.2], [1.0, 1.0]]), (1, 2), ("conv", "fc"),
        ...                          "cka", 100, "flatten", 2)
        >>> figure = plot_similarity_over_epochs(r)
        >>> [line.get_label() for line in figure.axes[0].get_lines()]
        ['conv', 'fc']
    """
    figure = Figure(figsize=(6.4, 4.0))
    axes = figure.add_subplot()
    values = np.asarray(result.values, dtype=np.float64)
    from matplotlib import colormaps

    colours = colormaps["viridis"]
    for j, layer in enumerate(result.layers):
        shade = 0.9 * j / max(1, len(result.layers) - 1)  # first layer dark, last light green
        axes.plot(
            result.epochs, values[:, j], marker="o", markersize=3, label=layer, color=colours(shade)
        )
    axes.set_xlabel("epoch")
    label = _label(result.measure)
    axes.set_ylabel(f"{label} with epoch {result.reference_epoch}")
    low = float(np.nanmin(values)) if np.isfinite(values).any() else 0.0
    axes.set_ylim(min(0.0, low), 1.02)
    axes.grid(alpha=0.3)
    if len(result.layers) <= 20:
        axes.legend(title="layer", fontsize=7, loc="lower right")
    axes.set_title(title or f"Similarity to the final epoch ({result.num_samples} samples)")
    if path is not None:
        save_figure(figure, path)
    return figure


# --------------------------------------------------------------------------- the report section
def read_over_epochs(run_dir: str | os.PathLike) -> dict[str, SimilarityOverEpochs]:
    """The results in a run folder's ``similarity_over_epochs.json`` by measure ({} without it).

    Example:
        >>> import tempfile
        >>> read_over_epochs(tempfile.mkdtemp())
        {}
    """
    path = Path(run_dir) / OVER_EPOCHS_FILE
    if not path.is_file():
        return {}
    stored = json.loads(path.read_text(encoding="utf-8"))
    return {
        measure: SimilarityOverEpochs(
            np.array(entry["values"], dtype=np.float64), tuple(stored["epochs"]),
            tuple(stored["layers"]), measure, entry["num_samples"], entry["spatial"],
            stored["reference_epoch"],
        )
        for measure, entry in stored["measures"].items()
    }  # fmt: skip


def _settles(values: np.ndarray, epochs) -> str:
    """The first epoch from which on ``values`` stay at or above :data:`SETTLED`."""
    above = np.nan_to_num(values, nan=-1.0) >= SETTLED
    for i in range(len(values)):
        if above[i:].all():
            return str(epochs[i])
    return "-"


def _table(results: dict[str, SimilarityOverEpochs]) -> str:
    first = next(iter(results.values()))
    head = "".join(f"<th>{html.escape(_label(m))} at epoch {first.epochs[0]}</th>"
                   f"<th>{html.escape(_label(m))} &ge; {SETTLED} from epoch</th>"
                   for m in results)  # fmt: skip
    rows = []
    for j, layer in enumerate(first.layers):
        cells = ""
        for result in results.values():
            value = result.values[0, j]
            shown = "n/a" if not np.isfinite(value) else f"{value:.3f}"
            cells += f"<td>{shown}</td><td>{_settles(result.values[:, j], result.epochs)}</td>"
        rows.append(f"<tr><td>{html.escape(layer)}</td>{cells}</tr>")
    return (f"<table><thead><tr><th>layer</th>{head}</tr></thead><tbody>{''.join(rows)}"
            "</tbody></table>")  # fmt: skip


def _section(run_dir, df) -> Section | None:
    results = read_over_epochs(run_dir)
    if not results:
        return None
    first = next(iter(results.values()))
    figures = [(f"similarity_over_epochs_{m}", plot_similarity_over_epochs(r))
               for m, r in results.items()]  # fmt: skip
    epochs = ", ".join(map(str, first.epochs))
    return Section(
        "Similarity over epochs",
        figures,
        note=f"Each recorded layer at the kept epochs ({epochs}) against the same layer at epoch "
        f"{first.reference_epoch}, on {first.num_samples} samples of the run's data "
        f"(layerscope similarity RUN_DIR --over-epochs). Layers that settle early learn first: "
        f"Raghu et al. (2017) found networks converge bottom up.",
        html=_table(results),
    )


REPORT_SECTIONS.add("similarity-over-epochs", ReportSection(
    _section, order=45, description="each layer's similarity to its final state over training",
))  # fmt: skip
