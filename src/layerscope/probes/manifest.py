"""The record of a finished latent extraction: what was extracted from what, and where it is.

Files are named ``<run>__<layer>__<reduction>__<split>.npy`` (labels:
``<run>__labels__<split>.npy``), so two runs or reductions never collide, and train and test
files are paired by name through the manifest ``<run>__<reduction>.manifest.json``, which is
written last: a folder without a manifest holds no finished extraction. Each file's SHA-256 is in
the manifest (the probe cache keys on it), with its size and shape.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from layerscope.errors import LatentsError, fix

__all__ = [
    "LATENTS_FORMAT",
    "LatentFile",
    "LatentLayer",
    "LatentManifest",
    "file_sha256",
    "manifest_path",
    "match_layers",
    "safe_name",
]

LATENTS_FORMAT = "layerscope-latents-1"
_SAFE = re.compile(r"[^A-Za-z0-9._=+,@-]")


def safe_name(name: str) -> str:
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
                    + fix(python="(force=True)", cli="(layerscope probe RUN_DIR --force)")
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
    return Path(folder) / f"{safe_name(run)}__{reduction}.manifest.json"


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
            f"{fix(python=f'layers={patterns!r}', cli='--layers ' + ' '.join(patterns))} "
            f"matches none of the layers {shown}{more}; give names or fnmatch patterns such as "
            + fix(python="layers=['features.*']", cli="--layers 'features.*'")
        )
    return found
