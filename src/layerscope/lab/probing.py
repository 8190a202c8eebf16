"""Probing a trained run folder end to end: extract (or reuse) latents, train probes, record the
accuracies in the run's store, rewrite its report (SPEC C6).

The pieces are in :mod:`layerscope.probes`; this module knows run folders: the model comes from
``config.json`` and the newest good checkpoint (:mod:`layerscope.lab.runs`), latents go to
``<run_dir>/latents`` and are reused while checkpoint and config are unchanged, probe results
are cached in ``<run_dir>/probes/cache`` (a rerun after a crash trains only the missing layers),
accuracies become records of phase ``"probe"`` (epoch = the checkpoint's), and position probes
(``pos`` reductions) are saved to ``probes/positions-<reduction>.json``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from layerscope.errors import LatentsError
from layerscope.lab.config import RunConfig, resolve_device
from layerscope.lab.runs import (
    load_run_model,
    read_run_config,
    run_checkpoint,
    train_split_without_augmentation,
)
from layerscope.lab.trainer import CONFIG_FILE
from layerscope.probes.latents import extract_latents
from layerscope.probes.manifest import LatentManifest, manifest_path, match_layers
from layerscope.probes.positions import position_maps, save_position_maps
from layerscope.probes.reduction import DEFAULT_REDUCTION, Reduction
from layerscope.probes.results import ProbeResults, ProbeSettings, write_probe_records
from layerscope.probes.training import forget_cached, train_probes
from layerscope.report.html import write_report

__all__ = ["probe_run"]


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
    """Probes for a trained run folder: extract (or reuse) latents, train, record, report.

    The model is rebuilt from ``config.json`` and the newest good checkpoint, the data from the
    config; both splits are extracted in eval mode without augmentation.

    Args:
        reductions: e.g. ``["avg4"]`` (default), ``["avg4", "gap", "nearest2"]``, ``["pos8"]``.
        settings: probe settings (default :class:`~layerscope.probes.ProbeSettings`).
        layers: layer names or fnmatch patterns to probe (default: every recorded layer).
        n_jobs, device: as for :func:`~layerscope.probes.train_probes` (device also runs the
            extraction; default: the config's device).
        batch_size: extraction batch size (default: the config's).
        latents_dir: where latents go (default ``<run_dir>/latents``).
        force: extract again and refit every probe, ignoring cache and latents.
        report: rewrite ``report.html`` afterwards.

    Returns:
        reduction name -> :class:`~layerscope.probes.ProbeResults`.

    Example (not run here: it needs a trained run)::

        results = probe_run("logs/vgg11/digits/32/r0", reductions=["avg4", "gap"], n_jobs=2)
        results["avg4"].table()[["layer", "train_acc", "test_acc"]]
    """
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    settings = (settings or ProbeSettings()).check()
    reductions = [Reduction.parse(r).name for r in reductions]
    checkpoint = run_checkpoint(run_dir)
    device = resolve_device(device or cfg.device)
    source = {
        "checkpoint": checkpoint.path.name,
        "checkpoint_bytes": checkpoint.path.stat().st_size,
        "epoch": checkpoint.epoch,
        "config_sha256": hashlib.sha256((run_dir / CONFIG_FILE).read_bytes()).hexdigest(),
        "layers": None if layers is None else sorted(layers),
    }
    folder = Path(latents_dir) if latents_dir is not None else run_dir / "latents"
    manifests = {} if force else _reusable(folder, cfg.run_id, reductions, source)
    missing = [name for name in reductions if name not in manifests]
    if missing:
        manifests |= _extract(run_dir, cfg, checkpoint, folder, missing, layers, device,
                              batch_size, source, progress)  # fmt: skip
    cache = run_dir / "probes" / "cache"
    device_name = None if device.type == "cpu" else str(device)
    found = {}
    for name in reductions:
        manifest = manifests[name]
        chosen = None if layers is None else match_layers([x.name for x in manifest.layers], layers)
        if force:
            forget_cached(cache, manifest, chosen, settings)
        results = train_probes(manifest, settings=settings, layers=chosen, n_jobs=n_jobs,
                               device=device_name, cache_dir=cache, progress=progress)  # fmt: skip
        _save(run_dir, cfg, name, results, checkpoint.epoch)
        found[name] = results
    if report:
        write_report(run_dir)
    return found


def _extract(run_dir, cfg: RunConfig, checkpoint, folder, reductions, layers, device,
             batch_size, source, progress) -> dict[str, LatentManifest]:  # fmt: skip
    """Extract the latents of ``reductions`` from the run's checkpoint (both splits)."""
    model, data, _ = load_run_model(run_dir, device=device, checkpoint=checkpoint)
    splits = {"train": train_split_without_augmentation(data), "test": data.test}
    options = cfg.tracker
    try:
        return extract_latents(
            model, splits, folder, run=cfg.run_id, reductions=reductions,
            include=options.include, exclude=options.exclude or None, layers=layers,
            batch_size=batch_size or cfg.batch_size, device=device,
            num_workers=cfg.num_workers, source=source, progress=progress,
        )  # fmt: skip
    finally:
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()


def _save(run_dir: Path, cfg: RunConfig, reduction: str, results: ProbeResults, epoch: int):
    """Records for whole-layer probes; a JSON file of heatmaps for position probes."""
    if Reduction.parse(reduction).per_position:
        save_position_maps(
            run_dir / "probes" / f"positions-{reduction}.json", position_maps(results)
        )
    else:
        write_probe_records(run_dir / "records.sqlite", results, epoch=epoch, run=cfg.run_id)


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
