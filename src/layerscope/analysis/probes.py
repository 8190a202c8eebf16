"""Logistic-regression probes per layer: parallel, cached, detached from training (SPEC C6).

A probe is a linear classifier trained on one layer's outputs (dissertation 4.3, after Alain and
Bengio 2017); its test accuracy, layer by layer in forward order, shows where the network solves
its task, and beside saturation it tells productive layers from unproductive ones (8.3, 9.3).

The flow (dissertation 6.2.5, with what PHD-Lab got wrong fixed):

1. :func:`~layerscope.analysis.latents.extract_latents` stores every recorded layer's reduced
   outputs (default: adaptive average pooling to 4 x 4, 8.3.3) on disk, with labels and a
   manifest;
2. :func:`train_probes` trains one :class:`~layerscope.analysis.probe_solvers.LogisticProbe` per
   layer (or per feature-map position, for ``pos`` extractions), in parallel processes when
   ``n_jobs > 1``. Each finished probe is cached at once under a hash of (its features' and
   labels' SHA-256, the solver and its settings), so a rerun skips finished layers and a crash
   loses only the probes in progress;
3. :func:`probe_run` does both for a run folder of the trainer, rebuilding model and data from
   ``config.json`` and the newest checkpoint, writes the accuracies as records (statistics
   ``probe_train_acc`` / ``probe_test_acc``, phase ``"probe"``, epoch = the checkpoint's) and
   the model's own accuracies (``model_train_acc`` / ``model_test_acc``), and rewrites the
   report (saturation beside probe accuracy).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from layerscope.analysis.latents import (
    DEFAULT_REDUCTION,
    LatentManifest,
    LatentsError,
    Reduction,
    extract_latents,
    manifest_path,
    match_layers,
)
from layerscope.analysis.probe_solvers import (
    DEFAULT_SOLVER,
    PROBE_SOLVERS,
    LogisticProbe,
    ProbeSettingsError,
)
from layerscope.analysis.runs import (
    load_run_model,
    read_run_config,
    run_checkpoint,
    train_split_without_augmentation,
)
from layerscope.store.atomic import atomic_write_text
from layerscope.store.records import Record

__all__ = [
    "PROBE_PHASE",
    "ProbeResult",
    "ProbeResults",
    "ProbeSettings",
    "limit_threads",
    "probe_phase",
    "probe_run",
    "train_probes",
    "write_probe_records",
]

#: Phase of probe records with the default reduction; others get ``probe-<reduction>``.
PROBE_PHASE = "probe"
CACHE_FORMAT = "layerscope-probe-1"


@dataclass(frozen=True)
class ProbeSettings:
    """Everything that decides a probe's result (and its cache key).

    Defaults: the torch L-BFGS solver, sklearn's C = 1 and tol = 1e-4, standardised float32
    features. ``solver="saga"`` with ``max_iter=100`` is the dissertation's recipe (6.2.5).

    Example:
        >>> ProbeSettings(solver="saga").check().probe()
        LogisticProbe(C=1.0, solver='saga', tol=0.0001, max_iter=None, standardize=True)
    """

    solver: str = DEFAULT_SOLVER
    C: float = 1.0
    tol: float = 1e-4
    max_iter: int | None = None
    standardize: bool = True
    dtype: str = "float32"
    random_state: int | None = 0

    def probe(self, device=None) -> LogisticProbe:
        return LogisticProbe(
            self.C,
            solver=self.solver,
            tol=self.tol,
            max_iter=self.max_iter,
            standardize=self.standardize,
            device=device,
            dtype=self.dtype,
            random_state=self.random_state,
        )

    def check(self) -> ProbeSettings:
        """Validate now (before any extraction or process starts); returns self.

        Example:
            >>> try:
            ...     ProbeSettings(dtype="float16").check()
            ... except ValueError as error:
            ...     print(error)
            dtype must be 'float32' or 'float64', got 'float16'
        """
        PROBE_SOLVERS.get(self.solver)
        self.probe()._check(np.zeros((2, 1)), np.zeros(2))
        if self.random_state is not None and (
            isinstance(self.random_state, bool) or not isinstance(self.random_state, int)
        ):  # it is part of the cache key, written as JSON
            raise ProbeSettingsError(
                f"random_state must be an int or None, got {self.random_state!r}"
            )
        return self


@dataclass(frozen=True)
class ProbeResult:
    """One probe: a layer's (or one of its positions') train and test accuracy.

    ``position`` is None for whole-layer probes, else the position's grid index (row, column);
    ``cached`` says the result came from the cache.
    """

    layer: str
    index: int
    features: int
    train_acc: float
    test_acc: float
    n_iter: int
    converged: bool
    stop_reason: str
    seconds: float
    position: tuple[int, ...] | None = None
    cached: bool = False


@dataclass(frozen=True)
class ProbeResults:
    """The probes of one extraction: results in forward order, and the model's accuracies.

    Example:
        >>> r = ProbeResult("fc", 0, 4, 0.9, 0.8, 12, True, "gradient", 0.1)
        >>> results = ProbeResults("run", "avg4", ProbeSettings(), (r,), {"test": 0.85})
        >>> results.table()[["layer", "test_acc"]].to_dict("records")
        [{'layer': 'fc', 'test_acc': 0.8}]
        >>> [(x.statistic, x.value) for x in results.records(epoch=3)][:2]
        [('probe_train_acc', 0.9), ('probe_test_acc', 0.8)]
    """

    run: str
    reduction: str
    settings: ProbeSettings
    results: tuple[ProbeResult, ...]
    model_accuracy: dict[str, float | None] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """One row per probe, forward order (positions row-major within a layer)."""
        rows = [asdict(r) for r in self.results]
        columns = [f.name for f in ProbeResult.__dataclass_fields__.values()]
        return pd.DataFrame(rows, columns=columns)

    def records(self, epoch: int, phase: str | None = None, run: str | None = None) -> list[Record]:
        """Tidy records of whole-layer probes and of the model's accuracies."""
        phase = phase or probe_phase(self.reduction)
        run = run or self.run
        now = time.time()
        rows = []
        for r in self.results:
            if r.position is not None:
                continue
            rows.append(
                Record(run, epoch, phase, r.layer, r.index, "probe_train_acc", r.train_acc, now)
            )
            rows.append(
                Record(run, epoch, phase, r.layer, r.index, "probe_test_acc", r.test_acc, now)
            )
        for split, accuracy in self.model_accuracy.items():
            if accuracy is not None:
                rows.append(
                    Record(
                        run, epoch, phase, None, None, f"model_{split}_acc", float(accuracy), now
                    )
                )
        return rows


def probe_phase(reduction: str) -> str:
    """``"probe"`` for the default reduction (avg4), else ``"probe-<reduction>"``.

    Example:
        >>> probe_phase("avg4"), probe_phase("gap")
        ('probe', 'probe-gap')
    """
    name = Reduction.parse(reduction).name
    return PROBE_PHASE if name == DEFAULT_REDUCTION else f"{PROBE_PHASE}-{name}"


# --------------------------------------------------------------------------- tasks and cache
@dataclass(frozen=True)
class _Task:
    """One probe to fit, picklable for worker processes."""

    key: str
    layer: str
    index: int
    features: int
    position: int | None
    position_index: tuple[int, ...] | None
    train: str
    test: str
    train_labels: str
    test_labels: str
    settings: ProbeSettings
    device: str | None


def _cache_key(manifest: LatentManifest, layer, position: int | None, settings) -> str:
    splits = manifest.splits
    payload = {
        "format": CACHE_FORMAT,
        "train": layer.files["train"].sha256,
        "test": layer.files["test"].sha256,
        "train_labels": splits["train"]["labels"]["sha256"],
        "test_labels": splits["test"]["labels"]["sha256"],
        "position": position,
        "settings": asdict(settings),
    }
    text = json.dumps(payload, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _tasks(manifest, layers, settings, device) -> list[_Task]:
    for split in ("train", "test"):
        if split not in manifest.splits:
            raise LatentsError(
                f"{manifest.path.name} has no {split!r} split (it has {list(manifest.splits)}); "
                f"probes need a train and a test split"
            )
    chosen = manifest.layers if layers is None else [manifest.layer(n) for n in layers]
    folder = manifest.folder
    tasks = []
    for layer in chosen:
        positions = [None] if layer.positions is None else range(len(layer.positions))
        for position in positions:
            tasks.append(
                _Task(
                    key=_cache_key(manifest, layer, position, settings),
                    layer=layer.name,
                    index=layer.index,
                    features=layer.features,
                    position=position,
                    position_index=None if position is None else tuple(layer.positions[position]),
                    train=str(folder / layer.files["train"].file),
                    test=str(folder / layer.files["test"].file),
                    train_labels=str(folder / manifest.splits["train"]["labels"]["file"]),
                    test_labels=str(folder / manifest.splits["test"]["labels"]["file"]),
                    settings=settings,
                    device=device,
                )
            )
    return tasks


def _fit_task(task: _Task) -> dict[str, Any]:
    """Fit one probe from its memory-mapped features (runs in a worker process or inline)."""
    train = np.load(task.train, mmap_mode="r")
    test = np.load(task.test, mmap_mode="r")
    if task.position is not None:  # (positions, N, C): one contiguous block per position
        train, test = train[task.position], test[task.position]
    y_train, y_test = np.load(task.train_labels), np.load(task.test_labels)
    probe = task.settings.probe(task.device).fit(train, y_train)
    return {
        "train_acc": probe.score(train, y_train),
        "test_acc": probe.score(test, y_test),
        "n_iter": int(probe.n_iter_),
        "converged": bool(probe.converged_),
        "stop_reason": probe.stop_reason_,
        "seconds": probe.fit_seconds_,
    }


def limit_threads(threads: int) -> None:
    """Use at most ``threads`` CPU threads in this process: torch's, and the BLAS / OpenMP
    pools of numpy and scikit-learn (each probe worker process gets its share).

    Example:
        >>> try:
        ...     limit_threads(0)
        ... except ValueError as error:
        ...     print(error)
        threads must be an int >= 1, got 0
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ProbeSettingsError(f"threads must be an int >= 1, got {threads!r}")
    import torch

    torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass


def _read_cache(folder: Path | None, key: str) -> dict | None:
    if folder is None:
        return None
    path = folder / f"{key}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))["result"]
    except (OSError, ValueError, KeyError):
        return None  # missing, or damaged by a crash: fit again


def _write_cache(folder: Path | None, task: _Task, result: dict) -> None:
    if folder is None:
        return
    entry = {
        "format": CACHE_FORMAT,
        "layer": task.layer,
        "position": task.position,
        "settings": asdict(task.settings),
        "result": result,
    }
    atomic_write_text(folder / f"{task.key}.json", json.dumps(entry, indent=1))


def _workers(n_jobs: int | None, pending: int) -> int:
    cpus = os.cpu_count() or 1
    if n_jobs is None:
        n_jobs = 1
    if not isinstance(n_jobs, int) or n_jobs == 0 or n_jobs < -1:
        raise ProbeSettingsError(f"n_jobs must be None, -1 (all CPUs) or >= 1, got {n_jobs!r}")
    return max(1, min(cpus if n_jobs == -1 else n_jobs, pending))


def _run_tasks(tasks, n_jobs, cache_dir, progress, description) -> list[dict]:
    """Results of every task, from the cache or fitted (in order of ``tasks``)."""
    if cache_dir is not None:
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
    results: list[dict | None] = []
    pending = []
    for i, task in enumerate(tasks):
        cached = _read_cache(cache_dir, task.key)
        results.append(None if cached is None else {**cached, "cached": True})
        if cached is None:
            pending.append(i)
    pending.sort(key=lambda i: -tasks[i].features)  # widest first: better load balance
    workers = _workers(n_jobs, len(pending))
    bar = tqdm(
        total=len(tasks),
        initial=len(tasks) - len(pending),
        desc=description,
        leave=False,
        disable=not progress,
        file=sys.stderr,
    )

    def finish(i: int, result: dict) -> None:
        _write_cache(cache_dir, tasks[i], result)  # at once: a crash loses only running tasks
        results[i] = {**result, "cached": False}
        bar.update(1)

    try:
        if workers == 1:
            for i in pending:
                finish(i, _fit_task(tasks[i]))
        elif pending:
            threads = max(1, (os.cpu_count() or 1) // workers)
            pool = ProcessPoolExecutor(
                workers,
                mp_context=get_context("spawn"),
                initializer=limit_threads,
                initargs=(threads,),
            )
            try:
                futures = {pool.submit(_fit_task, tasks[i]): i for i in pending}
                for future in as_completed(futures):
                    finish(futures[future], future.result())
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()
    return results  # type: ignore[return-value]


def train_probes(
    manifest: LatentManifest | str | os.PathLike,
    *,
    settings: ProbeSettings | None = None,
    layers: Sequence[str] | None = None,
    n_jobs: int | None = None,
    device: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> ProbeResults:
    """Train one probe per layer (per position for ``pos`` extractions) of an extraction.

    Args:
        manifest: a :class:`~layerscope.analysis.latents.LatentManifest` or its file.
        settings: solver, C, tol, ... (:class:`ProbeSettings`; default: torch L-BFGS, C = 1).
        layers: restrict to these layer names (default: all, forward order).
        n_jobs: worker processes (sklearn's convention: None = 1, in this process; -1 = one
            per CPU). Workers split the CPU's threads between them.
        device: where torch solvers run (``"cuda"``); default CPU.
        cache_dir: folder of cached results (one small JSON per probe); None: no cache.

    Example:
        >>> import tempfile
        >>> from torch import nn
        >>> from torch.utils.data import TensorDataset
        >>> import torch
        >>> torch.manual_seed(0) and None
        >>> x = torch.randn(120, 4); y = (x[:, 0] > 0).long()
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> data = TensorDataset(x, y)
        >>> found = extract_latents(model, {"train": data, "test": data}, tempfile.mkdtemp(),
        ...                         progress=False)
        >>> results = train_probes(found["avg4"], progress=False)
        >>> [(r.layer, r.features) for r in results.results]
        [('0', 8), ('2', 2)]
        >>> results.results[0].train_acc > 0.9
        True
    """
    if not isinstance(manifest, LatentManifest):
        manifest = LatentManifest.read(manifest)
    settings = (settings or ProbeSettings()).check()
    manifest.check_files()
    tasks = _tasks(manifest, layers, settings, device)
    outcomes = _run_tasks(tasks, n_jobs, cache_dir, progress, f"probes {manifest.reduction}")
    results = tuple(
        ProbeResult(
            layer=task.layer,
            index=task.index,
            features=task.features,
            train_acc=float(o["train_acc"]),
            test_acc=float(o["test_acc"]),
            n_iter=int(o["n_iter"]),
            converged=bool(o["converged"]),
            stop_reason=str(o.get("stop_reason", "")),
            seconds=float(o["seconds"]),
            position=task.position_index,
            cached=bool(o["cached"]),
        )
        for task, o in zip(tasks, outcomes, strict=True)
    )
    unconverged: dict[str, list[str]] = {}
    for r in results:
        if not r.converged and r.position is None:
            unconverged.setdefault(r.stop_reason or "unknown reason", []).append(r.layer)
    if unconverged:
        stops = "; ".join(
            f"at {reason}: {', '.join(names[:8])}{' ...' if len(names) > 8 else ''}"
            for reason, names in unconverged.items()
        )
        warnings.warn(
            f"the {settings.solver} solver stopped before converging for some layers ({stops}); "
            f"their accuracies may still move (raise max_iter; after 'line search', use "
            f"dtype='float64' or a smaller C)",
            RuntimeWarning,
            stacklevel=2,
        )
    accuracy = {split: manifest.model_accuracy(split) for split in ("train", "test")}
    return ProbeResults(manifest.run, manifest.reduction, settings, results, accuracy)


# --------------------------------------------------------------------------- records
def write_probe_records(
    store: str | os.PathLike, results: ProbeResults, *, epoch: int, run: str | None = None
) -> int:
    """Replace the probe records of (run, phase) in a SQLite store, in one transaction: those
    of the probed layers and the model's accuracies (other layers' records stay).

    Returns the number of records written.

    Example:
        >>> import tempfile
        >>> r = ProbeResult("fc", 0, 4, 0.9, 0.8, 12, True, "gradient", 0.1)
        >>> results = ProbeResults("demo", "avg4", ProbeSettings(), (r,), {"test": 0.85})
        >>> path = Path(tempfile.mkdtemp()) / "records.sqlite"
        >>> write_probe_records(path, results, epoch=1), write_probe_records(path, results, epoch=1)
        (3, 3)
        >>> from layerscope.store import load
        >>> len(load(path))
        3
    """
    from layerscope.store.sinks import SQLiteSink

    rows = results.records(epoch, run=run)
    layers = sorted({r.layer for r in results.results})
    sink = SQLiteSink(store)
    try:
        sink.replace(rows, run=run or results.run, phase=probe_phase(results.reduction),
                     layers=layers)  # fmt: skip
    finally:
        sink.close()
    return len(rows)


# --------------------------------------------------------------------------- a run folder
def _sha256_text(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def probe_run(
    run_dir: str | os.PathLike,
    *,
    reductions: Sequence[str] = (DEFAULT_REDUCTION,),
    settings: ProbeSettings | None = None,
    layers: Sequence[str] | None = None,
    n_jobs: int | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    latents_dir: str | os.PathLike | None = None,
    force: bool = False,
    report: bool = True,
    progress: bool = True,
) -> dict[str, ProbeResults]:
    """Probes for a trainer run folder: extract (or reuse) latents, train, record, report.

    The model is rebuilt from ``config.json`` and the newest good checkpoint, the data from the
    config; both splits are extracted in eval mode without augmentation. Latents go to
    ``<run_dir>/latents`` (or ``latents_dir``) and are reused while the checkpoint and config
    are unchanged; probe results are cached in ``<run_dir>/probes/cache``, so a rerun after a
    crash trains only the missing layers. ``pos`` reductions give position probes
    (:mod:`layerscope.analysis.position_probes`), written to ``probes/positions-<r>.json``
    instead of records.

    Args:
        reductions: e.g. ``["avg4"]`` (default), ``["avg4", "gap", "nearest2"]``, ``["pos8"]``.
        settings: probe settings (default :class:`ProbeSettings`).
        layers: layer names or fnmatch patterns to probe (default: every recorded layer).
        n_jobs, device: as for :func:`train_probes` (device also runs the extraction;
            default: the config's device).
        batch_size: extraction batch size (default: the config's).
        force: extract again and refit every probe, ignoring cache and latents.
        report: rewrite ``report.html`` afterwards.

    Returns:
        reduction name -> :class:`ProbeResults`.

    Example (not run here: it needs a trained run)::

        results = probe_run("logs/vgg11/digits/32/r0", reductions=["avg4", "gap"], n_jobs=2)
        results["avg4"].table()[["layer", "train_acc", "test_acc"]]
    """
    from layerscope.lab.config import resolve_device
    from layerscope.lab.trainer import CONFIG_FILE

    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    settings = (settings or ProbeSettings()).check()
    reductions = [Reduction.parse(r).name for r in reductions]
    checkpoint = run_checkpoint(run_dir)
    device = resolve_device(device or cfg.device)
    config_path = run_dir / CONFIG_FILE
    source = {
        "checkpoint": checkpoint.path.name,
        "checkpoint_bytes": checkpoint.path.stat().st_size,
        "epoch": checkpoint.epoch,
        "config_sha256": _sha256_text(config_path),
        "layers": None if layers is None else sorted(layers),
    }
    folder = Path(latents_dir) if latents_dir is not None else run_dir / "latents"
    manifests = {} if force else _reusable(folder, cfg.run_id, reductions, source)
    missing = [name for name in reductions if name not in manifests]
    if missing:
        model, data, _ = load_run_model(run_dir, device=device, checkpoint=checkpoint)
        splits = {"train": train_split_without_augmentation(data), "test": data.test}
        t = cfg.tracker
        manifests |= extract_latents(
            model,
            splits,
            folder,
            run=cfg.run_id,
            reductions=missing,
            include=t.include,
            exclude=t.exclude or None,
            layers=layers,
            batch_size=batch_size or cfg.batch_size,
            device=device,
            num_workers=cfg.num_workers,
            source=source,
            progress=progress,
        )
        del model

    cache = run_dir / "probes" / "cache"
    device_name = None if device.type == "cpu" else str(device)
    all_results = {}
    for name in reductions:
        manifest = manifests[name]
        chosen = None if layers is None else match_layers([x.name for x in manifest.layers], layers)
        if force:
            _forget(cache, manifest, chosen, settings)
        results = train_probes(
            manifest,
            settings=settings,
            layers=chosen,
            n_jobs=n_jobs,
            device=device_name,
            cache_dir=cache,
            progress=progress,
        )
        if Reduction.parse(name).per_position:
            from layerscope.analysis.position_probes import position_maps, save_position_maps

            save_position_maps(
                run_dir / "probes" / f"positions-{name}.json", position_maps(results)
            )
        else:
            write_probe_records(
                run_dir / "records.sqlite", results, epoch=checkpoint.epoch, run=cfg.run_id
            )
        all_results[name] = results
    if report:
        from layerscope.report.html import write_report

        write_report(run_dir)
    return all_results


def _reusable(folder: Path, run: str, reductions, source: dict) -> dict[str, LatentManifest]:
    """Finished extractions in ``folder`` of the same checkpoint and config that hold the
    requested layers (an extraction of every layer serves any subset)."""
    found = {}
    for name in reductions:
        path = manifest_path(folder, run, name)
        if not path.is_file():
            continue
        manifest = LatentManifest.read(path)
        same = all(manifest.source.get(k) == v for k, v in source.items() if k != "layers")
        extracted = manifest.source.get("layers")
        if not same or extracted not in (None, source["layers"]):
            continue
        try:
            manifest.check_files()
        except LatentsError:
            continue  # damaged: extract again
        found[name] = manifest
    return found


def _forget(cache: Path, manifest, layers, settings) -> None:
    """Drop the cached results that ``force`` must recompute."""
    for task in _tasks(manifest, layers, settings, None):
        (cache / f"{task.key}.json").unlink(missing_ok=True)
