"""``report.html``: one self-contained page per run (figures embedded), readable without a server.

Also writes the figures as PNG files into ``<run_dir>/figures/``. Every file is replaced
atomically, so a reader never sees a half-written report.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

import layerscope.report.positions  # noqa: F401 - registers its section
from layerscope.report.curves import training_curves
from layerscope.report.figures import (
    intrinsic_dimension_by_layer,
    layer_order,
    saturation_and_probes,
    saturation_by_layer,
    saturation_heatmap,
)
from layerscope.report.overview import advice_html, advice_lines, main_figure, read_architecture
from layerscope.report.page import figure_html, page, table_html
from layerscope.report.runbox import run_box
from layerscope.report.sections import REPORT_SECTIONS, Section, section_phases
from layerscope.store.atomic import atomic_write_text
from layerscope.store.folder import read_layers, read_run_info
from layerscope.store.runs import load

__all__ = ["layer_table", "write_report"]

_PROBE_NOTE = """ Probe accuracy is the accuracy of a
logistic regression trained on the layer's outputs (average-pooled to at most 4x4): how linearly
separable the classes already are there. Layers that raise neither saturation nor probe accuracy
are candidates for removal."""


def _output_phases(df: pd.DataFrame) -> list[str]:
    phases = df[(df.statistic == "saturation") & df.layer.notna()].phase.unique().tolist()
    return sorted(phases, key=lambda p: (p != "train", p))


def _latest_per_layer(df: pd.DataFrame, statistic: str, phase: str) -> pd.Series:
    """``statistic`` of every layer in ``phase`` at the latest epoch that has it."""
    rows = df[(df.statistic == statistic) & (df.phase == phase) & df.layer.notna()]
    if rows.empty:
        return pd.Series(dtype=float)
    return rows[rows.epoch == rows.epoch.max()].groupby("layer").value.last()


def layer_table(
    df: pd.DataFrame, layers: Sequence[dict] | None = None, architecture: dict | None = None
) -> pd.DataFrame:
    """Per-layer summary of the latest epoch: type, width, saturation and intrinsic dimension k
    per phase, probe train / test accuracy, latest relative weight change and distance from
    initialisation, and with ``architecture`` (:func:`~layerscope.report.overview.
    read_architecture`) r_min / r_max and whether the layer is predicted unproductive.

    Example:
        >>> from layerscope.store.records import Record
        >>> df = pd.DataFrame([Record("r", 0, "train", "fc", 0, "saturation", 0.5, 0.0).as_dict()])
        >>> layer_table(df, [{"name": "fc", "type": "Linear", "num_features": 8}]).to_dict("index")
        {'fc': {'type': 'Linear', 'features': 8, 'saturation (train)': 0.5}}
    """
    order = layer_order(df)
    info = {layer["name"]: layer for layer in (layers or [])}
    order += [name for name in info if name not in order]
    table = pd.DataFrame(index=pd.Index(order, name="layer"))
    table["type"] = [info.get(n, {}).get("type", "") for n in order]
    table["features"] = [info.get(n, {}).get("num_features", "") for n in order]
    columns = [(f"{s} ({p})", s, p) for s in ("saturation", "intrinsic_dimension")
               for p in _output_phases(df)]  # fmt: skip
    columns += [(f"probe {s} accuracy", f"probe_{s}_acc", "probe") for s in ("train", "test")]
    columns += [(s, s, "weights") for s in ("relative_weight_change", "distance_from_init")]
    for column, statistic, phase in columns:
        latest = _latest_per_layer(df, statistic, phase)
        if len(latest):
            table[column] = latest.reindex(order)
    fields = {f["name"]: f for f in (architecture or {}).get("fields", [])}
    if fields:
        table["r_min"] = [fields.get(n, {}).get("r_min") for n in order]
        table["r_max"] = [fields.get(n, {}).get("r_max") for n in order]
        unproductive = set(architecture.get("unproductive", []))
        table["unproductive"] = ["yes" if n in unproductive else "" for n in order]
    missing = _without_statistics(df, order)
    if missing:
        last = int(df[df.phase == "epoch"].epoch.max()) + 1
        table["note"] = [f"no statistics at epoch {last}: every batch NaN/inf, or it did not run"
                         if n in missing else "" for n in order]  # fmt: skip
    return table


def _without_statistics(df: pd.DataFrame, order: Sequence[str]) -> set[str]:
    """Layers with no saturation in the last epoch that has per-epoch values (a diverged
    epoch's layers whose every batch was rejected as non-finite)."""
    epochs = df[df.phase == "epoch"].epoch
    if epochs.empty:
        return set()
    last = epochs.max()
    rows = df[(df.statistic == "saturation") & (df.epoch == last) & df.layer.notna()]
    return {name for name in order if name not in set(rows.layer)}


#: Per-epoch columns in this order (then the rest alphabetically), with their units.
_EPOCH_ORDER = ("train_loss", "test_loss", "train_accuracy", "test_accuracy", "train_top5",
                "test_top5", "lr", "seconds")  # fmt: skip
_UNITS = {"seconds": "seconds (s)", "lr": "learning rate"}


def _scalars_table(df: pd.DataFrame) -> pd.DataFrame:
    """Model-level values per epoch; the model size (phase "run") is in the run box instead."""
    rows = df[df.layer.isna() & ~df.phase.isin(section_phases()) & (df.phase != "run")]
    if rows.empty:
        return pd.DataFrame()
    names = rows.statistic.where(rows.phase == "epoch", rows.statistic + " (" + rows.phase + ")")
    table = rows.assign(name=names).pivot_table(
        index="epoch", columns="name", values="value", aggfunc="last", dropna=False
    )
    table.index = table.index.astype(int) + 1  # epochs as people count them
    first = [c for c in _EPOCH_ORDER if c in table.columns]
    table = table[first + sorted(c for c in table.columns if c not in first)]
    return table.rename(columns=_UNITS)


def _caption(name: str) -> str:
    return name.replace("_", " ")


def _figures(run_dir: Path, figures: Sequence[tuple[str, object, str]]) -> str:
    """Save each figure to ``figures/<name>.png``; return ``<figure>`` tags with captions."""
    return "".join(
        figure_html(run_dir / "figures" / f"{name}.png", figure, caption, alt=_caption(name))
        for name, figure, caption in figures
    )


def _sections(run_dir: Path, df: pd.DataFrame) -> list[Section]:
    """The registered sections with something to show, in their order."""
    entries = sorted(
        (REPORT_SECTIONS.get(n) for n in REPORT_SECTIONS.list()), key=lambda e: e.order
    )
    return [section for entry in entries if (section := entry(run_dir, df)) is not None]


def _render(run_dir: Path, section: Section) -> str:
    note = f"<p class='note'>{html.escape(section.note)}</p>" if section.note else ""
    body = f"<div class='scroll'>{section.html}</div>" if section.html else ""
    figures = [(name, figure, f"{section.title}: {_caption(name)}.")
               for name, figure in section.figures]  # fmt: skip
    return note + body + _figures(run_dir, figures)


def write_report(
    run_dir: str | os.PathLike,
    df: pd.DataFrame | None = None,
    layers: Sequence[object] | None = None,
) -> Path:
    """Write ``figures/*.png`` and ``report.html`` for the run in ``run_dir``; return the page.

    Args:
        run_dir: the run folder.
        df: its records (default: read from the folder's store).
        layers: ``LayerInfo`` records or dicts (default: ``layers.json``).

    Example:
        >>> import tempfile, torch
        >>> from torch import nn
        >>> from layerscope import Tracker
        >>> model, folder = nn.Sequential(nn.Linear(3, 3)), tempfile.mkdtemp()
        >>> with Tracker(model, folder) as tracker:
        ...     _ = model(torch.randn(16, 3))
        >>> write_report(folder).name
        'report.html'
    """
    run_dir = Path(run_dir)
    df = load(run_dir) if df is None else df
    if layers is None:
        layers = read_layers(run_dir)
    layers = [vars(layer) if not isinstance(layer, dict) else layer for layer in layers]
    architecture = read_architecture(run_dir)
    parts = []
    curves = training_curves(df)
    if curves is not None:
        parts.append(("Training curves", _figures(run_dir, [("training_curves", curves,
            "Loss and metrics per epoch (train dashed, test solid) and the learning rate.")])))  # fmt: skip
    parts.append(("Saturation, receptive field and advice", _overview(run_dir, df, architecture)))
    parts.append(("Saturation and intrinsic dimension", _saturation_figures(run_dir, df, layers)))
    table = layer_table(df, layers, architecture)
    parts.append(("Layers (latest epoch)", table_html(table, "layer")))
    scalars = _scalars_table(df)
    parts.append(("Per-epoch values", table_html(scalars, "epoch") if len(scalars)
                  else "<p class='note'>none logged</p>"))  # fmt: skip
    parts += [(section.title, _render(run_dir, section)) for section in _sections(run_dir, df)]
    run_info = read_run_info(run_dir)
    title = str(run_info.get("run", run_dir.name))
    text = page(
        f"layerscope: {title}",
        f"layerscope run <code>{html.escape(title)}</code>",
        parts,
        intro=run_box(run_dir, df, layers),
        footer="Written by layerscope. Records: <code>records.sqlite</code> in this folder "
        "(load with <code>layerscope.load(path)</code>); figures: <code>figures/</code>.",
    )
    path = run_dir / "report.html"
    atomic_write_text(path, text)
    return path


def _overview(run_dir: Path, df: pd.DataFrame, architecture: dict) -> str:
    figure = main_figure(df, architecture)
    caption = ("Saturation per layer in forward order (probe accuracy when probes exist); below, "
               "the receptive field r_max against the input size I. The dashed red line marks the "
               "border layer b_min: from there on (shaded) layers see more than the whole image and "
               "are predicted unproductive (dissertation 9.3, 10.3); orange: the tail pattern (8.5).")  # fmt: skip
    body = _figures(run_dir, [("overview", figure, caption)]) if figure is not None else (
        "<p class='note'>no saturation recorded yet</p>")  # fmt: skip
    if not architecture:
        body += ("<p class='note'>No receptive-field analysis in this folder "
                 "(<code>architecture.json</code> is written by <code>layerscope run</code>).</p>")  # fmt: skip
    return body + advice_html(advice_lines(df, architecture))


def _saturation_figures(run_dir: Path, df: pd.DataFrame, layers: list[dict]) -> str:
    widths = {layer["name"]: layer["num_features"] for layer in layers}
    has_probes = bool(((df.statistic == "probe_test_acc") & (df.phase == "probe")).any())
    figures = [("saturation_by_layer", saturation_by_layer(df),
                "Saturation per layer at the latest epoch, one line per phase; s_mu in the legend.")]  # fmt: skip
    if has_probes:
        figures.append(("saturation_and_probes", saturation_and_probes(df),
                        "Saturation (left axis) beside probe accuracy (right axis)."))  # fmt: skip
    figures += [(f"saturation_heatmap_{p}", saturation_heatmap(df, p),
                 f"Saturation of every layer over the epochs ({p} phase).")
                for p in _output_phases(df)]  # fmt: skip
    figures.append(("intrinsic_dimension", intrinsic_dimension_by_layer(df, widths=widths),
                    "Intrinsic dimension k per layer beside the layer's width."))  # fmt: skip
    note = f"""<p class="note">Saturation is the share of a layer's output dimensions needed to
explain 99% of the variance of its outputs over a whole phase (the intrinsic dimension k divided by
the layer's width). Low values mean the layer is wider than its data needs; a run of low values at
the end of the network (a "tail pattern") marks layers that contribute little.
{_PROBE_NOTE if has_probes else ""}</p>"""
    return note + _figures(run_dir, figures)
