"""Experiments: every run of a config, each through the whole pipeline, each resumable (SPEC C10).

One run is: train (:func:`~layerscope.lab.trainer.train_run`, with tracking, checkpoints and a
live report) -> model size (parameters, MACs and FLOPs as records of phase ``"run"``) -> probes
(with ``probes = true``) -> the final report. Every step can be repeated: a finished run skips
training, the model size replaces its earlier records, probes reuse their cache, the report is
rewritten. So rerunning the same command after a crash continues where it stopped.

A config's grid of runs goes through an executor (:func:`layerscope.lab.grid.run_experiment`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from layerscope.architecture.complexity import count_flops, count_parameters
from layerscope.datasets import load_dataset
from layerscope.lab.config import RunConfig
from layerscope.lab.probing import probe_run
from layerscope.lab.runs import read_run_config
from layerscope.lab.trainer import DONE_FILE, RunResult, build_model, train_run
from layerscope.probes.results import ProbeSettings
from layerscope.report.html import write_report
from layerscope.store.records import make_records
from layerscope.store.sqlite import SQLiteSink

__all__ = ["record_model_size", "resume_run", "run_one"]

#: Phase of the model-size records.
RUN_PHASE = "run"


def run_one(
    cfg: RunConfig,
    *,
    folder: str | os.PathLike | None = None,
    position: tuple[int, int] = (1, 1),
    progress: bool = True,
    after_epoch: Callable[[int], None] | None = None,
) -> RunResult:
    """Train -> model size -> probes -> report for one configured run (see the module docstring).

    Example (trains, so not run here; tests/lab/test_trainer.py runs it on a tiny model):
        ``run_one(load_config("examples/vgg_width_sweep.toml")[0])``
    """
    result = train_run(cfg, folder=folder, position=position, progress=progress,
                       after_epoch=after_epoch)  # fmt: skip
    record_model_size(result.run_dir, cfg)
    if cfg.probes:  # cached probes are not refitted; a crash mid-probes resumes here
        settings = ProbeSettings.preset(cfg.probe_preset)
        probe_run(result.run_dir, settings=settings, progress=progress, report=False)
    write_report(result.run_dir)
    return result


def record_model_size(run_dir: str | os.PathLike, cfg: RunConfig | None = None) -> dict:
    """Parameters, multiply-accumulates and FLOPs (2 x MACs) of one forward pass of one image,
    recorded (replacing earlier ones) as phase ``"run"`` of the run's last epoch.

    The counts do not depend on the weights, so the model is built from the config; the data's
    shape comes from ``done.json`` (or the dataset, for folders written before it held it).
    """
    run_dir = Path(run_dir)
    cfg = cfg or read_run_config(run_dir)
    shape = _data_shape(run_dir, cfg)
    model = build_model(cfg, shape["num_classes"], shape["in_channels"])
    size = shape["input_size"]
    size = tuple(size) if isinstance(size, list) else size
    flops = count_flops(model, size, in_channels=shape["in_channels"])
    values = {"parameters": count_parameters(model).total, "macs": flops.macs,
              "flops": flops.flops}  # fmt: skip
    rows = make_records(cfg.run_id, cfg.epochs - 1, RUN_PHASE, time.time(), model=values)
    store = SQLiteSink(run_dir / "records.sqlite")
    try:
        store.replace(rows, run=cfg.run_id, phase=RUN_PHASE, layers=[])
    finally:
        store.close()
    return values


def _data_shape(run_dir: Path, cfg: RunConfig) -> dict:
    done = run_dir / DONE_FILE
    if done.is_file():
        shape = json.loads(done.read_text(encoding="utf-8")).get("data")
        if shape:
            return shape
    data = load_dataset(cfg.dataset, resolution=cfg.resolution, seed=cfg.seed,
                        **cfg.dataset_kwargs)  # fmt: skip
    return {"num_classes": data.num_classes, "in_channels": data.in_channels,
            "input_size": data.input_size}  # fmt: skip


def resume_run(folder: str | os.PathLike, *, progress: bool = True) -> RunResult:
    """Continue the run in ``folder`` from its last good checkpoint (its ``config.json``)."""
    return run_one(read_run_config(folder), folder=Path(folder), progress=progress)
