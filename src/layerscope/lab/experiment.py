"""Experiments: every run of a config, each through the whole pipeline, each resumable (SPEC C10).

One run is: train (:func:`~layerscope.lab.trainer.train_run`, with tracking, checkpoints and a
live report) -> model size (parameters, MACs and FLOPs as records of phase ``"run"``) and
receptive fields (``architecture.json``) -> probes
(with ``probes = true``; not for a diverged run) -> the final report. Every step can be repeated: a finished run skips
training, the model size replaces its earlier records, probes reuse their cache, the report is
rewritten. So rerunning the same command after a crash continues where it stopped.

A config's grid of runs goes through an executor (:func:`layerscope.lab.grid.run_experiment`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from layerscope.architecture.advice import advise
from layerscope.architecture.complexity import count_flops, count_parameters
from layerscope.architecture.fields import receptive_field
from layerscope.datasets import load_dataset
from layerscope.errors import LayerscopeError, OptionError, fix, user_context
from layerscope.lab.config import RunConfig, run_dir
from layerscope.lab.console import say
from layerscope.lab.probing import probe_run
from layerscope.lab.runs import read_run_config
from layerscope.lab.trainer import CONFIG_FILE, DONE_FILE, RunResult, build_model, train_run
from layerscope.probes.results import ProbeSettings
from layerscope.report.html import write_report
from layerscope.report.overview import ARCHITECTURE_FILE
from layerscope.store.atomic import atomic_write_json
from layerscope.store.folder import ERROR_FILE
from layerscope.store.records import make_records
from layerscope.store.sqlite import SQLiteSink

__all__ = ["extend_run", "record_architecture", "record_model_size", "resume_run", "run_one"]

#: Phase of the model-size records.
RUN_PHASE = "run"


@user_context("config")  # messages give their fixes as config lines
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
    try:
        result = train_run(cfg, folder=folder, position=position, progress=progress,
                           after_epoch=after_epoch)  # fmt: skip
    except Exception:
        _report_failure(Path(folder) if folder is not None else run_dir(cfg))
        raise
    record_model_size(result.run_dir, cfg)
    record_architecture(result.run_dir, cfg)
    if cfg.probes and result.status != "diverged":  # cached probes are not refitted
        settings = ProbeSettings.preset(cfg.probe_preset)
        probe_run(result.run_dir, settings=settings, progress=progress, report=False)
    write_report(result.run_dir)
    return result


def _report_failure(folder: Path) -> None:
    """Rewrite the report of a run whose training failed, so that it says so (error.json)."""
    if (folder / ERROR_FILE).is_file() and (folder / "records.sqlite").is_file():
        try:
            write_report(folder)
        except Exception as error:  # the training error matters more than the report's
            say(f"{folder}: the report could not be rewritten after the failure ({error})")


def record_model_size(run_dir: str | os.PathLike, cfg: RunConfig | None = None) -> dict:
    """Parameters, multiply-accumulates and FLOPs (2 x MACs) of one forward pass of one image,
    recorded (replacing earlier ones) as phase ``"run"`` of the run's last epoch.

    The counts do not depend on the weights, so the model is built from the config; the data's
    shape comes from ``done.json`` (or the dataset, for folders written before it held it).
    """
    run_dir = Path(run_dir)
    cfg = cfg or read_run_config(run_dir)
    model, size, shape = _model_for(run_dir, cfg)
    flops = count_flops(model, size, in_channels=shape["in_channels"])
    values = {"parameters": count_parameters(model).total, "macs": flops.macs,
              "flops": flops.flops}  # fmt: skip
    rows = make_records(cfg.run_id, _last_epoch(run_dir, cfg), RUN_PHASE, time.time(),
                        model=values)  # fmt: skip
    store = SQLiteSink(run_dir / "records.sqlite")
    try:
        store.replace(rows, run=cfg.run_id, phase=RUN_PHASE, layers=[])
    finally:
        store.close()
    return values


def record_architecture(run_dir: str | os.PathLike, cfg: RunConfig | None = None) -> dict:
    """Receptive fields (r_min, r_max per recorded layer), border layers and the advice of
    :func:`~layerscope.architecture.advise` for the run's model at its input size, written to
    ``architecture.json`` for the report (which cannot rebuild the model itself). A model the
    analysis cannot trace gets ``{"error": ...}`` instead."""
    run_dir = Path(run_dir)
    cfg = cfg or read_run_config(run_dir)
    model, size, shape = _model_for(run_dir, cfg)
    try:
        rf = receptive_field(model, size, in_channels=shape["in_channels"])
        advice = advise(model, size, rf=rf)
    except (LayerscopeError, RuntimeError, TypeError, ValueError) as error:
        payload: dict = {"error": f"{type(error).__name__}: {error}"}
    else:

        def number(value):
            return "global" if value == float("inf") else value

        payload = {
            "input_size": list(rf.input_size_), "border_min": advice.border_min,
            "border_max": advice.border_max, "unproductive": list(advice.unproductive),
            "fields": [{"name": f.name, "index": f.index, "r_min": number(f.r_min),
                        "r_max": number(f.r_max)} for f in rf.fields_],
            "advice": advice.lines(), "notes": list(rf.notes_),
        }  # fmt: skip
    atomic_write_json(run_dir / ARCHITECTURE_FILE, payload)
    return payload


def _model_for(run_dir: Path, cfg: RunConfig) -> tuple:
    """The run's model rebuilt from its config (weights do not matter here), the input size
    and the data's shape (``done.json``, else the dataset)."""
    shape = _data_shape(run_dir, cfg)
    model = build_model(cfg, shape["num_classes"], shape["in_channels"])
    size = shape["input_size"]
    return model, tuple(size) if isinstance(size, list) else size, shape


def _last_epoch(run_dir: Path, cfg: RunConfig) -> int:
    """Index of the run's last epoch: the configured one, or where it diverged."""
    done = run_dir / DONE_FILE
    if done.is_file():
        status = json.loads(done.read_text(encoding="utf-8"))
        if status.get("status") == "diverged" and cfg.on_nonfinite == "stop":
            return int(status.get("epoch", cfg.epochs)) - 1
    return cfg.epochs - 1


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


def resume_run(
    folder: str | os.PathLike, *, progress: bool = True, epochs: int | None = None
) -> RunResult:
    """Continue the run in ``folder`` from its last good checkpoint (its ``config.json``).

    ``epochs`` (more than the config's) extends the run, also a finished one: its config.json
    gets the new number of epochs and training continues from the newest checkpoint.
    """
    folder = Path(folder)
    cfg = read_run_config(folder)
    if epochs is not None and epochs != cfg.epochs:
        cfg = extend_run(folder, epochs)
    return run_one(cfg, folder=folder, progress=progress)


def extend_run(folder: str | os.PathLike, epochs: int) -> RunConfig:
    """Set the run folder's number of epochs to ``epochs`` (more than it has) so that resuming
    trains on; a finished run is opened again (its done.json removed). Returns the new config.

    Example:
        >>> import tempfile
        >>> extend_run(tempfile.mkdtemp(), 3)
        Traceback (most recent call last):
        ...
        layerscope.errors.RunFolderError: ... is not a run folder: it has no config.json ...
    """
    folder = Path(folder)
    cfg = read_run_config(folder)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < cfg.epochs:
        raise OptionError(
            f"{fix(python=f'epochs={epochs!r}', cli=f'--epochs {epochs}')} cannot shorten the "
            f"run in {folder}: it is configured for {cfg.epochs} epochs; give "
            f"{fix(python=f'epochs={cfg.epochs + 1}', cli=f'--epochs {cfg.epochs + 1}')} or more to "
            f"extend it ({fix(python='epochs=N', cli='--epochs N')} with N >= {cfg.epochs} is "
            f"accepted; N = {cfg.epochs} trains nothing)"
        )
    cfg = dataclasses.replace(cfg, epochs=epochs)
    atomic_write_json(folder / CONFIG_FILE, cfg.to_dict())
    (folder / DONE_FILE).unlink(missing_ok=True)
    return cfg
