"""CIFAR-10 and CIFAR-100 from their python-pickle folders (Krizhevsky 2009).

Layout (as unpacked from the official ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``):

    <root>/cifar-10-batches-py/data_batch_1 ... data_batch_5, test_batch, batches.meta
    <root>/cifar-100-python/train, test, meta

Each file is a pickled dict with bytes keys: ``b"data"`` a (N, 3072) uint8 array (the red, green
and blue 32x32 planes of an image, row-major) and ``b"labels"`` (CIFAR-10) or ``b"fine_labels"``
/ ``b"coarse_labels"`` (CIFAR-100). The meta files hold the class names. Pickles can run code
when loaded, so these are read with an unpickler that only builds numpy arrays.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from layerscope.datasets.base import (
    ArraySource,
    DatasetSplits,
    augmentation_defaults,
    build_splits,
    data_root,
    missing_files_error,
)
from layerscope.errors import DatasetFormatError, OptionError
from layerscope.registry import DATASETS

__all__ = ["cifar10", "cifar100", "read_cifar_batch"]

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = "test_batch"
CIFAR100_FOLDER = "cifar-100-python"
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
_SOURCE = "https://www.cs.toronto.edu/~kriz/cifar.html, the 'python version'"

# The only globals a CIFAR pickle needs: numpy array reconstruction (numpy 1 and 2 module names)
# and _codecs.encode, which protocol-2 pickles use for byte strings.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
    ("_codecs", "encode"): ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        target = _ALLOWED.get((module, name))
        if target is None:
            raise DatasetFormatError(
                f"refusing to load {module}.{name} from a CIFAR pickle: the format holds only "
                f"numpy arrays, lists and bytes, so this file is not a CIFAR batch"
            )
        if target[0] == "numpy._core.multiarray" and not hasattr(np, "_core"):
            target = ("numpy.core.multiarray", target[1])  # numpy < 2
        return super().find_class(*target)


def _get(batch: dict, key: str, path: Path):
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    raise DatasetFormatError(f"{path} has no key {key!r}; keys: {sorted(map(str, batch))}")


def read_cifar_batch(path: Path, label_key: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 from one CIFAR pickle file.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "batch"
        >>> data = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [3, 1]}
        >>> _ = path.write_bytes(pickle.dumps(data, protocol=2))
        >>> images, labels = read_cifar_batch(path)
        >>> images.shape, labels.tolist()
        ((2, 3, 32, 32), [3, 1])
    """
    try:
        with open(path, "rb") as handle:
            batch = _ArrayUnpickler(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, AttributeError) as error:
        if isinstance(error, DatasetFormatError):
            raise
        raise DatasetFormatError(f"{path} is not a readable CIFAR pickle ({error})") from error
    if not isinstance(batch, dict):
        raise DatasetFormatError(f"{path} holds a {type(batch).__name__}, not a CIFAR dict")
    data = np.asarray(_get(batch, "data", path))
    labels = np.asarray(_get(batch, label_key, path), dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetFormatError(
            f"{path}: b'data' must be uint8 of shape (N, 3072), got {data.dtype} {data.shape}"
        )
    if len(labels) != len(data):
        raise DatasetFormatError(f"{path}: {len(data)} images but {len(labels)} labels")
    return data.reshape(-1, 3, 32, 32), labels


def _names(path: Path, key: str) -> tuple[str, ...] | None:
    if not path.is_file():
        return None
    with open(path, "rb") as handle:
        meta = _ArrayUnpickler(handle, encoding="bytes").load()
    names = _get(meta, key, path)
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def _find(root, folder: str, files: tuple[str, ...], dataset: str) -> Path:
    base = data_root(root)
    candidates = [base / folder, base]
    for candidate in candidates:
        if all((candidate / f).is_file() for f in files):
            return candidate
    raise missing_files_error(dataset, base / folder, files, candidates, _SOURCE)


def _build(name, train, test, num_classes, class_names, kw) -> DatasetSplits:
    resolution = kw.pop("resolution")
    padding, flip = augmentation_defaults(
        resolution or 32, kw.pop("crop_padding"), kw.pop("flip"), flip_default=True
    )
    return build_splits(
        name,
        ArraySource(torch.from_numpy(train[0]), train[1]),
        ArraySource(torch.from_numpy(test[0]), test[1]),
        num_classes=num_classes,
        class_names=class_names,
        resolution=resolution,
        crop_padding=padding,
        flip=flip,
        **kw,
    )


@DATASETS.register("cifar10")
def cifar10(
    *,
    root=None,
    resolution: int | None = 32,
    channels: int | None = None,
    augment: bool = True,
    crop_padding: int | None = None,
    flip: bool | None = None,
    canvas: int | None = None,
    normalize: bool = True,
    seed: int = 0,
) -> DatasetSplits:
    """CIFAR-10 (50000 train, 10000 test, 32x32 RGB) from ``<root>/cifar-10-batches-py/``.

    Augmentation (train only): random crop with padding resolution // 8 and horizontal flip.
    """
    files = (*CIFAR10_TRAIN, CIFAR10_TEST)
    folder = _find(root, CIFAR10_FOLDER, files, "cifar10")
    parts = [read_cifar_batch(folder / f) for f in CIFAR10_TRAIN]
    train = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    test = read_cifar_batch(folder / CIFAR10_TEST)
    names = _names(folder / "batches.meta", "label_names") or CIFAR10_CLASSES
    kw = dict(resolution=resolution, channels=channels, augment=augment, crop_padding=crop_padding)
    kw |= dict(flip=flip, canvas=canvas, normalize=normalize, seed=seed)
    return _build("cifar10", train, test, 10, names, kw)


@DATASETS.register("cifar100")
def cifar100(
    *,
    root=None,
    resolution: int | None = 32,
    channels: int | None = None,
    augment: bool = True,
    crop_padding: int | None = None,
    flip: bool | None = None,
    canvas: int | None = None,
    normalize: bool = True,
    seed: int = 0,
    labels: str = "fine",
) -> DatasetSplits:
    """CIFAR-100 from ``<root>/cifar-100-python/``; ``labels="fine"`` (100) or ``"coarse"`` (20)."""
    if labels not in ("fine", "coarse"):
        raise OptionError(f"cifar100: labels must be 'fine' or 'coarse', got {labels!r}")
    folder = _find(root, CIFAR100_FOLDER, ("train", "test"), "cifar100")
    key = f"{labels}_labels"
    train = read_cifar_batch(folder / "train", key)
    test = read_cifar_batch(folder / "test", key)
    names = _names(folder / "meta", f"{labels}_label_names")
    kw = dict(resolution=resolution, channels=channels, augment=augment, crop_padding=crop_padding)
    kw |= dict(flip=flip, canvas=canvas, normalize=normalize, seed=seed)
    return _build("cifar100", train, test, 100 if labels == "fine" else 20, names, kw)
