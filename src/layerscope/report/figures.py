"""Figures of a run's records (SPEC C4): saturation per layer, layer x epoch heatmaps, intrinsic
dimension per layer.

Every function takes the tidy DataFrame of :func:`layerscope.load` and returns a
``matplotlib.figure.Figure`` built without pyplot (no global state, no display needed: the Agg
canvas renders it). :func:`save_figure` writes one atomically.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from layerscope.errors import OptionError
from layerscope.store.atomic import atomic_write_bytes

__all__ = [
    "figure_bytes",
    "intrinsic_dimension_by_layer",
    "layer_order",
    "saturation_and_probes",
    "saturation_by_layer",
    "saturation_heatmap",
    "save_figure",
]

#: Phases that hold per-layer statistics of outputs (the others hold weights or scalars).
_NON_OUTPUT_PHASES = ("weights", "epoch", "run")


def layer_order(df: pd.DataFrame) -> list[str]:
    """Layer names in forward order (by ``layer_index``)."""
    layers = df.dropna(subset=["layer"])
    if layers.empty:
        return []
    first = layers.groupby("layer")["layer_index"].min().sort_values(kind="stable")
    return list(first.index)


def _latest_epoch(df: pd.DataFrame, statistic: str) -> int | None:
    rows = df[df.statistic == statistic]
    return int(rows.epoch.max()) if len(rows) else None


def _per_layer(df: pd.DataFrame, statistic: str, epoch: int) -> pd.DataFrame:
    """layer x phase table of ``statistic`` at ``epoch``, rows in forward order."""
    rows = df[(df.statistic == statistic) & (df.epoch == epoch) & df.layer.notna()]
    rows = rows[~rows.phase.isin(_NON_OUTPUT_PHASES)]
    table = rows.pivot_table(index="layer", columns="phase", values="value", aggfunc="last")
    order = [name for name in layer_order(df) if name in table.index]
    phases = sorted(table.columns, key=lambda phase: (phase != "train", phase))  # train first
    return table.reindex(order)[phases]


def _empty(message: str) -> Figure:
    figure = Figure(figsize=(6, 2))
    axes = figure.add_subplot()
    axes.axis("off")
    axes.text(0.5, 0.5, message, ha="center", va="center")
    return figure


def _layer_axis(axes, names: list[str]) -> None:
    axes.set_xticks(range(len(names)))
    axes.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    axes.set_xlabel("layer (forward order)")


def saturation_by_layer(df: pd.DataFrame, epoch: int | None = None) -> Figure:
    """Saturation of every layer in forward order at ``epoch`` (default: the latest), one line
    per phase, and the model's average saturation s_mu per phase in the legend.

    Example:
        >>> from layerscope.store.records import Record
        >>> df = pd.DataFrame([Record("r", 0, p, n, i, "saturation", v, 0.0).as_dict()
        ...     for p, v in (("train", 0.5), ("eval", 0.4)) for i, n in enumerate(["a", "b"])])
        >>> [line.get_label() for line in saturation_by_layer(df).axes[0].get_lines()]
        ['train', 'eval']
    """
    epoch = _latest_epoch(df, "saturation") if epoch is None else epoch
    if epoch is None:
        return _empty("no saturation recorded yet")
    table = _per_layer(df, "saturation", epoch)
    figure = Figure(figsize=(max(6, 0.45 * len(table) + 2), 4), layout="constrained")
    axes = figure.add_subplot()
    averages = df[(df.statistic == "average_saturation") & (df.epoch == epoch)]
    for phase in table.columns:
        mean = averages[averages.phase == phase].value
        label = f"{phase} (s_mu = {mean.iloc[-1]:.3f})" if len(mean) else phase
        axes.plot(range(len(table)), table[phase].to_numpy(), marker="o", label=label)
    _layer_axis(axes, list(table.index))
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("saturation")
    axes.set_title(f"Saturation per layer, epoch {epoch}")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return figure


def saturation_and_probes(df: pd.DataFrame, phase: str = "probe") -> Figure:
    """Saturation per layer (left axis, one line per phase) with probe accuracy (right axis:
    test solid, train dashed) in forward order, and the model's test accuracy as a horizontal
    line (dissertation 8.3, 9.3: the two lenses side by side).

    Uses the probe records of ``phase`` (``"probe"``: the default reduction) at their latest
    epoch and saturation of the same epoch (or the latest one before it).

    Example:
        >>> df = pd.DataFrame(
        ...     [("r", 0, "train", "conv", 0, "saturation", 0.4, 0.0),
        ...      ("r", 0, "probe", "conv", 0, "probe_test_acc", 0.8, 0.0),
        ...      ("r", 0, "probe", None, None, "model_test_acc", 0.9, 0.0)],
        ...     columns=["run", "epoch", "phase", "layer", "layer_index", "statistic", "value",
        ...              "wall_time"])
        >>> [axes.get_ylabel() for axes in saturation_and_probes(df).axes]
        ['saturation', 'probe accuracy']
    """
    probe_epoch = _latest_epoch(df[df.phase == phase], "probe_test_acc")
    if probe_epoch is None:
        return _empty(f"no probe accuracy recorded (phase {phase!r})")
    probes = df[(df.phase == phase) & (df.epoch == probe_epoch) & df.layer.notna()]
    probes = probes.pivot_table(index="layer", columns="statistic", values="value", aggfunc="last")
    saturated = df[(df.statistic == "saturation") & (df.epoch <= probe_epoch)]
    saturation_epoch = int(saturated.epoch.max()) if len(saturated) else None
    table = _per_layer(df, "saturation", saturation_epoch) if saturation_epoch is not None else None
    names = [
        n for n in layer_order(df) if n in probes.index or (table is not None and n in table.index)
    ]
    positions = np.arange(len(names))
    figure = Figure(figsize=(max(6, 0.45 * len(names) + 2.5) + 2.5, 4.2), layout="constrained")
    axes = figure.add_subplot()
    handles = []
    if table is not None:
        table = table.reindex(names)
        for column in table.columns:
            (line,) = axes.plot(
                positions, table[column].to_numpy(), marker="o", label=f"saturation ({column})"
            )
            handles.append(line)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("saturation")
    right = axes.twinx()
    handles += _probe_lines(right, positions, probes.reindex(names))
    handles += _model_accuracy_line(right, df, phase, probe_epoch)
    right.set_ylim(0, 1.05)
    right.set_ylabel("probe accuracy")
    _layer_axis(axes, names)
    axes.grid(alpha=0.3)
    recipe = _probe_recipe(df[(df.phase == phase) & (df.epoch == probe_epoch)])
    axes.set_title(f"Saturation and probe accuracy per layer, epoch {probe_epoch}{recipe}")
    figure.legend(handles=handles, fontsize=8, loc="outside right upper")
    return figure


def _probe_recipe(rows: pd.DataFrame) -> str:
    """``" (probes: dissertation preset, raw features)"`` from the recipe records of
    :meth:`~layerscope.probes.ProbeResults.records`; empty for stores written without them."""
    values = rows[rows.layer.isna()].set_index("statistic").value
    if "probe_standardized" not in values:
        return ""
    features = "standardised features" if values["probe_standardized"] else "raw features"
    preset = "dissertation preset, " if values.get("probe_dissertation_preset") else ""
    return f"\n(probes: {preset}{features})"


def _probe_lines(axes, positions, probes: pd.DataFrame) -> list:
    """Probe test accuracy solid, train accuracy dashed, in black."""
    style = {
        "probe_test_acc": ("probe test accuracy", "-", "s"),
        "probe_train_acc": ("probe train accuracy", "--", "^"),
    }
    lines = []
    for statistic, (label, linestyle, marker) in style.items():
        if statistic in probes.columns:
            (line,) = axes.plot(
                positions, probes[statistic].to_numpy(), color="black", linestyle=linestyle,
                marker=marker, markersize=4, label=label,
                alpha=1.0 if statistic == "probe_test_acc" else 0.5,
            )  # fmt: skip
            lines.append(line)
    return lines


def _model_accuracy_line(axes, df: pd.DataFrame, phase: str, epoch: int) -> list:
    """The model's own test accuracy as a horizontal line (none when it was not recorded)."""
    reference = df[(df.phase == phase) & (df.statistic == "model_test_acc") & (df.epoch == epoch)]
    if reference.empty:
        reference = df[(df.statistic == "test_accuracy") & (df.epoch == epoch)]
    if reference.empty:
        return []
    accuracy = float(reference.value.iloc[-1])
    label = f"model test accuracy ({accuracy:.3f})"
    return [axes.axhline(accuracy, color="tab:red", linestyle=":", label=label)]


def saturation_heatmap(df: pd.DataFrame, phase: str = "train") -> Figure:
    """Layer x epoch heatmap of saturation for one phase.

    Example:
        >>> from layerscope.store.records import Record
        >>> df = pd.DataFrame([Record("r", e, "train", "fc", 0, "saturation", 0.1 * e, 0.0)
        ...     .as_dict() for e in range(3)])
        >>> saturation_heatmap(df).axes[0].images[0].get_array().shape
        (1, 3)
    """
    rows = df[(df.statistic == "saturation") & (df.phase == phase) & df.layer.notna()]
    if rows.empty:
        return _empty(f"no saturation recorded for phase {phase!r}")
    table = rows.pivot_table(index="layer", columns="epoch", values="value", aggfunc="last")
    table = table.reindex([n for n in layer_order(df) if n in table.index])
    # One width whatever the number of epochs (the ticks thin out), so drawing it costs the same
    # at epoch 200 as at epoch 2.
    figure = Figure(figsize=(9, max(3, 0.3 * len(table) + 1.5)),
                    layout="constrained")  # fmt: skip
    axes = figure.add_subplot()
    image = axes.imshow(table.to_numpy(), aspect="auto", vmin=0, vmax=1, cmap="viridis")
    axes.set_yticks(range(len(table)))
    axes.set_yticklabels(table.index, fontsize=8)
    epochs = list(table.columns)
    step = max(1, len(epochs) // 12)
    axes.set_xticks(range(0, len(epochs), step))
    axes.set_xticklabels(epochs[::step])
    axes.set_xlabel("epoch")
    axes.set_ylabel("layer (forward order)")
    axes.set_title(f"Saturation over training ({phase})")
    figure.colorbar(image, ax=axes, label="saturation")
    return figure


def intrinsic_dimension_by_layer(
    df: pd.DataFrame, epoch: int | None = None, widths: dict[str, int] | None = None
) -> Figure:
    """Intrinsic dimension k(delta) of every layer per phase, beside the layer's width.

    Example:
        >>> from layerscope.store.records import Record
        >>> df = pd.DataFrame([Record("r", 0, "eval", "fc", 0, "intrinsic_dimension", 3.0, 0.0)
        ...     .as_dict()])
        >>> [float(b.get_height()) for b in intrinsic_dimension_by_layer(df).axes[0].patches]
        [3.0]
    """
    epoch = _latest_epoch(df, "intrinsic_dimension") if epoch is None else epoch
    if epoch is None:
        return _empty("no intrinsic dimension recorded yet")
    table = _per_layer(df, "intrinsic_dimension", epoch)
    figure = Figure(figsize=(max(6, 0.45 * len(table) + 2), 4), layout="constrained")
    axes = figure.add_subplot()
    positions = np.arange(len(table))
    count = max(1, len(table.columns))
    bar_width = 0.8 / count
    for i, phase in enumerate(table.columns):
        axes.bar(positions + (i - (count - 1) / 2) * bar_width, table[phase].to_numpy(),
                 width=bar_width, label=phase)  # fmt: skip
    if widths:
        axes.plot(positions, [widths.get(n, np.nan) for n in table.index], "k_", markersize=14,
                  label="layer width")  # fmt: skip
    _layer_axis(axes, list(table.index))
    axes.set_yscale("log")
    axes.set_ylabel("intrinsic dimension (log)")
    axes.set_title(f"Intrinsic dimension per layer, epoch {epoch}")
    axes.grid(alpha=0.3, axis="y")
    axes.legend(fontsize=8)
    return figure


def figure_bytes(figure: Figure, image_format: str = "png", dpi: int = 110) -> bytes:
    """Render a figure with the Agg canvas to bytes of ``image_format`` (png, svg, pdf, ...).

    Example:
        >>> figure_bytes(Figure(figsize=(1, 1)), "svg")[:5]
        b'<?xml'
    """
    canvas = FigureCanvasAgg(figure)
    supported = canvas.get_supported_filetypes()
    if image_format not in supported:
        raise OptionError(
            f"cannot write figures as {image_format!r}; use one of {', '.join(sorted(supported))}"
        )
    buffer = io.BytesIO()
    figure.savefig(buffer, format=image_format, dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def save_figure(figure: Figure, path: str | os.PathLike, dpi: int = 110) -> bytes:
    """Write ``figure`` to ``path`` atomically, in the format its suffix names; return the bytes.

    Example:
        >>> import tempfile, pathlib
        >>> figure = Figure()
        >>> _ = figure.add_subplot().plot([0, 1])
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     save_figure(figure, pathlib.Path(folder) / "line.png")[:4] == b"\\x89PNG"
        True
    """
    suffix = Path(path).suffix.lstrip(".").lower()
    if not suffix:
        raise OptionError(f"cannot tell the image format of {str(path)!r}; give it a suffix (.png)")
    data = figure_bytes(figure, suffix, dpi)
    atomic_write_bytes(path, data)
    return data
