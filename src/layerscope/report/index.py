"""A report across runs: one row per run and average saturation against accuracy (SPEC C12).

``index.html`` in a folder of run folders links every run's ``report.html`` and shows s_mu (the
mean saturation of the layers with parameters, dissertation 8.4) against the final test accuracy:
8.4 predicts s_mu rising as a network gets narrower for the same data.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from layerscope.errors import RunFolderError
from layerscope.report.html import write_report
from layerscope.report.page import SORT_SCRIPT, figure_html, page, table_html
from layerscope.report.runbox import flat_config, run_config, varying_keys
from layerscope.store.atomic import atomic_write_text
from layerscope.store.folder import read_run_info, read_status
from layerscope.store.runs import find_stores, load

__all__ = ["run_summary", "saturation_against_accuracy", "write_index"]

_ACCURACY_NAMES = ("test_accuracy", "accuracy")


def _run_facts(folder: Path) -> dict:
    """Model, dataset and width from ``config.json`` (experiments) or ``run.json``, and every
    other config key flattened (the index keeps those that vary)."""
    config = run_config(folder)
    if config:
        return flat_config(config)
    run = read_run_info(folder)
    if not run:
        return {}
    return {"model": run.get("model"), **{
        key: run.get("metadata", {}).get(key) for key in ("dataset", "resolution", "width")
    }}  # fmt: skip


_ALWAYS = ("model", "dataset", "resolution", "width")


def run_summary(root: str | os.PathLike) -> pd.DataFrame:
    """One row per run folder under ``root``: its status, the config keys that vary across the
    runs (and model, dataset, resolution, width), epochs recorded, final test accuracy, s_mu per
    phase at the last epoch, and the best and last layer's probe test accuracy when probes exist.
    Failed and diverged runs are listed with their status.

    Example:
        >>> import tempfile, torch
        >>> from torch import nn
        >>> from layerscope import Tracker
        >>> root, model = tempfile.mkdtemp(), nn.Sequential(nn.Linear(3, 3))
        >>> with Tracker(model, f"{root}/run1") as tracker:
        ...     _ = model(torch.randn(16, 3))
        ...     tracker.end_epoch(test_accuracy=0.5)
        >>> run_summary(root)[["folder", "status", "epochs", "test_accuracy"]].to_dict("records")
        [{'folder': 'run1', 'status': 'recorded (1 epoch)', 'epochs': 1, 'test_accuracy': 0.5}]
    """
    root = Path(root)
    rows, facts = [], []
    for store in find_stores(root):
        folder = store.parent
        df = load(store)
        last = int(df.epoch.max()) if len(df) else -1
        final = df[df.epoch == last]
        row = {"folder": str(folder.relative_to(root)) if folder != root else ".",
               "status": str(read_status(folder, epochs_recorded=last + 1)),
               "epochs": last + 1}  # fmt: skip
        accuracy = final[final.statistic.isin(_ACCURACY_NAMES) & final.layer.isna()]
        row["test_accuracy"] = float(accuracy.value.iloc[-1]) if len(accuracy) else np.nan
        averages = final[final.statistic == "average_saturation"]
        for phase, value in averages.groupby("phase").value.last().items():
            row[f"s_mu ({phase})"] = float(value)
        row |= _probe_columns(df)
        rows.append(row)
        facts.append(_run_facts(folder))
    keys = [k for k in _ALWAYS if any(k in f for f in facts)]
    keys += [k for k in varying_keys(facts) if k not in keys]
    for row, fact in zip(rows, facts, strict=True):
        row |= {key: _cell(fact.get(key)) for key in keys}
    order = ["folder", "status", *keys]
    summary = pd.DataFrame(rows)
    if summary.empty:
        return summary
    return summary[order + [c for c in summary.columns if c not in order]]


def _cell(value: object) -> object:
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def _probe_columns(df: pd.DataFrame) -> dict:
    rows = df[(df.phase == "probe") & (df.statistic == "probe_test_acc") & df.layer.notna()]
    if rows.empty:
        return {}
    rows = rows[rows.epoch == rows.epoch.max()].sort_values("layer_index", kind="stable")
    return {"probe_test_acc (best layer)": float(rows.value.max()),
            "probe_test_acc (last layer)": float(rows.value.iloc[-1])}  # fmt: skip


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
        width = f" (w={label:g})" if isinstance(label, float) and not np.isnan(label) else ""
        axes.annotate(f"{row['folder']}{width}", (row[column], row["test_accuracy"]), fontsize=7,
                      xytext=(4, 4), textcoords="offset points")  # fmt: skip
    axes.set_xlabel(f"average saturation s_mu ({phase}, last epoch)")
    axes.set_ylabel("test accuracy (last epoch)")
    axes.set_title("Average saturation against accuracy")
    axes.grid(alpha=0.3)
    return figure


def write_index(root: str | os.PathLike, *, run_reports: bool = True) -> Path:
    """Write ``root/index.html`` over every run under ``root`` (and, with ``run_reports``, each
    run's report): a sortable table (click a header) with the status and the keys that vary,
    and s_mu against accuracy with each point labelled by its run. Works offline.

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
    summary = summary.sort_values(sort_keys or ["folder"], kind="stable")
    figure = saturation_against_accuracy(summary)
    caption = ("Average saturation s_mu (eval phase, last epoch) against the final test accuracy, "
               "one point per run. Dissertation 8.4: narrower networks (less capacity for the "
               "same data) saturate more.")  # fmt: skip
    table = table_html(summary.set_index("folder"), "folder", sortable=True)
    table = _link_folders(table, summary.folder)
    bad = int(summary.status.str.startswith(("diverged", "failed")).sum())
    intro = (f"<p>{len(summary)} run(s){f', {bad} diverged or failed' if bad else ''}. Click a "
             f"column header to sort.</p>")  # fmt: skip
    text = page(
        f"layerscope: {root.name}",
        f"layerscope runs in <code>{html.escape(str(root))}</code>",
        [
            ("Runs", table),
            (
                "Average saturation against accuracy",
                figure_html(root / "s_mu_vs_accuracy.png", figure, caption),
            ),
        ],
        intro=intro,
        footer="Written by layerscope (<code>layerscope report DIR</code>).",
        script=SORT_SCRIPT,
    )
    path = root / "index.html"
    atomic_write_text(path, text)
    return path


def _link_folders(table: str, folders) -> str:
    """Make each run's folder cell a link to its report."""
    for folder in folders:
        cell = f"<td class='name'>{html.escape(str(folder))}</td>"
        link = html.escape(f"{folder}/report.html")
        table = table.replace(cell, f"<td class='name'><a href='{link}'>"
                              f"{html.escape(str(folder))}</a></td>", 1)  # fmt: skip
    return table
