"""The report's weight-dynamics section (SPEC C8): shown when ``layerscope weights RUN_DIR`` has
written its records (phase ``"weights"``: ``esd_*``, ``rwc_cluster*``, ``pruning_*``,
``low_rank_*``) and files (``weights/spectra.json``, ``weights/low_rank_curves.csv``,
``weights/graph-*.json``); the frame potential the Tracker records is drawn beside them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from layerscope.report.sections import REPORT_SECTIONS, ReportSection, Section
from layerscope.report.weight_clusters import (
    rwc_cluster_curves,
    rwc_cluster_plane,
    rwc_cluster_scree,
)
from layerscope.report.weight_figures import (
    graph_figure,
    low_rank_figure,
    metric_over_epochs,
    pruning_figure,
    spectrum_figure,
)
from layerscope.weights.clusters import RWCClusters
from layerscope.weights.rwc import rwc_matrix
from layerscope.weights.spectra import LayerSpectrum

__all__ = ["read_pruning"]

_PRUNING = re.compile(r"pruning_accuracy\[(\w+),(-?\d+),(\d+)\]")
_MAX_SPECTRA = 4


def read_pruning(df: pd.DataFrame) -> pd.DataFrame:
    """The stored pruning curves as :func:`~layerscope.weights.pruning_curves`'s table
    (criterion, seed, removed, metric) plus the layer.

    Example:
        >>> df = pd.DataFrame({"phase": "weights", "layer": "fc", "epoch": 3,
        ...                    "statistic": ["pruning_accuracy[random,0,4]"], "value": [0.5]})
        >>> read_pruning(df).values.tolist()
        [['fc', 'random', 0, 4, 0.5]]
    """
    rows = df[(df.phase == "weights") & df.statistic.str.startswith("pruning_accuracy[")]
    parsed = []
    for layer, statistic, value in zip(rows.layer, rows.statistic, rows.value, strict=True):
        match = _PRUNING.fullmatch(statistic)
        if match:
            parsed.append((layer, match[1], int(match[2]), int(match[3]), float(value)))
    return pd.DataFrame(parsed, columns=["layer", "criterion", "seed", "removed", "metric"])


def _clusters(df: pd.DataFrame) -> list:
    scalars = df[(df.phase == "weights") & df.layer.isna()].set_index("statistic").value
    if "rwc_cluster_k" not in scalars:
        return []
    matrix = rwc_matrix(df)
    fitted = RWCClusters(k=int(scalars["rwc_cluster_k"])).fit(matrix)
    stored = df[(df.phase == "weights") & (df.statistic == "rwc_cluster")]
    labels = dict(zip(stored.layer, stored.value.astype(int), strict=True))
    fitted.labels_ = np.array([labels.get(layer, label)
                               for layer, label in zip(fitted.layers_, fitted.labels_, strict=True)])  # fmt: skip
    epochs = list(matrix.columns)
    return [("weights_rwc_clusters", rwc_cluster_curves(fitted, epochs)),
            ("weights_rwc_plane", rwc_cluster_plane(fitted)),
            ("weights_rwc_scree", rwc_cluster_scree(fitted))]  # fmt: skip


def _spectra(run_dir: Path) -> list:
    path = run_dir / "weights" / "spectra.json"
    if not path.is_file():
        return []
    stored = json.loads(path.read_text(encoding="utf-8"))
    names = list(stored["layers"])
    if len(names) > _MAX_SPECTRA:  # the first, two in the middle and the last layer
        picks = np.linspace(0, len(names) - 1, _MAX_SPECTRA).round().astype(int)
        names = [names[i] for i in dict.fromkeys(picks.tolist())]
    figures = []
    for name in names:
        entry = stored["layers"][name]
        spectrum = LayerSpectrum(np.array(entry["eigenvalues"]), entry["rows"], entry["columns"],
                                 entry["variance"], entry["matrices"])  # fmt: skip
        title = f"{name}, epoch {stored['epoch']} ({entry['rows']} x {entry['columns']})"
        figures.append((f"weights_esd_{name}", spectrum_figure(spectrum, title=title)))
    return figures


def _low_rank(run_dir: Path, df: pd.DataFrame) -> tuple[list, str]:
    rows = df[(df.phase == "weights") & df.statistic.str.startswith("low_rank_")]
    if rows.empty:
        return [], ""
    table = rows.pivot_table(index="layer", columns="statistic", values="value", aggfunc="last")
    table = table.rename(columns=lambda c: c[len("low_rank_") :]).reset_index()
    html = table.to_html(index=False, border=0, float_format=lambda v: f"{v:.4g}")
    path = run_dir / "weights" / "low_rank_curves.csv"
    if not path.is_file():
        return [], html
    shown = table.rename(columns={"accuracy": "metric_low_rank", "unmodified_accuracy": "metric"})
    return [("weights_low_rank", low_rank_figure(pd.read_csv(path), shown))], html


def _graphs(run_dir: Path) -> list:
    found = sorted((run_dir / "weights").glob("graph-*-epoch-*.json"),
                   key=lambda p: int(p.stem.rsplit("-", 1)[-1]))  # fmt: skip
    if not found:
        return []
    graph = json.loads(found[-1].read_text(encoding="utf-8"))
    return [("weights_graph", graph_figure(graph, title=found[-1].stem))]


def _section(run_dir, df: pd.DataFrame) -> Section | None:
    if df is None or not ((df.phase == "weights") & df.statistic.str.startswith("esd_")).any():
        return None
    run_dir = Path(run_dir)
    figures = _clusters(df)
    figures.append(("weights_frame_potential", metric_over_epochs(
        df, "frame_potential", ylabel="FP / units", title="frame potential per unit",
        per_unit=True)))  # fmt: skip
    figures.append(("weights_alpha", metric_over_epochs(df, "esd_alpha", ylabel="alpha",
                                                        title="power-law alpha of W W^T")))  # fmt: skip
    figures += _spectra(run_dir)
    pruning = read_pruning(df)
    if not pruning.empty:
        layer = pruning.layer.iloc[0]
        figures.append(("weights_pruning", pruning_figure(pruning, title=f"pruning {layer}")))
    low_rank_figures, html = _low_rank(run_dir, df)
    figures += low_rank_figures + _graphs(run_dir)
    return Section(
        "Weight dynamics",
        figures,
        note="Layers clustered by their relative weight change over epochs (WeightScale, "
        "K-Means++ after the 2-sd outlier rule); frame potential of each layer's normalised unit "
        "rows; the spectra of W W^T with the Marchenko-Pastur density of a random matrix of the "
        "same shape and variance, and the power-law exponent alpha of their tails; greedy "
        "pruning of units without retraining; the accuracy with each layer replaced by its "
        "rank-k approximation at the residual curve's elbow (Sources of Redundancy).",
        html=html,
    )


REPORT_SECTIONS.add("weights", ReportSection(
    _section, order=40, phases=frozenset(),
    description="weight dynamics: RWC clusters, frame potential, spectra, pruning, low rank",
))  # fmt: skip
