"""Weight dynamics of a trained run folder end to end (SPEC C8): ``layerscope weights RUN_DIR``.

Reads the run's records (relative weight change, recorded by the Tracker every epoch) and its
epoch checkpoints (``checkpoints.keep = "all"`` keeps every one), and writes back, as records of
phase ``"weights"`` labelled with the real epoch numbers:

- RWC clusters over the layer x epoch matrix (``rwc_cluster`` per layer, ``rwc_cluster_k`` and
  ``rwc_cluster_silhouette`` for the model, at the last epoch of the matrix);
- the heavy-tail metrics of every layer's weight spectrum at every chosen epoch (``esd_alpha``,
  ``esd_stable_rank``, ...), the eigenvalues of the last one in ``weights/spectra.json``;
- with ``prune=LAYER``: pruning curves of that layer at the last epoch
  (``pruning_accuracy[criterion,seed,removed]``);
- with ``low_rank=True``: per layer the elbow rank and the accuracy with W_k
  (``low_rank_k``, ``low_rank_accuracy``, ...), the residual curves in
  ``weights/low_rank_curves.csv``;
- with ``graph=LAYER``: the weight-similarity graph of that layer at every chosen epoch in
  ``weights/graph-<layer>-epoch-<N>.json`` (and ``.graphml`` where networkx is installed).

A rerun replaces the earlier results (one transaction); the Tracker's records stay.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from layerscope.errors import OptionError, RunFolderError, fix, toml_lines
from layerscope.lab.checkpoint import all_checkpoints, load_checkpoint
from layerscope.lab.config import resolve_device
from layerscope.lab.runs import load_run_model, read_run_config
from layerscope.report.html import write_report
from layerscope.store.records import Record
from layerscope.store.runs import load
from layerscope.store.sqlite import FILE_NAME, SQLiteSink
from layerscope.weights import (
    RWCClusters,
    get_layer,
    layer_matrix,
    layer_spectrum,
    low_rank_table,
    pruning_curves,
    rwc_matrix,
    unit_layers,
    weight_spectra,
)
from layerscope.weights.graphs import save_graph, weight_graph

__all__ = ["ESD_METRICS", "WEIGHT_STATISTICS", "WeightsResult", "weights_run"]

PHASE = "weights"
ESD_METRICS = ("alpha", "alpha_weighted", "log_norm", "log_spectral_norm", "stable_rank",
               "matrix_rank", "entropy", "lambda_max", "num_pl_spikes", "D", "xmin",
               "log_alpha_norm", "mp_variance", "Q")  # fmt: skip
#: The statistics this workflow owns in phase "weights" (SQL LIKE patterns).
WEIGHT_STATISTICS = ("esd_%", "rwc_cluster%", "pruning_%", "low_rank_%")
SPECTRA_FILE = "spectra.json"
LOW_RANK_FILE = "low_rank_curves.csv"


@dataclass
class WeightsResult:
    """What :func:`weights_run` computed (the same is in the run's store and files)."""

    epochs: list[int]
    clusters: RWCClusters | None = None
    spectra: pd.DataFrame = field(default_factory=pd.DataFrame)
    pruning: pd.DataFrame | None = None
    low_rank: pd.DataFrame | None = None
    graphs: list[Path] = field(default_factory=list)


def _choose_epochs(run_dir: Path, epochs: Sequence[int] | None) -> list[tuple[int, Path]]:
    found = all_checkpoints(run_dir / "checkpoints")
    if not found:
        raise RunFolderError(
            f"{run_dir} has no epoch checkpoints in checkpoints/; train it first (`layerscope "
            f"run CONFIG`), keeping every epoch to analyse weights over training, "
            f"{toml_lines('checkpoints.keep', 'all')}"
        )
    if epochs is None:
        return found
    available = dict(found)
    missing = [e for e in epochs if e not in available]
    if missing:
        raise OptionError(
            f"{fix(python=f'epochs={missing}', cli='--epochs ' + ' '.join(map(str, missing)))}"
            f": {run_dir} has checkpoints of epochs {sorted(available)} only (0-based); train "
            f"again keeping every epoch, {toml_lines('checkpoints.keep', 'all')}"
        )
    return [(e, available[e]) for e in sorted(set(epochs))]


def _accuracy(loader: DataLoader, device: torch.device):
    def evaluate(model: nn.Module) -> float:
        model.to(device)
        correct = total = 0
        for x, y in loader:
            prediction = model(x.to(device)).argmax(1)
            correct += int((prediction == y.to(device)).sum())
            total += len(y)
        return correct / total if total else float("nan")

    return evaluate


def _rows(run: str, epoch: int, layer: str | None, index, values: dict) -> list[Record]:
    now = time.time()
    return [Record(run, epoch, PHASE, layer, index, name, float(value), now)
            for name, value in values.items()]  # fmt: skip


def _clusters(df: pd.DataFrame, run: str, k, seed: int, indices) -> tuple:
    try:
        matrix = rwc_matrix(df, run=run)
    except OptionError:
        return None, []
    if len(matrix) < 3 and k == "auto":
        return None, []
    fitted = RWCClusters(k=k, seed=seed).fit(matrix)
    last = int(matrix.columns.max())
    rows = []
    for layer, label in zip(fitted.layers_, fitted.labels_, strict=True):
        rows += _rows(run, last, layer, indices.get(layer), {"rwc_cluster": int(label)})
    rows += _rows(run, last, None, None, {"rwc_cluster_k": fitted.k_,
                                          "rwc_cluster_silhouette": fitted.silhouette_})  # fmt: skip
    return fitted, rows


def _save_spectra(folder: Path, model: nn.Module, epoch: int, conv: str) -> None:
    layers = {}
    for name in unit_layers(model):
        spectrum = layer_spectrum(get_layer(model, name), conv)
        layers[name] = {"eigenvalues": spectrum.eigenvalues.tolist(), "rows": spectrum.rows,
                        "columns": spectrum.columns, "variance": spectrum.variance,
                        "matrices": spectrum.matrices}  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"epoch": epoch, "conv": conv, "layers": layers})
    (folder / SPECTRA_FILE).write_text(text, encoding="utf-8")


def weights_run(
    run_dir: str | os.PathLike,
    *,
    epochs: Sequence[int] | None = None,
    prune: str | None = None,
    graph: str | None = None,
    low_rank: bool = False,
    k: int | str = "auto",
    conv: str = "reshape",
    seed: int = 0,
    device: str | None = None,
    batch_size: int | None = None,
    report: bool = True,
    progress: bool = True,
) -> WeightsResult:
    """Weight dynamics of a trained run folder, recorded in its store and drawn in its report.

    Args:
        run_dir: the run folder (``config.json``, ``records.sqlite``, ``checkpoints/``).
        epochs: 0-based epochs to analyse (default: every epoch with a checkpoint).
        prune: a layer whose units to prune greedily at the last chosen epoch.
        graph: a layer whose weight-similarity graph to export at every chosen epoch.
        low_rank: low-rank approximation of every layer with unit rows at the last epoch.
        k: RWC clusters, ``"auto"`` (silhouette) or a number.
        conv: convolution matrices of the spectra, ``"reshape"`` or ``"slices"``.
        seed: seed of K-Means (pruning's random criterion uses seeds 0..4).
        device, batch_size: for the accuracy passes (default: the config's).
        report: rewrite ``report.html``.
        progress: progress bars on stderr.

    Example (not run here: it needs a trained run)::

        result = weights_run("logs/resnet18_cifar/digits/32/s0", prune="fc", low_rank=True)
        result.clusters.labels_, result.low_rank[["layer", "k", "metric_low_rank"]]
    """
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    chosen = _choose_epochs(run_dir, epochs)
    device = resolve_device(device or cfg.device)
    last_epoch, last_path = chosen[-1]
    model, data, _ = load_run_model(run_dir, device="cpu", checkpoint=load_checkpoint(last_path))
    for name in (prune, graph):
        if name is not None:
            get_layer(model, name)  # an unknown layer fails before any work
    indices = {name: i for i, name in enumerate(unit_layers(model))}
    size = batch_size or cfg.batch_size
    loader = DataLoader(data.test, batch_size=size, num_workers=cfg.num_workers)
    evaluate = _accuracy(loader, device)
    result = WeightsResult([e for e, _ in chosen])
    result.clusters, rows = _clusters(load(run_dir), cfg.run_id, k, seed, indices)
    tables = []
    for epoch, path in tqdm(chosen, desc="weight spectra", disable=not progress, leave=False):
        model.load_state_dict(load_checkpoint(path, map_location="cpu").state["model"])
        table = weight_spectra(model, conv=conv).assign(epoch=epoch)
        tables.append(table)
        for spectrum in table.to_dict("records"):
            values = {f"esd_{m}": spectrum[m] for m in ESD_METRICS}
            rows += _rows(cfg.run_id, epoch, spectrum["layer"], indices.get(spectrum["layer"]),
                          values)  # fmt: skip
        if graph is not None:
            result.graphs += save_graph(weight_graph(layer_matrix(model, graph)),
                                        run_dir / "weights" / f"graph-{graph}-epoch-{epoch}")  # fmt: skip
    result.spectra = pd.concat(tables, ignore_index=True)
    _save_spectra(run_dir / "weights", model, last_epoch, conv)
    if prune is not None:
        result.pruning = _prune(model, prune, evaluate, progress)
        rows += _pruning_rows(cfg.run_id, last_epoch, prune, indices.get(prune), result.pruning)
    if low_rank:
        result.low_rank = _low_rank(model, evaluate, run_dir / "weights")
        for entry in result.low_rank.to_dict("records"):
            values = {f"low_rank_{key}": entry[key] for key in ("k", "residual", "norm_percent")}
            values["low_rank_accuracy"] = entry["metric_low_rank"]
            values["low_rank_unmodified_accuracy"] = entry["metric"]
            rows += _rows(cfg.run_id, last_epoch, entry["layer"], indices.get(entry["layer"]),
                          values)  # fmt: skip
    _record(run_dir, cfg.run_id, rows, list(indices))
    if report:
        write_report(run_dir)
    return result


def _prune(model: nn.Module, layer: str, evaluate, progress: bool) -> pd.DataFrame:
    units = layer_matrix(model, layer).shape[0]
    step = max(1, units // 32)  # about 33 points per curve
    return pruning_curves(model, layer, evaluate, step=step, progress=progress)


def _pruning_rows(run: str, epoch: int, layer: str, index, table: pd.DataFrame) -> list[Record]:
    values = {f"pruning_accuracy[{r['criterion']},{r['seed']},{r['removed']}]": r["metric"]
              for r in table.to_dict("records")}  # fmt: skip
    return _rows(run, epoch, layer, index, values)


def _low_rank(model: nn.Module, evaluate, folder: Path) -> pd.DataFrame:
    layers = [name for name in unit_layers(model)
              if getattr(get_layer(model, name), "groups", 1) == 1]  # fmt: skip
    table, curves = low_rank_table(model, layers, evaluate)
    folder.mkdir(parents=True, exist_ok=True)
    curves.to_csv(folder / LOW_RANK_FILE, index=False)
    return table


def _record(run_dir: Path, run: str, rows: list[Record], layers: list[str]) -> None:
    sink = SQLiteSink(run_dir / FILE_NAME)
    try:
        sink.replace(rows, run=run, phase=PHASE, layers=layers, statistics=WEIGHT_STATISTICS)
    finally:
        sink.close()
