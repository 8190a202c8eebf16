"""The report's main figure and advice: saturation per layer in forward order (with probe
accuracy when probes exist), the receptive field r_max against the input size with the border
layers b_min / b_max, the layers predicted unproductive, the tail pattern found or not; then the
advice in words (truncate, remove downsampling, width from s_mu; dissertation 8.4-8.5, 9.3,
10.3, 11.3-11.4).

The receptive fields come from ``architecture.json`` in the run folder, which the lab writes
from the model and the input size (:func:`layerscope.lab.experiment.record_architecture`); the
report only reads it (:func:`read_architecture`).
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from layerscope.architecture.advice import find_tail, width_advice
from layerscope.report.figures import layer_order

__all__ = ["ARCHITECTURE_FILE", "advice_lines", "main_figure", "read_architecture"]

ARCHITECTURE_FILE = "architecture.json"


def read_architecture(run_dir: str | os.PathLike) -> dict:
    """``architecture.json`` of a run folder ({} when absent or unreadable); ``"global"``
    receptive fields are read back as ``inf``."""
    path = Path(run_dir) / ARCHITECTURE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except ValueError:
        return {}
    for field in data.get("fields", []):
        for key in ("r_min", "r_max"):
            if field.get(key) == "global":
                field[key] = math.inf
    return data


def _saturation(df: pd.DataFrame) -> tuple[str | None, pd.Series]:
    """The latest per-layer saturation of the eval phase (else train), forward order."""
    rows = df[(df.statistic == "saturation") & df.layer.notna()]
    phases = [p for p in ("eval", "train") if (rows.phase == p).any()]
    if not phases:
        return None, pd.Series(dtype=float)
    rows = rows[rows.phase == phases[0]]
    latest = rows[rows.epoch == rows.epoch.max()].groupby("layer").value.last()
    order = [name for name in layer_order(df) if name in latest.index]
    return phases[0], latest.reindex(order).dropna()


def _probes(df: pd.DataFrame) -> pd.DataFrame:
    rows = df[(df.phase == "probe") & df.layer.notna()]
    rows = rows[rows.statistic.isin(["probe_train_acc", "probe_test_acc"])]
    if rows.empty:
        return pd.DataFrame()
    rows = rows[rows.epoch == rows.epoch.max()]
    return rows.pivot_table(index="layer", columns="statistic", values="value", aggfunc="last")


def main_figure(df: pd.DataFrame, architecture: dict) -> Figure | None:
    """Saturation (and probe accuracy) per layer above r_max per layer, border layers and the
    tail pattern marked. None when no saturation was recorded.

    Example:
        >>> from layerscope.store.records import Record
        >>> df = pd.DataFrame([Record("r", 0, "eval", n, i, "saturation", v, 0.0).as_dict()
        ...     for i, (n, v) in enumerate([("a", .5), ("b", .4), ("c", .1)])])
        >>> arch = {"input_size": [8], "border_min": "c", "border_max": "c", "fields": [
        ...     {"name": "a", "r_max": 3}, {"name": "b", "r_max": 7}, {"name": "c", "r_max": 11}]}
        >>> len(main_figure(df, arch).axes)
        2
    """
    phase, saturation = _saturation(df)
    if phase is None or saturation.empty:
        return None
    names = list(saturation.index)
    x = np.arange(len(names))
    fields = {f["name"]: f for f in architecture.get("fields", [])}
    has_rf = any(name in fields for name in names)
    figure = Figure(figsize=(max(6.5, 0.5 * len(names) + 2.5), 6.2 if has_rf else 4.0),
                    layout="constrained")  # fmt: skip
    grid = figure.subplots(2 if has_rf else 1, 1, sharex=True, squeeze=False)[:, 0]
    top = grid[0]
    top.plot(x, saturation.to_numpy(), marker="o", label=f"saturation ({phase})")
    probes = _probes(df).reindex(names)
    for column, style, label in (("probe_test_acc", "-", "probe test accuracy"),
                                 ("probe_train_acc", ":", "probe train accuracy")):  # fmt: skip
        if column in probes and probes[column].notna().any():
            top.plot(x, probes[column].to_numpy(), style, marker="s", markersize=4,
                     color="tab:green", label=label)  # fmt: skip
    top.set_ylim(0, 1.05)
    top.set_ylabel("saturation / accuracy")
    tail = find_tail(saturation.to_dict()) if len(saturation) >= 4 else None
    if tail is not None:
        top.axvspan(tail.start - 0.4, tail.stop - 0.6, color="tab:orange", alpha=0.15,
                    label=f"tail pattern ({len(tail)} layers)")  # fmt: skip
    top.set_title("tail pattern: " + (f"found ({tail.layers[0]} .. {tail.layers[-1]}, "
                  f"{tail.drop:.0%} below the rest)" if tail else "not found"), fontsize=10)  # fmt: skip
    for axes in grid:
        _borders(axes, names, architecture)
        axes.grid(alpha=0.3)
    if has_rf:
        _receptive_field(grid[1], names, fields, architecture)
    top.legend(fontsize=8, loc="best")
    bottom = grid[-1]
    bottom.set_xticks(x)
    bottom.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    bottom.set_xlabel("layer (forward order)")
    return figure


def _borders(axes, names: list[str], architecture: dict) -> None:
    """Dashed lines at b_min / b_max; the layers from b_min on shaded grey (unproductive)."""
    b_min, b_max = architecture.get("border_min"), architecture.get("border_max")
    if b_min in names:
        start = names.index(b_min)
        axes.axvspan(start - 0.5, len(names) - 0.5, color="grey", alpha=0.08)
        axes.axvline(start, color="tab:red", linestyle="--", linewidth=1, label="b_min")
    if b_max in names and b_max != b_min:
        axes.axvline(names.index(b_max), color="tab:purple", linestyle=":", linewidth=1,
                     label="b_max")  # fmt: skip


def _receptive_field(axes, names: list[str], fields: dict, architecture: dict) -> None:
    size = max(architecture.get("input_size") or [0]) or None
    finite = [
        fields[n]["r_max"] for n in names if n in fields and math.isfinite(fields[n]["r_max"])
    ]
    ceiling = max([*finite, size or 1]) * 2
    values = [fields.get(n, {}).get("r_max", math.nan) for n in names]
    shown = [ceiling if v == math.inf else v for v in values]
    axes.plot(range(len(names)), shown, marker="^", color="tab:brown", label="r_max")
    glob = [i for i, v in enumerate(values) if v == math.inf]
    if glob:
        axes.plot(glob, [ceiling] * len(glob), "^", color="black", label="global (whole input)")
    if size:
        axes.axhline(size, color="tab:red", linewidth=1, label=f"input size I = {size}")
    axes.set_yscale("log")
    axes.set_ylabel("receptive field r_max (px)")
    axes.legend(fontsize=8, loc="upper left")


def advice_lines(df: pd.DataFrame, architecture: dict) -> list[str]:
    """The advice in words: the receptive-field advice stored with the architecture, the tail
    pattern found in the latest saturation, and the width advice from s_mu."""
    lines = list(architecture.get("advice", []))
    if architecture.get("error"):
        lines.append(f"No receptive-field analysis: {architecture['error']}")
    phase, saturation = _saturation(df)
    if phase is None or saturation.empty:
        return lines
    tail = find_tail(saturation.to_dict()) if len(saturation) >= 4 else None
    if tail is None:
        lines.append(f"No tail pattern in the {phase} saturation (no run of 3 or more layers at "
                     f"least 50% below the rest; dissertation 8.5).")  # fmt: skip
    else:
        lines.append(f"Tail pattern in the {phase} saturation: {len(tail)} layers "
                     f"({tail.layers[0]} .. {tail.layers[-1]}) at {tail.drop:.0%} below the "
                     f"rest (8.5): candidates for removal.")  # fmt: skip
    averages = df[(df.statistic == "average_saturation") & (df.phase == phase)]
    if len(averages):
        s_mu = float(averages[averages.epoch == averages.epoch.max()].value.iloc[-1])
        if math.isfinite(s_mu):
            lines.append(width_advice(s_mu).message)
    return lines


def advice_html(lines: list[str]) -> str:
    """The advice box."""
    if not lines:
        return ""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return f"<div class='box advice'><b>Advice</b><ul>{items}</ul></div>"
