"""``report.html``: one self-contained page per run (figures embedded), readable without a server.

Also writes the figures as PNG files into ``<run_dir>/figures/``. Every file is replaced
atomically, so a reader never sees a half-written report.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

import layerscope.report.positions  # noqa: F401 - registers its section
from layerscope.report.figures import (
    intrinsic_dimension_by_layer,
    layer_order,
    saturation_and_probes,
    saturation_by_layer,
    saturation_heatmap,
    save_figure,
)
from layerscope.report.sections import REPORT_SECTIONS, Section, section_phases
from layerscope.store.atomic import atomic_write_text
from layerscope.store.folder import read_layers, read_run_info
from layerscope.store.runs import load

__all__ = ["layer_table", "write_report"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; } td.name, th.name { text-align: left; font-family: monospace; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.note { color: #555; font-size: 0.9em; }
"""


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


def layer_table(df: pd.DataFrame, layers: Sequence[dict] | None = None) -> pd.DataFrame:
    """Per-layer summary of the latest epoch: width, saturation and intrinsic dimension per
    phase, latest relative weight change and distance from initialisation.

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
    columns += [(s, s, "weights") for s in ("relative_weight_change", "distance_from_init")]
    for column, statistic, phase in columns:
        latest = _latest_per_layer(df, statistic, phase)
        if len(latest):
            table[column] = latest.reindex(order)
    return table


def _format(value: object) -> str:
    if isinstance(value, float):
        if pd.isna(value):
            return ""
        return f"{value:.0f}" if value.is_integer() and abs(value) >= 10 else f"{value:.4g}"
    return html.escape(str(value))


def _html_table(frame: pd.DataFrame, index_name: str) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for index, row in frame.iterrows():
        cells = "".join(f"<td>{_format(v)}</td>" for v in row)
        rows.append(f"<tr><td class='name'>{html.escape(str(index))}</td>{cells}</tr>")
    return (
        f"<table><tr><th class='name'>{html.escape(index_name)}</th>{head}</tr>"
        + "".join(rows)
        + "</table>"
    )


def _scalars_table(df: pd.DataFrame) -> pd.DataFrame:
    rows = df[df.layer.isna() & ~df.phase.isin(section_phases())]  # sections show their own
    if rows.empty:
        return pd.DataFrame()
    names = rows.statistic.where(rows.phase == "epoch", rows.statistic + " (" + rows.phase + ")")
    return rows.assign(name=names).pivot_table(
        index="epoch", columns="name", values="value", aggfunc="last"
    )


def _images(run_dir: Path, figures: Sequence[tuple[str, object]]) -> str:
    """Save each figure to ``figures/<name>.png`` and return the <img> tags embedding them."""
    images = []
    for name, figure in figures:
        data = save_figure(figure, run_dir / "figures" / f"{name}.png")
        images.append(f"<img alt='{name}' src='data:image/png;base64,"
                      f"{base64.b64encode(data).decode()}'>")  # fmt: skip
    return "".join(images)


def _sections(run_dir: Path, df: pd.DataFrame) -> list[Section]:
    """The registered sections with something to show, in their order."""
    entries = sorted(
        (REPORT_SECTIONS.get(n) for n in REPORT_SECTIONS.list()), key=lambda e: e.order
    )
    return [section for entry in entries if (section := entry(run_dir, df)) is not None]


def _render(run_dir: Path, section: Section) -> str:
    note = f"<p class='note'>{html.escape(section.note)}</p>" if section.note else ""
    return (f"<h2>{html.escape(section.title)}</h2>{note}{section.html}"
            f"{_images(run_dir, section.figures)}")  # fmt: skip


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
    widths = {layer["name"]: layer["num_features"] for layer in layers}
    figures = [("saturation_by_layer", saturation_by_layer(df))]
    has_probes = bool(((df.statistic == "probe_test_acc") & (df.phase == "probe")).any())
    if has_probes:
        figures.append(("saturation_and_probes", saturation_and_probes(df)))
    figures += [(f"saturation_heatmap_{p}", saturation_heatmap(df, p)) for p in _output_phases(df)]
    figures.append(("intrinsic_dimension", intrinsic_dimension_by_layer(df, widths=widths)))
    images = _images(run_dir, figures)
    sections = "".join(_render(run_dir, section) for section in _sections(run_dir, df))

    run_info = read_run_info(run_dir)
    title = html.escape(str(run_info.get("run", run_dir.name)))
    facts = [f"model <b>{html.escape(str(run_info.get('model', '?')))}</b>",
             f"started {html.escape(str(run_info.get('started', '?')))}",
             f"{len(layers)} recorded layers",
             f"epochs recorded: {df.epoch.nunique() if len(df) else 0}"]  # fmt: skip
    scalars = _scalars_table(df)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>layerscope: {title}</title>
<style>{_STYLE}</style></head><body>
<h1>layerscope run <code>{title}</code></h1>
<p>{" &middot; ".join(facts)}</p>
<h2>Per-epoch values</h2>
{_html_table(scalars, "epoch") if len(scalars) else "<p class='note'>none logged</p>"}
<h2>Saturation and intrinsic dimension</h2>
<p class="note">Saturation is the share of a layer's output dimensions needed to explain 99% of
the variance of its outputs over a whole phase (the intrinsic dimension divided by the layer's
width). Low values mean the layer is wider than its data needs; a run of low values at the end of
the network (a "tail pattern") marks layers that contribute little.{_PROBE_NOTE if has_probes else ""}</p>
{images}
<h2>Layers (latest epoch)</h2>
{_html_table(layer_table(df, layers), "layer")}
{sections}
<p class="note">Written by layerscope. Records: <code>records.sqlite</code> in this folder
(load with <code>layerscope.load(path)</code>).</p>
</body></html>
"""
    path = run_dir / "report.html"
    atomic_write_text(path, page)
    return path
