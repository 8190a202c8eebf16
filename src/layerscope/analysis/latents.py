"""Latent extraction for probes: every recorded layer's outputs, reduced, on disk (SPEC C6).

The dissertation's PHD-Lab (6.2.5) extracted the latent representations of all recordable layers
after training and stored them, with the labels, for separate probe training. Here:

- the model runs in eval mode without gradients, on datasets the caller gives without
  augmentation, for the training split too (PHD-Lab extracted the training split in train mode:
  BatchNorm statistics moved and dropout was on);
- layers are chosen with :func:`~layerscope.tracking.layers.select_layers` (the Tracker's
  selection and names) and listed in forward order (the order of their first call);
- feature maps are reduced as in the ablation of dissertation 8.3: adaptive average pooling to
  at most s x s (``"avg4"``, the default, 8.3.3), nearest interpolation (``"nearest4"``), global
  average pooling (``"gap"``), or kept whole (``"full"``). Sizes are maxima: a smaller map is
  never enlarged (8.3.1). Then flattened channel-major (torch's ``flatten``). ``"pos8"`` keeps
  the channel vector of every position of an at most 8 x 8 grid of positions (the centres of
  8 x 8 equal cells; ``"pos"``: all positions), for position probes (9.3, figure 54). Dense outputs (N, C) pass through unchanged;
  token sequences are treated as 1-D maps;
- batches stream into ``.npy`` files (float32, memory-mappable with
  ``np.load(path, mmap_mode="r")``), so memory stays bounded by a batch;
- files are named ``<run>__<layer>__<reduction>__<split>.npy`` (labels:
  ``<run>__labels__<split>.npy``), so two runs or reductions never collide, and train and test
  files are paired by name through the manifest ``<run>__<reduction>.manifest.json``, which is
  written last: a folder without a manifest holds no finished extraction;
- every split streams into temporary files that get their final names only once all splits
  have finished, so an error (in any split) leaves no file behind and no hook on the model,
  and the files of an earlier extraction in the folder stay as they were.

Each file's SHA-256 is in the manifest (the probe cache keys on it), with its size and shape.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from layerscope.stats.samples import downsample
from layerscope.store.atomic import atomic_write_text
from layerscope.tracking.layers import (
    CHANNELS_FIRST_TYPES,
    describe_layers,
    features_tensor,
    select_layers,
)
from layerscope.tracking.modes import batch_axis, evaluation_mode, model_device

__all__ = [
    "LATENTS_FORMAT",
    "LatentFile",
    "LatentLayer",
    "LatentManifest",
    "LatentsError",
    "Reduction",
    "extract_latents",
    "file_sha256",
    "manifest_path",
    "match_layers",
    "reduce_output",
]

LATENTS_FORMAT = "layerscope-latents-1"
DEFAULT_REDUCTION = "avg4"
_REDUCTION = re.compile(r"(avg|nearest)(\d+)|gap|full|pos(\d*)")
_SAFE = re.compile(r"[^A-Za-z0-9._=+,@-]")


class LatentsError(ValueError):
    """A reduction, a layer output or a latents folder that cannot be used as asked."""


@dataclass(frozen=True)
class Reduction:
    """How a layer's output becomes one feature vector per sample (dissertation 8.3).

    ``method`` is ``"avg"`` (adaptive average pooling to at most ``size`` per spatial axis),
    ``"nearest"`` (nearest interpolation to at most ``size``), ``"gap"`` (global average
    pooling), ``"full"`` (no reduction) or ``"pos"`` (the channel vectors of a grid of at most
    ``size`` positions per axis, all positions when ``size`` is None).

    Example:
        >>> Reduction.parse("avg4")
        Reduction(method='avg', size=4)
        >>> Reduction.parse("gap").name, Reduction("nearest", 2).name, Reduction("pos").name
        ('gap', 'nearest2', 'pos')
    """

    method: str
    size: int | None = None

    def __post_init__(self) -> None:
        sized = self.method in ("avg", "nearest")
        valid = (
            (sized and isinstance(self.size, int) and self.size >= 1)
            or (self.method in ("gap", "full") and self.size is None)
            or (self.method == "pos" and (self.size is None or self.size >= 1))
        )
        if not valid:
            raise LatentsError(
                f"invalid reduction {self.method!r} with size {self.size!r}: use avg<s> or "
                f"nearest<s> (s >= 1, e.g. 'avg4'), 'gap', 'full', or pos[<s>] (e.g. 'pos8')"
            )

    @classmethod
    def parse(cls, text: str | Reduction) -> Reduction:
        """``"avg4"``, ``"nearest2"``, ``"gap"``, ``"full"``, ``"pos8"`` or ``"pos"``."""
        if isinstance(text, Reduction):
            return text
        match = _REDUCTION.fullmatch(str(text).strip().lower())
        if not match:
            raise LatentsError(
                f"unknown reduction {text!r}: use avg<s> (adaptive average pooling to at most "
                f"s x s, the dissertation's avg4), nearest<s>, gap (global average pooling), "
                f"full (no reduction) or pos[<s>] (per-position vectors on an s x s grid)"
            )
        if match.group(1):
            return cls(match.group(1), int(match.group(2)))
        if match.group(0).startswith("pos"):
            return cls("pos", int(match.group(3)) if match.group(3) else None)
        return cls(match.group(0))

    @property
    def name(self) -> str:
        return self.method + ("" if self.size is None else str(self.size))

    @property
    def per_position(self) -> bool:
        return self.method == "pos"


def _channels_first(module: nn.Module, output: object) -> torch.Tensor | None:
    """The output as (N, C, *positions); None when the module returned nothing to record."""
    found = features_tensor(module, output)
    if found is None:
        return None
    tensor, _ = found
    if isinstance(module, CHANNELS_FIRST_TYPES) or tensor.dim() == 2:
        return tensor
    # features last (features_tensor's rule for all but channels-first layers); (T, N, C) -> (N, T, C)
    tensor = tensor.movedim(batch_axis(module, tensor), 0)
    return tensor.movedim(-1, 1)


def _grid(size: int, limit: int | None) -> list[int]:
    """At most ``limit`` indices out of ``size``: the centres of ``limit`` equal bins, so the
    grid is symmetric (border against centre is what figure 54 compares)."""
    count = size if limit is None else min(size, limit)
    return [int((i + 0.5) * size / count) for i in range(count)]


def reduce_output(module: nn.Module, output: object, reduction: str | Reduction) -> torch.Tensor:
    """One layer output reduced for probes: (N, features), or (N, positions, C) for ``pos``.

    Example:
        >>> conv = nn.Conv2d(1, 3, 3, padding=1)
        >>> out = conv(torch.zeros(2, 1, 8, 8))
        >>> reduce_output(conv, out, "avg4").shape, reduce_output(conv, out, "gap").shape
        (torch.Size([2, 48]), torch.Size([2, 3]))
        >>> reduce_output(conv, out, "pos2").shape    # positions (2, 2), (2, 6), (6, 2), (6, 6)
        torch.Size([2, 4, 3])
    """
    reduction = Reduction.parse(reduction)
    x = _channels_first(module, output)
    if x is None:
        raise LatentsError(f"{type(module).__name__} returned no tensor to reduce")
    x = x.detach()
    n, channels = x.shape[:2]
    spatial = tuple(x.shape[2:])
    if reduction.per_position:
        if not spatial:
            return x.reshape(n, 1, channels)
        for axis, size in enumerate(spatial):
            index = torch.tensor(_grid(size, reduction.size), device=x.device)
            x = x.index_select(2 + axis, index)
        return x.flatten(2).transpose(1, 2)  # (N, positions, C), positions row-major
    if spatial and reduction.method == "gap":
        x = x.mean(tuple(range(2, x.dim())))
    elif spatial and reduction.method in ("avg", "nearest"):
        method = "adaptive_avg" if reduction.method == "avg" else "nearest"
        x = downsample(x, reduction.size, method)
    return x.reshape(n, -1)


def _safe(name: str) -> str:
    return _SAFE.sub("_", name)


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read in 8 MiB blocks.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "x"; _ = path.write_bytes(b"abc")
        >>> file_sha256(path)[:12]
        'ba7816bf8f01'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(8 * 2**20):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- the manifest
@dataclass(frozen=True)
class LatentFile:
    """One stored array: ``file`` (name in the folder), its ``shape``, size and SHA-256."""

    file: str
    shape: tuple[int, ...]
    bytes: int
    sha256: str


@dataclass(frozen=True)
class LatentLayer:
    """A layer's extracted features.

    Attributes:
        name, index, type: as in the layer's :class:`~layerscope.tracking.LayerInfo` (index in
            forward order).
        output_shape: one sample's output, e.g. (C, H, W).
        features: length of one sample's feature vector (C for ``pos``).
        positions: for ``pos``: the (row, column, ...) indices of the kept positions.
        files: split -> :class:`LatentFile`; arrays are (N, features), or (positions, N, C)
            for ``pos`` (each position's block contiguous).
    """

    name: str
    index: int
    type: str
    output_shape: tuple[int, ...]
    features: int
    files: dict[str, LatentFile]
    positions: tuple[tuple[int, ...], ...] | None = None


@dataclass(frozen=True)
class LatentManifest:
    """A finished extraction: what was extracted from what, and where it is.

    ``splits`` maps a split name to its sample count, labels file and the model's own accuracy
    on it (eval mode, no augmentation; None when the model's output is not (N, classes)).
    Load with :meth:`read`; open arrays with :meth:`features` and :meth:`labels`.
    """

    folder: Path
    run: str
    reduction: str
    layers: tuple[LatentLayer, ...]
    splits: dict[str, dict[str, Any]]
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return manifest_path(self.folder, self.run, self.reduction)

    def layer(self, name: str) -> LatentLayer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise LatentsError(
            f"layer {name!r} is not in the extraction {self.path.name}; it holds "
            f"{', '.join(layer.name for layer in self.layers)}"
        )

    def features(self, layer: str, split: str) -> np.ndarray:
        """The (memory-mapped, read-only) features of ``layer`` on ``split``."""
        entry = self.layer(layer).files.get(split)
        if entry is None:
            raise LatentsError(
                f"no split {split!r} in {self.path.name}; it has {list(self.splits)}"
            )
        return np.load(self.folder / entry.file, mmap_mode="r")

    def labels(self, split: str) -> np.ndarray:
        if split not in self.splits:
            raise LatentsError(
                f"no split {split!r} in {self.path.name}; it has {list(self.splits)}"
            )
        return np.load(self.folder / self.splits[split]["labels"]["file"])

    def model_accuracy(self, split: str) -> float | None:
        return self.splits.get(split, {}).get("model_accuracy")

    def check_files(self) -> None:
        """Raise :class:`LatentsError` when a listed file is missing or has another size."""
        entries = [f for layer in self.layers for f in layer.files.values()]
        entries += [LatentFile(**s["labels"]) for s in self.splits.values()]
        for entry in entries:
            path = self.folder / entry.file
            size = path.stat().st_size if path.is_file() else None
            if size != entry.bytes:
                found = "missing" if size is None else f"{size} bytes, not {entry.bytes}"
                raise LatentsError(
                    f"{path} is {found}: the extraction is damaged. Extract again "
                    f"(force=True, or `layerscope probe --force`)"
                )

    def to_dict(self) -> dict[str, Any]:
        def plain(entry: LatentFile) -> dict:
            return {
                "file": entry.file,
                "shape": list(entry.shape),
                "bytes": entry.bytes,
                "sha256": entry.sha256,
            }

        return {
            "format": LATENTS_FORMAT,
            "run": self.run,
            "reduction": self.reduction,
            "source": self.source,
            "splits": self.splits,
            "layers": [
                {
                    "name": layer.name,
                    "index": layer.index,
                    "type": layer.type,
                    "output_shape": list(layer.output_shape),
                    "features": layer.features,
                    "positions": None
                    if layer.positions is None
                    else [list(p) for p in layer.positions],
                    "files": {split: plain(entry) for split, entry in layer.files.items()},
                }
                for layer in self.layers
            ],
        }

    @classmethod
    def read(cls, path: str | os.PathLike) -> LatentManifest:
        """Load a manifest file (``<run>__<reduction>.manifest.json``)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise LatentsError(f"{path} is not a readable latents manifest ({error})") from None
        if data.get("format") != LATENTS_FORMAT:
            raise LatentsError(f"{path} is not a {LATENTS_FORMAT} manifest")
        layers = tuple(
            LatentLayer(
                name=item["name"],
                index=item["index"],
                type=item["type"],
                output_shape=tuple(item["output_shape"]),
                features=item["features"],
                files={
                    split: LatentFile(f["file"], tuple(f["shape"]), f["bytes"], f["sha256"])
                    for split, f in item["files"].items()
                },
                positions=None
                if item.get("positions") is None
                else tuple(tuple(p) for p in item["positions"]),
            )
            for item in data["layers"]
        )
        return cls(
            path.parent,
            data["run"],
            data["reduction"],
            layers,
            data["splits"],
            data.get("source", {}),
        )


def manifest_path(folder: str | os.PathLike, run: str, reduction: str) -> Path:
    """Where the manifest of ``run`` and ``reduction`` lives in ``folder``.

    Example:
        >>> manifest_path("latents", "r0", "avg4").as_posix()
        'latents/r0__avg4.manifest.json'
    """
    return Path(folder) / f"{_safe(run)}__{reduction}.manifest.json"


def match_layers(names: Sequence[str], patterns: Iterable[str]) -> list[str]:
    """The ``names`` matched by any of the fnmatch ``patterns``, in the order of ``names``.

    Raises :class:`LatentsError` when none matches.

    Example:
        >>> match_layers(["features.0", "features.3", "classifier"], ["features.*"])
        ['features.0', 'features.3']
    """
    patterns = list(patterns)
    found = [name for name in names if any(fnmatch.fnmatchcase(name, p) for p in patterns)]
    if not found:
        shown = list(names)[:20]
        more = " ..." if len(names) > len(shown) else ""
        raise LatentsError(
            f"layers={patterns!r} matches none of the layers {shown}{more}; give names or "
            f"fnmatch patterns such as 'features.*'"
        )
    return found


# --------------------------------------------------------------------------- extraction
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
            f"{_safe(self.run)}__{_safe(layer)}__{reduction.name}__{self.split}.npy"
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
        paths = self._paths(f"{_safe(self.run)}__labels__{self.split}.npy")
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
            f"{free / 2**30:.2f} GiB are free. Use a coarser reduction (avg4, gap), fewer layers "
            f"(layers=[...] / --layers), or another folder (latents_dir / --latents)"
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
                    f"shared module); its output is not one vector per sample. Exclude it "
                    f"(exclude=[{name!r}] / tracker.exclude in the config)"
                )
            if name not in self.shapes:
                self.order.append(name)
                self.shapes[name] = tuple(_channels_first(module, output).shape[1:])
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
        grids = [_grid(size, reduction.size) for size in self.shapes[name][1:]]
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
        handles = []
        try:
            for name, module in self.selected:
                handles.append(module.register_forward_hook(self._hook(name, writer, batch)))
            with torch.inference_mode():
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
        finally:
            bar.close()
            for handle in handles:
                handle.remove()
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
