"""Latent extraction for probes: every recorded layer's outputs, reduced, on disk (SPEC C6).

The dissertation's PHD-Lab (6.2.5) extracted the latent representations of all recordable layers
after training and stored them, with the labels, for separate probe training. Here:

- the model runs in eval mode without gradients, on datasets the caller gives without
  augmentation, for the training split too (PHD-Lab extracted the training split in train mode:
  BatchNorm statistics moved and dropout was on);
- layers are chosen with :func:`~layerscope.tracking.layers.select_layers` (the Tracker's
  selection and names) and listed in forward order (the order of their first call);
- outputs are reduced as :mod:`layerscope.probes.reduction` says (``avg4`` by default);
- batches stream into ``.npy`` files (float32, memory-mappable with
  ``np.load(path, mmap_mode="r")``), so memory stays bounded by a batch;
- files and their manifest are named as :mod:`layerscope.probes.manifest` says;
- every split streams into temporary files that get their final names only once all splits
  have finished, so an error (in any split) leaves no file behind and no hook on the model,
  and the files of an earlier extraction in the folder stay as they were.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from layerscope.errors import LatentsError, fix, toml_lines
from layerscope.probes.manifest import (
    LatentFile,
    LatentLayer,
    LatentManifest,
    file_sha256,
    match_layers,
    safe_name,
)
from layerscope.probes.reduction import DEFAULT_REDUCTION, Reduction, position_grid, reduce_output
from layerscope.store.atomic import atomic_write_text
from layerscope.tracking.hooks import Hooks
from layerscope.tracking.layers import channels_first, describe_layers, select_layers
from layerscope.tracking.modes import evaluation_mode, model_device

__all__ = ["extract_latents"]


class _SplitWriter:
    """Streams one split's reduced outputs of every layer, and its labels, into temporary .npy
    files. They keep their temporary names until :meth:`commit` (every split finished) and are
    deleted by :meth:`discard` (any split failed), so a failed extraction leaves no file."""

    def __init__(self, folder: Path, run: str, split: str, samples: int) -> None:
        self.folder, self.run, self.split, self.samples = folder, run, split, samples
        self.arrays: dict[tuple[str, str], np.memmap] = {}
        self.paths: list[tuple[Path, Path]] = []  # (temporary, final) of every file
        self.opened: dict[tuple[str, str], tuple[Path, Path]] = {}
        self.planned_bytes = 0

    def _paths(self, name: str) -> tuple[Path, Path]:
        final = self.folder / name
        paths = (final.with_name(f".{final.name}.partial.npy"), final)
        self.paths.append(paths)
        return paths

    def open(self, layer: str, reduction: Reduction, shape: tuple[int, ...]) -> np.memmap:
        paths = self._paths(
            f"{safe_name(self.run)}__{safe_name(layer)}__{reduction.name}__{self.split}.npy"
        )
        # Files are created sparse: check the space for all of them, not just this one.
        self.planned_bytes += int(np.prod(shape)) * 4
        _check_disk(self.folder, self.planned_bytes)
        array = np.lib.format.open_memmap(paths[0], mode="w+", dtype=np.float32, shape=shape)
        self.arrays[(layer, reduction.name)] = array
        self.opened[(layer, reduction.name)] = paths
        return array

    def finish(self, labels: np.ndarray) -> tuple[dict[tuple[str, str], LatentFile], LatentFile]:
        """Flush and hash every layer file, write the labels; the files stay temporary."""
        done = {}
        for key, array in self.arrays.items():
            array.flush()
            done[key] = _entry(*self.opened[key], tuple(array.shape))
        self.arrays.clear()  # drops the last references: the maps close
        paths = self._paths(f"{safe_name(self.run)}__labels__{self.split}.npy")
        with open(paths[0], "wb") as handle:
            np.save(handle, labels)
        return done, _entry(*paths, tuple(labels.shape))

    def commit(self) -> None:
        for temporary, final in self.paths:
            os.replace(temporary, final)
        self.paths.clear()

    def discard(self) -> None:
        self.arrays.clear()
        for temporary, _ in self.paths:
            temporary.unlink(missing_ok=True)
        self.paths.clear()


def _entry(temporary: Path, final: Path, shape: tuple[int, ...]) -> LatentFile:
    """The manifest entry of a finished temporary file, under its final name."""
    with open(temporary, "rb+") as handle:
        os.fsync(handle.fileno())
    return LatentFile(final.name, shape, temporary.stat().st_size, file_sha256(temporary))


def _check_disk(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if needed > 0.95 * free:
        raise LatentsError(
            f"the extraction needs {needed / 2**30:.2f} GiB in {folder} but only "
            f"{free / 2**30:.2f} GiB are free. Use a coarser reduction, fewer layers or another "
            f"folder: "
            + fix(
                python="reductions=['gap'], layers=[...], latents_dir=...",
                config="probe after training with layerscope probe RUN_DIR --reduction gap "
                "--layers PATTERN --latents DIR",
                cli="--reduction gap, --layers PATTERN, --latents DIR",
            )
        )


def extract_latents(
    model: nn.Module,
    datasets: Mapping[str, Dataset],
    folder: str | os.PathLike,
    *,
    run: str = "run",
    reductions: Sequence[str | Reduction] = (DEFAULT_REDUCTION,),
    include: Iterable[str | type] | None = None,
    exclude: Iterable[str | type] | None = None,
    layers: Sequence[str] | None = None,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    num_workers: int = 0,
    source: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, LatentManifest]:
    """Run ``model`` over each dataset once and store every selected layer's reduced outputs.

    Args:
        model: the trained network; it is put in eval mode (and back afterwards).
        datasets: split name -> map-style dataset of (input, label) pairs, without
            augmentation, e.g. ``{"train": ..., "test": ...}``.
        folder: where files and manifests go (created).
        run: the run's name, the first part of every file name.
        reductions: one or more of ``avg<s>``, ``nearest<s>``, ``gap``, ``full``, ``pos[<s>]``
            (see :class:`Reduction`); all come from the same forward passes.
        include, exclude: layer selection, as for the Tracker.
        layers: keep only these selected layers (names or fnmatch patterns).
        batch_size, num_workers: of the data loader.
        device: where the model runs (default: where its parameters are).
        source: JSON-able facts stored in the manifest (checkpoint, config).

    Returns:
        reduction name -> :class:`LatentManifest`.

    Example:
        >>> import tempfile
        >>> from torch.utils.data import TensorDataset
        >>> model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(72, 3))
        >>> data = TensorDataset(torch.randn(10, 1, 8, 8), torch.arange(10) % 3)
        >>> found = extract_latents(model, {"train": data, "test": data}, tempfile.mkdtemp(),
        ...                         reductions=["avg2", "gap"], progress=False)
        >>> [(layer.name, layer.features) for layer in found["avg2"].layers]
        [('0', 8), ('3', 3)]
        >>> found["gap"].features("0", "test").shape
        (10, 2)
    """
    reductions = [Reduction.parse(r) for r in reductions]
    names = [r.name for r in reductions]
    if not reductions or len(set(names)) != len(names):
        raise LatentsError(f"give one or more distinct reductions, got {names}")
    if not datasets:
        raise LatentsError("give at least one dataset, e.g. {'train': ..., 'test': ...}")
    for option, value, least in (("batch_size", batch_size, 1), ("num_workers", num_workers, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise LatentsError(f"{option} must be an int >= {least}, got {value!r}")
    selected = select_layers(model, include, exclude)
    if layers is not None:
        kept = set(match_layers([name for name, _ in selected], layers))
        selected = [(name, module) for name, module in selected if name in kept]
    device = model_device(model) if device is None else torch.device(device)
    extraction = _Extraction(model, selected, Path(folder), run, reductions, device)
    extraction.folder.mkdir(parents=True, exist_ok=True)
    try:
        with evaluation_mode(model):
            for split, dataset in datasets.items():
                extraction.run_split(split, dataset, batch_size, num_workers, progress)
        extraction.commit()
    except BaseException:
        extraction.discard()
        raise
    return extraction.write_manifests(dict(source or {}))


class _Extraction:
    """One extraction: the layers in forward order, their output shapes and position grids,
    and every split's finished files."""

    def __init__(self, model, selected, folder: Path, run: str, reductions, device) -> None:
        self.model, self.selected, self.folder, self.run = model, selected, folder, run
        self.reductions, self.device = reductions, device
        self.order: list[str] = []  # forward order: the order of first calls
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.positions: dict[str, tuple[tuple[int, ...], ...]] = {}
        self.files: dict[str, dict[tuple[str, str], LatentFile]] = {}
        self.splits: dict[str, dict[str, Any]] = {}
        self.writers: list[_SplitWriter] = []

    def _hook(self, name: str, writer: _SplitWriter, batch: dict):
        def hook(module, args, output) -> None:
            batch["calls"][name] = batch["calls"].get(name, 0) + 1
            if batch["calls"][name] > 1:
                raise LatentsError(
                    f"layer {name!r} ran {batch['calls'][name]} times in one forward pass (a "
                    f"shared module); its output is not one vector per sample. Exclude it, "
                    + fix(
                        python=f"exclude=[{name!r}]",
                        config=toml_lines("tracker.exclude", [name]),
                        cli="probe the other layers only: --layers PATTERN ...",
                    )
                )
            if name not in self.shapes:
                self.order.append(name)
                self.shapes[name] = tuple(channels_first(module, output).shape[1:])
            for reduction in self.reductions:
                reduced = reduce_output(module, output, reduction)
                array = writer.arrays.get((name, reduction.name))
                if array is None:
                    array = self._open(writer, name, reduction, reduced)
                start, stop = batch["start"], batch["start"] + reduced.shape[0]
                values = reduced.to("cpu", torch.float32).numpy()
                if reduction.per_position:
                    array[:, start:stop] = values.transpose(1, 0, 2)
                else:
                    array[start:stop] = values

        return hook

    def _open(self, writer: _SplitWriter, name: str, reduction: Reduction, reduced) -> np.memmap:
        if not reduction.per_position:
            return writer.open(name, reduction, (writer.samples, reduced.shape[1]))
        grids = [position_grid(size, reduction.size) for size in self.shapes[name][1:]]
        # (row, column, ...) of every kept position, row-major like reduce_output's order
        points = np.array(np.meshgrid(*grids, indexing="ij")).reshape(len(grids), -1).T
        self.positions[name] = tuple(tuple(p) for p in points.tolist()) if grids else ((),)
        return writer.open(name, reduction, (reduced.shape[1], writer.samples, reduced.shape[2]))

    def run_split(self, split: str, dataset, batch_size: int, num_workers: int, progress) -> None:
        """One pass over ``dataset``: stream every layer's reductions to temporary files, then
        the labels (made final by :meth:`commit`)."""
        samples = len(dataset)
        writer = _SplitWriter(self.folder, self.run, split, samples)
        self.writers.append(writer)  # from here on, discard() deletes its files
        labels = np.empty(samples, dtype=np.int64)
        batch: dict[str, Any] = {"start": 0, "calls": {}}
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
        bar = tqdm(loader, desc=f"extracting {split}", leave=False, disable=not progress,
                   file=sys.stderr)  # fmt: skip
        correct = counted = 0
        hooks = [(module, self._hook(name, writer, batch)) for name, module in self.selected]
        with contextlib.closing(bar), Hooks().forward_all(hooks), torch.inference_mode():
            for inputs, targets in bar:
                batch["calls"] = {}
                targets = torch.as_tensor(targets).cpu()
                outputs = self.model(inputs.to(self.device))
                start = batch["start"]
                labels[start : start + len(targets)] = targets.numpy()
                if _is_logits(outputs, len(targets)):
                    correct += int((outputs.argmax(1).cpu() == targets).sum())
                    counted += len(targets)
                batch["start"] = start + len(targets)
        if batch["start"] != samples:
            raise LatentsError(f"split {split!r}: the loader gave {batch['start']} samples, "
                               f"the dataset says {samples}")  # fmt: skip
        if not writer.arrays:
            raise LatentsError(f"no selected layer ran on split {split!r}")
        self.files[split], label_file = writer.finish(labels)
        self.splits[split] = {
            "samples": samples,
            "labels": {"file": label_file.file, "shape": [samples], "bytes": label_file.bytes,
                       "sha256": label_file.sha256},
            "model_accuracy": correct / counted if counted == samples and samples else None,
        }  # fmt: skip

    def commit(self) -> None:
        """Every split finished: give all files their final names."""
        for writer in self.writers:
            writer.commit()

    def discard(self) -> None:
        """A split failed: delete the files of every split."""
        for writer in self.writers:
            writer.discard()

    def write_manifests(self, source: dict[str, Any]) -> dict[str, LatentManifest]:
        """One manifest per reduction, written last (atomically)."""
        modules = dict(self.selected)
        infos = describe_layers([(name, modules[name]) for name in self.order])
        source = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  "model": type(self.model).__name__, **source}  # fmt: skip
        manifests = {}
        for reduction in self.reductions:
            entries = []
            for info in infos:
                files = {split: found[(info.name, reduction.name)]
                         for split, found in self.files.items()}  # fmt: skip
                first = next(iter(files.values()))
                entries.append(LatentLayer(
                    name=info.name, index=info.index, type=info.type,
                    output_shape=self.shapes[info.name],
                    features=int(first.shape[-1] if reduction.per_position else first.shape[1]),
                    files=files,
                    positions=self.positions.get(info.name) if reduction.per_position else None,
                ))  # fmt: skip
            manifest = LatentManifest(self.folder, self.run, reduction.name, tuple(entries),
                                      self.splits, source)  # fmt: skip
            atomic_write_text(manifest.path, json.dumps(manifest.to_dict(), indent=1) + "\n")
            manifests[reduction.name] = manifest
        return manifests


def _is_logits(outputs, batch: int) -> bool:
    """A classifier's (batch, classes) output, from which the model's accuracy is counted."""
    return (
        isinstance(outputs, torch.Tensor)
        and outputs.dim() == 2
        and outputs.shape[0] == batch
        and outputs.shape[1] > 1
    )
