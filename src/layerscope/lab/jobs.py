"""One job of a grid, as an executor runs it: a run to train or a run folder to probe (C13).

A :class:`Job` is plain data (a config as a dict, a folder, keyword arguments) plus the
factories of any model, dataset, optimizer or metric registered at run time outside
layerscope, so that a worker process on another machine can rebuild the run. :func:`run_job`
runs it and never raises for a failing run: the error's type and message go to the run
folder's ``status.json`` and come back in the :class:`JobResult`; the other runs go on.
:func:`summary_table` lists what finished, failed (first line of the error) and was skipped.

Example:
    >>> import tempfile
    >>> job = Job("probe", tempfile.mkdtemp(), {"run_dir": tempfile.mkdtemp()})
    >>> result = run_job(job)               # an empty folder is no run folder
    >>> result.status, result.error_type
    ('failed', 'RunFolderError')
    >>> print(summary_table([result]).splitlines()[-1])
    0 finished, 1 failed, 0 skipped
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from layerscope.lab.config import RunConfig, run_dir
from layerscope.lab.experiment import run_one
from layerscope.lab.probing import probe_run
from layerscope.lab.runs import read_run_config
from layerscope.lab.trainer import RunResult
from layerscope.registry import DATASETS, METRICS, MODELS, OPTIMIZERS
from layerscope.store.atomic import atomic_write_json

__all__ = [
    "STATUS_FILE",
    "STATUS_FILES",
    "Job",
    "JobResult",
    "failed",
    "lost_worker",
    "probe_job",
    "read_status",
    "run_job",
    "summary_table",
    "train_job",
]

#: Written into the run folder when a job ends, by kind: ``{"status": "finished"}`` or
#: ``{"status": "failed", "error_type", "message", "traceback"}``.
STATUS_FILES = {"train": "status.json", "probe": "probe-status.json"}
STATUS_FILE = STATUS_FILES["train"]
_REGISTRIES = {"model": MODELS, "dataset": DATASETS, "optimizer": OPTIMIZERS, "metric": METRICS}


@dataclass(frozen=True)
class JobResult(RunResult):
    """A :class:`~layerscope.lab.trainer.RunResult` that may also be ``"failed"``: then
    ``error_type`` and ``error`` (the message) say why. ``seconds``: the job's wall time."""

    error_type: str | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def first_line(self) -> str:
        """The error's first line, for tables."""
        return (self.error or "").strip().splitlines()[0] if self.error else ""


@dataclass(frozen=True)
class Job:
    """What one worker does: ``kind`` ``"train"`` (``payload["config"]``: a resolved config as
    a dict) or ``"probe"`` (``payload``: :func:`~layerscope.lab.probing.probe_run`'s arguments);
    ``folder``: the run folder; ``threads``: torch threads for the job (``None``: leave them);
    ``factories``: ``(registry, name, factory)`` to register in the worker first."""

    kind: str
    folder: str
    payload: dict[str, Any]
    threads: int | None = None
    factories: tuple[tuple[str, str, Callable], ...] = field(default=())
    progress: bool = False


def _foreign_factories(cfg: RunConfig) -> tuple[tuple[str, str, Callable], ...]:
    """Factories the config names that a fresh process would not know (registered at run time
    outside layerscope's modules)."""
    names = [("model", cfg.model), ("dataset", cfg.dataset), ("optimizer", cfg.optimizer.name)]
    names += [("metric", metric) for metric in cfg.metrics]
    found = []
    for kind, name in names:
        factory = _REGISTRIES[kind].get(name)
        if not getattr(factory, "__module__", "layerscope").startswith("layerscope"):
            found.append((kind, name, factory))
    return tuple(found)


def train_job(
    cfg: RunConfig,
    *,
    threads: int | None = None,
    progress: bool = False,
    position: tuple[int, int] = (1, 1),
) -> Job:
    """The job that trains ``cfg`` (the whole pipeline of :func:`~layerscope.lab.experiment.
    run_one`) in its run folder; ``position``: (index, total) in the grid, for progress bars."""
    payload = {"config": cfg.to_dict(), "position": list(position)}
    return Job("train", str(run_dir(cfg)), payload, threads, _foreign_factories(cfg), progress)


def probe_job(run_folder: str | os.PathLike, *, threads: int | None = None, **kwargs: Any) -> Job:
    """The job that probes a trained run folder (``kwargs``: those of ``probe_run``)."""
    try:  # the run's own factories travel along; a folder without config fails in the job
        factories = _foreign_factories(read_run_config(run_folder))
    except Exception:
        factories = ()
    return Job("probe", str(run_folder), {"run_dir": str(run_folder), **kwargs}, threads,
               factories)  # fmt: skip


def _register(factories: Sequence[tuple[str, str, Callable]]) -> None:
    for kind, name, factory in factories:
        registry = _REGISTRIES[kind]
        if name not in registry:
            registry.add(name, factory)


def _write_status(job: Job, status: dict[str, Any]) -> None:
    folder = Path(job.folder)
    if job.kind == "train":  # a run that failed before its folder existed still gets one
        folder.mkdir(parents=True, exist_ok=True)
    if folder.is_dir():
        atomic_write_json(folder / STATUS_FILES[job.kind], status)  # a NaN metric: null


def read_status(folder: str | os.PathLike, kind: str = "train") -> dict[str, Any] | None:
    """The status of a run folder's last job of ``kind`` (``status.json`` for training,
    ``probe-status.json`` for probes), or ``None``."""
    path = Path(folder) / STATUS_FILES[kind]
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _execute(job: Job) -> JobResult:
    if job.kind == "train":
        cfg = RunConfig.from_dict(job.payload["config"])
        position = tuple(job.payload.get("position", (1, 1)))
        done = run_one(cfg, folder=job.folder, position=position, progress=job.progress)
        return JobResult(done.run_dir, done.status, done.epochs_trained, dict(done.metrics))
    if job.kind == "probe":
        found = probe_run(**{"progress": job.progress, **job.payload})
        metrics = {}
        for reduction, results in found.items():
            for split, value in results.model_accuracy.items():
                metrics[f"{reduction}_{split}_accuracy"] = float(value)
        return JobResult(Path(job.folder), "finished", 0, metrics)
    raise ValueError(f"unknown job kind {job.kind!r}; kinds: 'train', 'probe'")


def run_job(job: Job) -> JobResult:
    """Run one job in this process; a failing run becomes a ``"failed"`` result (with its
    ``status.json``), never an exception. Ctrl-C (KeyboardInterrupt) still stops it."""
    start = time.perf_counter()
    if job.threads is not None:
        import torch

        torch.set_num_threads(job.threads)
    try:
        _register(job.factories)
        result = _execute(job)
    except Exception as error:  # contained: the grid goes on
        return failed(job, type(error).__name__, str(error) or repr(error),
                      time.perf_counter() - start, traceback.format_exc())  # fmt: skip
    seconds = time.perf_counter() - start
    # The folder's state: a skipped run is a finished one (status.json of its own run stays).
    previous = read_status(job.folder, job.kind) or {}
    if result.status != "skipped" or previous.get("status") != "finished":
        ended = "diverged" if result.status == "diverged" else "finished"  # training ran to its end
        _write_status(job, {"status": ended, "seconds": seconds, "metrics": result.metrics})
    return JobResult(result.run_dir, result.status, result.epochs_trained, result.metrics,
                     seconds=seconds)  # fmt: skip


def failed(
    job: Job, error_type: str, message: str, seconds: float = 0.0, trace: str | None = None
) -> JobResult:
    """Record a failed job in its folder's ``status.json`` and return its result."""
    status = {"status": "failed", "error_type": error_type, "message": message,
              "seconds": seconds, "traceback": trace}  # fmt: skip
    _write_status(job, status)
    return JobResult(Path(job.folder), "failed", 0, {}, error_type, message, seconds)


def lost_worker(job: Job, attempts: int, detail: str) -> JobResult:
    """The result of a job whose worker died ``attempts`` times (recorded in its folder)."""
    message = f"its worker died {attempts} time(s) ({detail}); raise executor.retries to retry more"
    return failed(job, "WorkerLost", message)


def summary_table(results: Sequence[JobResult]) -> str:
    """One line per job (status, then the report's path and test accuracy, or the folder and the
    error's first line), then counts.

    Example:
        >>> rows = [JobResult(Path("logs/a"), "finished", 2, {"test_accuracy": 0.5}),
        ...         JobResult(Path("logs/b"), "failed", 0, {}, "ValueError", "bad\\nmore")]
        >>> print(summary_table(rows))
        finished  logs/a/report.html  test accuracy 0.5000
        failed    logs/b  ValueError: bad
        1 finished, 1 failed, 0 skipped
    """
    lines = []
    for result in results:
        if result.status == "failed":
            shown = f"{result.error_type}: {result.first_line}"
            where = Path(result.run_dir).as_posix()
        else:
            accuracy = result.metrics.get("test_accuracy")
            shown = f"test accuracy {accuracy:.4f}" if accuracy is not None else ""
            where = Path(result.run_dir, "report.html").as_posix()
        lines.append(f"{result.status:<9} {where}  {shown}".rstrip())
    counts = {s: sum(r.status == s for r in results) for s in ("finished", "failed", "skipped")}
    if any(r.status == "diverged" for r in results):  # a NaN or infinite loss ended the run
        counts["diverged"] = sum(r.status == "diverged" for r in results)
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()))
    return "\n".join(lines)
