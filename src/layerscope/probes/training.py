"""Logistic-regression probes per layer: parallel, cached, detached from training (SPEC C6).

A probe is a linear classifier trained on one layer's outputs (dissertation 4.3, after Alain and
Bengio 2017); its test accuracy, layer by layer in forward order, shows where the network solves
its task, and beside saturation it tells productive layers from unproductive ones (8.3, 9.3).

The flow (dissertation 6.2.5, with what PHD-Lab got wrong fixed):

1. :func:`~layerscope.probes.latents.extract_latents` stores every recorded layer's reduced
   outputs (default: adaptive average pooling to 4 x 4, 8.3.3) on disk, with labels and a
   manifest;
2. :func:`train_probes` trains one :class:`~layerscope.probes.estimator.LogisticProbe` per
   layer (or per feature-map position, for ``pos`` extractions), in parallel processes when
   ``n_jobs > 1``. Each finished probe is cached at once under a hash of (its features' and
   labels' SHA-256, the solver and its settings), so a rerun skips finished layers and a crash
   loses only the probes in progress;
3. :func:`layerscope.lab.probe_run` does both for a run folder of the trainer and records the
   accuracies (:mod:`layerscope.probes.results`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from layerscope.errors import LatentsError, ProbeSettingsError, fix
from layerscope.probes.manifest import LatentManifest
from layerscope.probes.results import ProbeResult, ProbeResults, ProbeSettings
from layerscope.store.atomic import atomic_write_text

__all__ = ["CACHE_FORMAT", "forget_cached", "limit_threads", "train_probes"]

CACHE_FORMAT = "layerscope-probe-1"


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
        manifest: a :class:`~layerscope.probes.manifest.LatentManifest` or its file.
        settings: solver, C, tol, ... (:class:`ProbeSettings`; default: torch L-BFGS, C = 1).
        layers: restrict to these layer names (default: all, forward order).
        n_jobs: worker processes (sklearn's convention: None = 1, in this process; -1 = one
            per CPU). Workers split the CPU's threads between them.
        device: where torch solvers run (``"cuda"``); default CPU.
        cache_dir: folder of cached results (one small JSON per probe); None: no cache.

    Example:
        >>> import tempfile
        >>> from torch import nn
        >>> from layerscope.probes import extract_latents
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
    _warn_unconverged(results, settings.solver)
    accuracy = {split: manifest.model_accuracy(split) for split in ("train", "test")}
    return ProbeResults(manifest.run, manifest.reduction, settings, results, accuracy)


def _warn_unconverged(results, solver: str) -> None:
    """One warning naming the layers whose solver stopped early, grouped by why, with the fix
    in the syntax of where the user is."""
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
            f"the {solver} solver stopped before converging for some layers ({stops}); "
            f"their accuracies may still move ("
            + fix(
                python="raise max_iter; after 'line search', use dtype='float64' or a smaller C",
                config="probe again with more iterations: layerscope probe RUN_DIR --max-iter "
                "1000; after 'line search', add -C 0.1",
                cli="raise --max-iter; after 'line search', use a smaller -C, e.g. -C 0.1",
            )
            + ")",
            RuntimeWarning,
            stacklevel=3,
        )


def forget_cached(cache: str | os.PathLike, manifest: LatentManifest, layers, settings) -> None:
    """Delete the cached results of ``layers`` (all: None) under ``settings``, so that the next
    :func:`train_probes` fits them again (``force``)."""
    for task in _tasks(manifest, layers, settings, None):
        (Path(cache) / f"{task.key}.json").unlink(missing_ok=True)
