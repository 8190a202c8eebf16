"""Projecting trained run folders end to end: sweep delta, record, draw, and with several runs
find the relevant eigenspace (SPEC C5; dissertation 7.3, 7.4).

The model comes from ``config.json`` and the newest good checkpoint
(:mod:`layerscope.lab.runs`); the covariances are fitted on the training split without
augmentation and the metric is measured on the test split; the layers are the run's Tracker
layers (its ``tracker.include`` / ``tracker.exclude`` / ``tracker.max_features``). The sweep
becomes records of phase ``"projection"`` (epoch = the checkpoint's), replacing earlier ones in
one transaction, and the figures land in ``figures/`` and the report.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader

from layerscope.errors import OptionError, fix
from layerscope.lab.config import resolve_device
from layerscope.lab.runs import (
    load_run_model,
    read_run_config,
    run_checkpoint,
    train_split_without_augmentation,
)
from layerscope.projection.records import PROJECTION_PHASE, sweep_records
from layerscope.projection.relevance import RelevantEigenspace, relevant_eigenspace
from layerscope.projection.sweeps import layer_columns, sweep
from layerscope.report.figures import save_figure
from layerscope.report.html import write_report
from layerscope.report.projection import projection_dimensions, projection_relative
from layerscope.store.folder import read_layers
from layerscope.store.sqlite import FILE_NAME, SQLiteSink
from layerscope.tracking.layers import output_features, select_layers

__all__ = ["project_run", "project_runs"]


def project_run(
    run_dir: str | os.PathLike,
    *,
    deltas: str | Iterable[float] = "7.3",
    baselines: Sequence[str] = ("pca", "random"),
    seeds: Iterable[int] = (0,),
    device: str | None = None,
    batch_size: int | None = None,
    report: bool = True,
    progress: bool = True,
) -> pd.DataFrame:
    """The delta sweep of a trained run folder, recorded in its store and drawn in its report.

    Args:
        run_dir: the run folder (``config.json`` and ``checkpoints/``).
        deltas: a grid name (``"7.3"``, ``"7.4"``, ``"7.4-fine"``) or delta values.
        baselines: ``"pca"`` and/or ``"random"``.
        seeds: seeds of the random baseline.
        device: where to run (default: the config's device).
        batch_size: batch size of both passes (default: the config's).
        report: rewrite ``report.html`` (else only ``figures/projection_*.png``).
        progress: a progress bar over the deltas (stderr).

    Returns:
        The sweep table (see :func:`~layerscope.projection.sweep`).

    Example (not run here: it needs a trained run)::

        table = project_run("logs/vgg11/digits/32/w0.25", deltas="7.3", seeds=range(3))
        table[["delta", "baseline", "relative_accuracy", "total_dimensions"]]
    """
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    checkpoint = run_checkpoint(run_dir)
    device = resolve_device(device or cfg.device)
    model, data, _ = load_run_model(run_dir, device=device, checkpoint=checkpoint)
    size = batch_size or cfg.batch_size
    if not isinstance(size, int) or size < 1:
        raise OptionError(
            f"{fix(python='batch_size', cli='--batch-size')} must be an int >= 1, got "
            f"{batch_size!r}"
        )
    fit = DataLoader(train_split_without_augmentation(data), batch_size=size,
                     num_workers=cfg.num_workers)  # fmt: skip
    test = DataLoader(data.test, batch_size=size, num_workers=cfg.num_workers)
    options = cfg.tracker
    try:
        table = sweep(
            model, fit, test, deltas, baselines, seeds, include=options.include,
            exclude=options.exclude or None, max_features=options.max_features, device=device,
            progress=progress,
        )  # fmt: skip
        features = _layer_features(model, options)
    finally:
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    _record(run_dir, cfg.run_id, checkpoint.epoch, table, features)
    if report:
        write_report(run_dir)
    else:
        save_figure(projection_relative(table), run_dir / "figures" / "projection_relative.png")
        save_figure(projection_dimensions(table),
                    run_dir / "figures" / "projection_dimensions.png")  # fmt: skip
    return table


def _layer_features(model, options) -> dict[str, int]:
    """Output width of every projected layer (the run's Tracker selection)."""
    selected = select_layers(model, options.include, options.exclude or None)
    return {name: output_features(module) for name, module in selected}


def _record(run_dir: Path, run: str, epoch: int, table: pd.DataFrame, features) -> None:
    """Replace the run's projection records with the sweep's, in one transaction."""
    layers = [column[2:-1] for column in layer_columns(table)]  # forward order
    indices = {layer: index for index, layer in enumerate(layers)}
    # The Tracker's indices where layers.json has them (the same forward order).
    indices |= {info["name"]: info["index"] for info in read_layers(run_dir)
                if info.get("name") in indices}  # fmt: skip
    rows = sweep_records(table, run=run, epoch=epoch, layer_indices=indices,
                         layer_features=features)  # fmt: skip
    sink = SQLiteSink(run_dir / FILE_NAME)
    try:
        sink.replace(rows, run=run, phase=PROJECTION_PHASE, layers=layers)
    finally:
        sink.close()


def project_runs(
    run_dirs: Sequence[str | os.PathLike],
    *,
    alpha: float = 0.05,
    **options,
) -> tuple[dict[str, pd.DataFrame], RelevantEigenspace | None]:
    """:func:`project_run` for every folder; with two or more, the relevant eigenspace over
    them (:func:`~layerscope.projection.relevant_eigenspace`, PCA baseline).

    ``options`` are :func:`project_run`'s. Returns folder -> sweep table, and the relevant
    eigenspace (``None`` for a single run).
    """
    if not run_dirs:
        raise OptionError("give at least one run folder")
    if not 0.0 < alpha < 1.0:
        raise OptionError(f"{fix(python='alpha', cli='--alpha')} must be in (0, 1), got {alpha!r}")
    tables = {str(folder): project_run(folder, **options) for folder in run_dirs}
    if len(tables) < 2 or "pca" not in options.get("baselines", ("pca",)):
        return tables, None
    return tables, relevant_eigenspace(tables, alpha=alpha)
