"""MNIST and Fashion-MNIST from IDX files, gzipped or not (LeCun et al. 1998; Xiao et al. 2017).

IDX format: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
0x0D float32, 0x0E float64), the number of dimensions, then each dimension as a big-endian
uint32, then the values in big-endian row-major order. Images are idx3 (N, 28, 28) uint8 files,
labels idx1 (N,) uint8 files:

    train-images-idx3-ubyte  train-labels-idx1-ubyte  t10k-images-idx3-ubyte  t10k-labels-idx1-ubyte

each optionally ending in ``.gz`` (detected from the content, not the name), in
``<root>/mnist/`` (or ``<root>/MNIST/raw/``, torchvision's layout) and ``<root>/fashion_mnist/``
(or ``<root>/FashionMNIST/raw/``).
"""

from __future__ import annotations

import gzip
import struct
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
from layerscope.errors import DatasetFormatError
from layerscope.registry import DATASETS

__all__ = ["fashion_mnist", "mnist", "read_idx"]

IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
    "Ankle boot",
)  # fmt: skip


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file (gzipped or not), in native byte order.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "labels-idx1-ubyte"
        >>> _ = path.write_bytes(bytes([0, 0, 0x08, 1]) + (3).to_bytes(4, "big") + bytes([7, 0, 9]))
        >>> read_idx(path).tolist()
        [7, 0, 9]
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise DatasetFormatError(f"{path} is a damaged gzip file ({error})") from error
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in IDX_TYPES:
        raise DatasetFormatError(
            f"{path} is not an IDX file: it must start with 0x00 0x00, a type code "
            f"({', '.join(hex(t) for t in IDX_TYPES)}) and the number of dimensions; "
            f"got {raw[:4].hex(' ')}"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetFormatError(f"{path}: header for {ndim} dimensions is truncated")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(IDX_TYPES[raw[2]])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DatasetFormatError(
            f"{path}: dimensions {dims} of {dtype.name} need {expected} bytes of data, the file "
            f"has {len(raw) - header} (truncated or not an IDX file)"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def _locate(root, folders: tuple[str, ...], dataset: str) -> dict[str, Path]:
    base = data_root(root)
    candidates = [base / f for f in folders] + [base]
    for candidate in candidates:
        found = {}
        for name in MNIST_FILES:
            options = [candidate / name, candidate / f"{name}.gz"]
            found[name] = next((p for p in options if p.is_file()), None)
        if all(found.values()):
            return found
    source = (
        "http://yann.lecun.com/exdb/mnist/"
        if dataset == "mnist"
        else "https://github.com/zalandoresearch/fashion-mnist"
    )
    listed = [f"{n}[.gz]" for n in MNIST_FILES]
    raise missing_files_error(dataset, candidates[0], listed, candidates, source)


def _split(files: dict[str, Path], prefix: str) -> tuple[torch.Tensor, np.ndarray]:
    images = read_idx(files[f"{prefix}-images-idx3-ubyte"])
    labels = read_idx(files[f"{prefix}-labels-idx1-ubyte"]).astype(np.int64)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DatasetFormatError(
            f"{prefix} files: images must be (N, H, W) and labels (N,), got {images.shape} and "
            f"{labels.shape}"
        )
    return torch.from_numpy(np.ascontiguousarray(images))[:, None], labels


def _mnist_like(name, folders, class_names, flip_default, kw) -> DatasetSplits:
    files = _locate(kw.pop("root"), folders, name)
    train, test = _split(files, "train"), _split(files, "t10k")
    resolution = kw.pop("resolution")
    padding, flip = augmentation_defaults(
        resolution or 28, kw.pop("crop_padding"), kw.pop("flip"), flip_default=flip_default
    )
    return build_splits(
        name,
        ArraySource(*train),
        ArraySource(*test),
        num_classes=10,
        class_names=class_names,
        resolution=resolution,
        crop_padding=padding,
        flip=flip,
        **kw,
    )


@DATASETS.register("mnist")
def mnist(
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
    """MNIST digits (60000 train, 10000 test, 28x28 grey) from ``<root>/mnist/``.

    Augmentation (train only): random crop with padding resolution // 8, no flip.
    """
    kw = dict(root=root, resolution=resolution, channels=channels, augment=augment)
    kw |= dict(crop_padding=crop_padding, flip=flip, canvas=canvas, normalize=normalize, seed=seed)
    return _mnist_like(
        "mnist", ("mnist", "MNIST/raw", "MNIST"), [str(d) for d in range(10)], False, kw
    )


@DATASETS.register("fashion_mnist")
def fashion_mnist(
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
    """Fashion-MNIST (60000 train, 10000 test, 28x28 grey) from ``<root>/fashion_mnist/``.

    Augmentation (train only): random crop with padding resolution // 8 and horizontal flip
    (clothes stay clothes when mirrored).
    """
    kw = dict(root=root, resolution=resolution, channels=channels, augment=augment)
    kw |= dict(crop_padding=crop_padding, flip=flip, canvas=canvas, normalize=normalize, seed=seed)
    folders = ("fashion_mnist", "FashionMNIST/raw", "FashionMNIST", "fashion-mnist")
    return _mnist_like("fashion_mnist", folders, FASHION_CLASSES, True, kw)
