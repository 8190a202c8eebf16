"""A report across runs: one row per run and average saturation against accuracy (SPEC C12).

``index.html`` in a folder of run folders links every run's ``report.html`` and shows s_mu (the
mean saturation of the layers with parameters, dissertation 8.4) against the final test accuracy:
8.4 predicts s_mu rising as a network gets narrower for the same data.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from layerscope.errors import RunFolderError
from layerscope.report.figures import save_figure
from layerscope.report.html import write_report
from layerscope.store.atomic import atomic_write_text
from layerscope.store.runs import find_stores, load

__all__ = ["run_summary", "saturation_against_accuracy", "write_index"]

_ACCURACY_NAMES = ("test_accuracy", "accuracy")


def _run_facts(folder: Path) -> dict:
    """Model, dataset and width from ``config.json`` (experiments) or ``run.json``."""
    facts: dict = {}
    if (folder / "config.json").is_file():
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        facts = {key: config.get(key) for key in ("model", "dataset", "resolution", "width")}
    elif (folder / "run.json").is_file():
        run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        facts = {"model": run.get("model"), **{
            key: run.get("metadata", {}).get(key) for key in ("dataset", "resolution", "width")
        }}  # fmt: skip
    return facts


def run_summary(root: str | os.PathLike) -> pd.DataFrame:
    """One row per run folder under ``root``: facts, last epoch, final test accuracy and s_mu
    per phase at the last epoch.

    Example:
        >>> import tempfile, torch
        >>> from torch import nn
        >>> from layerscope import Tracker
        >>> root, model = tempfile.mkdtemp(), nn.Sequential(nn.Linear(3, 3))
        >>> with Tracker(model, f"{root}/run1") as tracker:
        ...     _ = model(torch.randn(16, 3))
        ...     tracker.end_epoch(test_accuracy=0.5)
        >>> run_summary(root)[["folder", "epochs", "test_accuracy"]].to_dict("records")
        [{'folder': 'run1', 'epochs': 1, 'test_accuracy': 0.5}]
    """
    root = Path(root)
    rows = []
    for store in find_stores(root):
        folder = store.parent
        df = load(store)
        if df.empty:
            continue
        last = int(df.epoch.max())
        final = df[df.epoch == last]
        row = {"folder": str(folder.relative_to(root)) if folder != root else ".",
               **_run_facts(folder), "epochs": last + 1}  # fmt: skip
        accuracy = final[final.statistic.isin(_ACCURACY_NAMES) & final.layer.isna()]
        row["test_accuracy"] = float(accuracy.value.iloc[-1]) if len(accuracy) else np.nan
        averages = final[final.statistic == "average_saturation"]
        for phase, value in averages.groupby("phase").value.last().items():
            row[f"s_mu ({phase})"] = float(value)
        rows.append(row)
    return pd.DataFrame(rows)


def saturation_against_accuracy(summary: pd.DataFrame, phase: str = "eval") -> Figure:
    """Scatter of s_mu (``phase``) against final test accuracy, one point per run.

    Example:
        >>> summary = pd.DataFrame({"folder": ["a", "b"], "width": [1.0, 0.5],
        ...     "test_accuracy": [0.9, 0.8], "s_mu (eval)": [0.3, 0.5]})
        >>> len(saturation_against_accuracy(summary).axes[0].collections[0].get_offsets())
        2
    """
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.add_subplot()
    column = f"s_mu ({phase})"
    if column not in summary or summary[column].isna().all():
        axes.axis("off")
        axes.text(0.5, 0.5, f"no average saturation for phase {phase!r}", ha="center")
        return figure
    axes.scatter(summary[column], summary["test_accuracy"])
    for _, row in summary.iterrows():
        label = row.get("width")
        label = (
            f"w={label:g}" if isinstance(label, float) and not np.isnan(label) else row["folder"]
        )
        axes.annotate(str(label), (row[column], row["test_accuracy"]), fontsize=8,
                      xytext=(4, 4), textcoords="offset points")  # fmt: skip
    axes.set_xlabel(f"average saturation s_mu ({phase}, last epoch)")
    axes.set_ylabel("test accuracy (last epoch)")
    axes.set_title("Average saturation against accuracy")
    axes.grid(alpha=0.3)
    return figure


def write_index(root: str | os.PathLike, *, run_reports: bool = True) -> Path:
    """Write ``root/index.html`` over every run under ``root`` (and each run's report).

    Example:
        >>> import tempfile, torch
        >>> from torch import nn
        >>> from layerscope import Tracker
        >>> root, model = tempfile.mkdtemp(), nn.Sequential(nn.Linear(3, 3))
        >>> with Tracker(model, f"{root}/run1") as tracker:
        ...     _ = model(torch.randn(16, 3))
        >>> write_index(root).name
        'index.html'
    """
    root = Path(root)
    summary = run_summary(root)
    if summary.empty:
        raise RunFolderError(f"no run with records under {root}")
    if run_reports:
        for folder in summary.folder:
            write_report(root / folder)
    sort_keys = [k for k in ("model", "dataset", "resolution", "width") if k in summary]
    summary = summary.sort_values(sort_keys or ["folder"], ascending=[True] * len(sort_keys or [0]))
    image = save_figure(saturation_against_accuracy(summary), root / "s_mu_vs_accuracy.png")
    header = "".join(f"<th>{html.escape(str(c))}</th>" for c in summary.columns)
    body = []
    for _, row in summary.iterrows():
        cells = []
        for column, value in row.items():
            if column == "folder":
                link = html.escape(f"{value}/report.html")
                cells.append(f"<td><a href='{link}'>{html.escape(str(value))}</a></td>")
            elif isinstance(value, float):
                cells.append(f"<td>{'' if np.isnan(value) else f'{value:.4g}'}</td>")
            else:
                cells.append(f"<td>{html.escape(str(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>layerscope: {html.escape(root.name)}</title>
<style>body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; }}
table {{ border-collapse: collapse; font-size: 0.85em; }} th, td {{ border-bottom: 1px solid #ddd;
padding: 3px 8px; }} th {{ background: #f4f4f4; }}</style></head><body>
<h1>layerscope runs in <code>{html.escape(str(root))}</code></h1>
<table><tr>{header}</tr>{"".join(body)}</table>
<h2>Average saturation against accuracy</h2>
<p>Dissertation 8.4: narrower networks (less capacity for the same data) saturate more.</p>
<img alt="s_mu against accuracy" src="data:image/png;base64,{base64.b64encode(image).decode()}">
</body></html>
"""
    path = root / "index.html"
    atomic_write_text(path, page)
    return path
