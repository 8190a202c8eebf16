"""The shape every dataset takes: image sources, a map-style torch Dataset, and the split record.

A registered dataset factory reads or makes its images into two *sources* (train and test) and
hands them to :func:`build_splits`, which applies the common pipeline: channel conversion,
resizing to ``resolution``, augmentation on the train split only (random crop with padding,
horizontal flip), random placement on a larger canvas (dissertation 9.2) and per-channel
normalisation with statistics of the training split. The result is a frozen
:class:`DatasetSplits`.

Augmentation is keyed by (seed, split, epoch, index) (see :class:`SampleRandom`): call
``splits.set_epoch(epoch)`` before each epoch, and the same run sees the same images in any
process, with any number of workers, after a resume. Canvas positions of the test split depend
on the index only, so the test set is the same every epoch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from layerscope.datasets.transforms import Pipeline, SampleRandom, convert_channels
from layerscope.errors import DatasetNotFoundError, OptionError, fix, toml_lines
from layerscope.registry import DATASETS

__all__ = [
    "ArraySource",
    "DatasetSplits",
    "ImageDataset",
    "ImageSource",
    "augmentation_defaults",
    "build_splits",
    "channel_stats",
    "data_root",
    "load_dataset",
    "missing_files_error",
    "stratified_split",
]

#: Environment variable naming the folder that holds the on-disk datasets (default ./data).
DATA_ENV = "LAYERSCOPE_DATA"
#: Sources held in memory are resized once up front when the result stays below this size.
CACHE_LIMIT_BYTES = 512 * 2**20
#: Normalisation statistics use at most this many training images (a seeded sample beyond).
MAX_STAT_IMAGES = 10_000
_SPLIT_KEYS = {"train": 0, "test": 1}


class ImageSource(Protocol):
    """Stored images and labels: ``len``, ``labels`` (int64, (N,)) and ``image(i)`` (C, H, W)."""

    labels: torch.Tensor

    def __len__(self) -> int: ...

    def image(self, index: int) -> torch.Tensor: ...


class ArraySource:
    """Images held in memory as one (N, C, H, W) tensor; uint8 is scaled to [0, 1].

    Example:
        >>> src = ArraySource(torch.full((2, 1, 3, 3), 255, dtype=torch.uint8), torch.tensor([0, 1]))
        >>> len(src), src.image(1).max().item(), src.labels.tolist()
        (2, 1.0, [0, 1])
    """

    def __init__(self, images: torch.Tensor, labels) -> None:
        self.images = images
        self.labels = torch.as_tensor(labels, dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, indices) -> torch.Tensor:
        """Float32 images (n, C, H, W) at ``indices``."""
        images = self.images[indices]
        if images.dtype == torch.uint8:
            return images.to(torch.float32) / 255.0
        return images.to(torch.float32)

    def image(self, index: int) -> torch.Tensor:
        return self.batch(slice(index, index + 1))[0]


class ImageDataset(Dataset):
    """A map-style dataset yielding (image float tensor (C, H, W), int label).

    Example:
        >>> src = ArraySource(torch.zeros(3, 1, 4, 4), [0, 1, 2])
        >>> ds = ImageDataset(src, Pipeline(resolution=8), seed=0, split="test")
        >>> x, y = ds[2]
        >>> tuple(x.shape), y
        ((1, 8, 8), 2)
    """

    def __init__(self, source: ImageSource, pipeline: Pipeline, *, seed: int, split: str) -> None:
        self.source = source
        self.pipeline = pipeline
        self.seed = seed
        self.split = split
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.source)

    @property
    def targets(self) -> torch.Tensor:
        """All labels, (N,) int64."""
        return self.source.labels

    def set_epoch(self, epoch: int) -> None:
        """Choose the augmentation of epoch ``epoch`` (the test split ignores it)."""
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not 0 <= index < len(self):
            if -len(self) <= index < 0:
                index += len(self)
            else:
                raise IndexError(f"index {index} out of range for {len(self)} images")
        rng = None
        if self.pipeline.is_random:
            # The test split's randomness (canvas position) must not change between epochs.
            epoch = self.epoch if self.split == "train" else 0
            rng = SampleRandom(self.seed, _SPLIT_KEYS.get(self.split, 2), epoch, index)
        return self.pipeline(self.source.image(index), rng), int(self.source.labels[index])


@dataclass(frozen=True)
class DatasetSplits:
    """A dataset ready for training: train and test splits and what a model needs to know.

    ``input_size`` is the side of the images the model sees (the canvas when there is one,
    else ``resolution``); ``mean`` / ``std`` are the per-channel statistics used to normalise
    (None when not normalised).
    """

    name: str
    train: ImageDataset
    test: ImageDataset
    num_classes: int
    in_channels: int
    resolution: int
    input_size: int
    class_names: tuple[str, ...] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation for ``epoch``; call before iterating the train split."""
        self.train.set_epoch(epoch)


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder holding on-disk datasets: ``root``, else $LAYERSCOPE_DATA, else ./data.

    Example:
        >>> data_root("/tmp/x").as_posix()
        '/tmp/x'
    """
    if root is not None:
        return Path(root).expanduser()
    return Path(os.environ.get(DATA_ENV, "data")).expanduser()


def missing_files_error(
    dataset: str, folder: Path, files: Sequence[str], searched: Sequence[Path], source: str
) -> DatasetNotFoundError:
    """The error for a dataset that is not on disk: which files to put where, and from where.

    Example:
        >>> str(missing_files_error("x", Path("d/x"), ["a"], [Path("d/x")], "the x site"))[:48]
        "dataset 'x' was not found. Put these files into "
    """
    looked = ", ".join(str(p) for p in searched)
    return DatasetNotFoundError(
        f"dataset {dataset!r} was not found. Put these files into {folder}/: "
        f"{', '.join(files)} (from {source}). Searched: {looked}. For another data folder set "
        f"${DATA_ENV} or give its root: "
        + fix(python="root='FOLDER'", config=toml_lines("dataset_kwargs.root", "FOLDER"))
    )


def stratified_split(
    labels, test_size: int | float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Fixed stratified train/test indices: each class gives its share of the test set.

    ``test_size`` is a count or a fraction. Each class's test count is its share of the total,
    rounded by largest remainder so the counts add up exactly; within a class the test images
    are the first of a permutation drawn with numpy's PCG64(seed). Both index arrays are sorted.

    Example:
        >>> train, test = stratified_split([0, 0, 0, 0, 1, 1, 1, 1], 4)
        >>> len(train), len(test), sorted(np.array([0, 0, 0, 0, 1, 1, 1, 1])[test].tolist())
        (4, 4, [0, 0, 1, 1])
    """
    labels = np.asarray(labels)
    n = len(labels)
    n_test = round(test_size * n) if isinstance(test_size, float) else int(test_size)
    if not 0 < n_test < n:
        raise OptionError(f"test_size={test_size!r} leaves no train or no test images of {n}")
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * n_test / n
    per_class = np.floor(exact).astype(int)
    remainder_order = np.argsort(-(exact - per_class), kind="stable")
    per_class[remainder_order[: n_test - per_class.sum()]] += 1
    rng = np.random.Generator(np.random.PCG64(seed))
    test = [
        rng.permutation(np.flatnonzero(labels == c))[:k]
        for c, k in zip(classes, per_class, strict=True)
    ]
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(n), test_idx)
    return train_idx, test_idx


def _resized_source(source: ArraySource, channels: int | None, resolution: int | None):
    """The source converted and resized once (chunked), or None when it would not fit."""
    n, c, h, w = source.images.shape
    out_c = channels or c
    out_hw = (resolution, resolution) if resolution else (h, w)
    if n * out_c * out_hw[0] * out_hw[1] * 4 > CACHE_LIMIT_BYTES:
        return None
    chunks = []
    for start in range(0, n, 1024):
        batch = source.batch(slice(start, start + 1024))
        if channels is not None:
            batch = convert_channels(batch, channels)
        if resolution is not None and (h, w) != out_hw:
            shrinking = h > resolution or w > resolution
            batch = F.interpolate(
                batch, size=out_hw, mode="bilinear", align_corners=False, antialias=shrinking
            )
        chunks.append(batch)
    return ArraySource(torch.cat(chunks) if chunks else source.batch(slice(0, 0)), source.labels)


def channel_stats(
    source: ImageSource, pipeline: Pipeline | None = None, *, max_images: int = MAX_STAT_IMAGES
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) standard deviation of a source's pixels, float64.

    Images pass through ``pipeline`` first (use one without random steps: channels and
    resolution). Beyond ``max_images`` a seeded sample (PCG64(0)) is used. A constant channel
    gets std 1 so that normalising leaves it finite.

    Example:
        >>> src = ArraySource(torch.tensor([[[[0.0, 2.0]]], [[[4.0, 6.0]]]]), [0, 1])
        >>> channel_stats(src)
        ((3.0,), (2.23606797749979,))
    """
    n = len(source)
    indices = np.arange(n)
    if n > max_images:
        indices = np.sort(np.random.Generator(np.random.PCG64(0)).choice(n, max_images, False))
    total = sq_total = None
    count = 0
    for start in range(0, len(indices), 512):
        chunk = indices[start : start + 512]
        if isinstance(source, ArraySource) and pipeline is None:
            batch = source.batch(torch.as_tensor(chunk))
        else:
            step = pipeline or Pipeline()
            batch = torch.stack([step(source.image(int(i))) for i in chunk])
        batch = batch.to(torch.float64).transpose(0, 1).reshape(batch.shape[1], -1)
        total = batch.sum(1) if total is None else total + batch.sum(1)
        sq_total = (batch**2).sum(1) if sq_total is None else sq_total + (batch**2).sum(1)
        count += batch.shape[1]
    mean = total / count
    var = (sq_total / count - mean**2).clamp_min(0.0)
    std = torch.where(var > 0, var.sqrt(), torch.ones_like(var))
    return tuple(mean.tolist()), tuple(std.tolist())


def _check_int(name: str, value, minimum: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        none = " or None" if allow_none else ""
        raise OptionError(f"{name} must be an int >= {minimum}{none}, got {value!r}")


def _check_splits(name, train, test, resolution, crop_padding, canvas, channels):
    """The options of :func:`build_splits` checked; the first stored image and the side size."""
    _check_int("resolution", resolution, 1, allow_none=True)
    _check_int("crop_padding", crop_padding, 0)
    _check_int("canvas", canvas, 1, allow_none=True)
    if channels not in (None, 1, 3):
        raise OptionError(f"channels must be 1, 3 or None (keep the stored ones), got {channels!r}")
    if len(train) == 0 or len(test) == 0:
        raise OptionError(
            f"dataset {name!r} has an empty split ({len(train)} train, {len(test)} test)"
        )
    stored = train.image(0)
    size = resolution or stored.shape[-1]
    if canvas is not None and canvas < size:
        raise OptionError(
            f"canvas={canvas} is smaller than the images ({size}x{size}); the canvas must be at "
            f"least the resolution (dissertation 9.2 places 32x32 images on 160x160)"
        )
    return stored, size


def build_splits(
    name: str,
    train: ImageSource,
    test: ImageSource,
    *,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    resolution: int | None = 32,
    channels: int | None = None,
    augment: bool = True,
    crop_padding: int = 0,
    flip: bool = False,
    canvas: int | None = None,
    fill: float = 0.0,
    normalize: bool = True,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    seed: int = 0,
) -> DatasetSplits:
    """Wrap two sources into :class:`DatasetSplits` with the common pipeline.

    ``crop_padding`` and ``flip`` apply to the train split only and only when ``augment``;
    ``canvas`` applies to both (dissertation 9.2.1 places the image at random during training
    and inference). ``mean``/``std`` default to the training split's statistics at the target
    resolution and channels, before augmentation and canvas.

    Example:
        >>> src = ArraySource(torch.rand(4, 1, 8, 8), [0, 1, 0, 1])
        >>> splits = build_splits("toy", src, src, num_classes=2, resolution=16, canvas=20)
        >>> splits.input_size, tuple(splits.train[0][0].shape)
        (20, (1, 20, 20))
    """
    stored, size = _check_splits(name, train, test, resolution, crop_padding, canvas, channels)
    shape = Pipeline(resolution=resolution, channels=channels)
    if isinstance(train, ArraySource) and isinstance(test, ArraySource):
        cached = (
            _resized_source(train, channels, resolution),
            _resized_source(test, channels, resolution),
        )
        if cached[0] is not None and cached[1] is not None:
            train, test = cached
            shape = None  # already converted and resized: statistics read the tensor directly
    if normalize and mean is None:
        mean, std = channel_stats(train, shape)
    elif normalize and (std is None or len(std) != len(mean)):
        raise OptionError(f"give mean and std with one value per channel, got {mean!r}, {std!r}")
    in_channels = channels or stored.shape[-3]
    if normalize and len(mean) != in_channels:
        raise OptionError(f"mean {tuple(mean)} has {len(mean)} values for {in_channels} channels")
    norm = dict(mean=tuple(map(float, mean)), std=tuple(map(float, std))) if normalize else {}
    common = dict(resolution=resolution, channels=channels, canvas=canvas, fill=fill, **norm)
    train_pipe = Pipeline(
        crop_padding=crop_padding if augment else 0, flip=flip and augment, **common
    )
    return DatasetSplits(
        name=name,
        train=ImageDataset(train, train_pipe, seed=seed, split="train"),
        test=ImageDataset(test, Pipeline(**common), seed=seed, split="test"),
        num_classes=int(num_classes),
        in_channels=int(in_channels),
        resolution=int(size),
        input_size=int(canvas or size),
        class_names=tuple(class_names) if class_names is not None else None,
        mean=norm.get("mean"),
        std=norm.get("std"),
    )


def load_dataset(name: str, /, **kwargs: Any) -> DatasetSplits:
    """Build the registered dataset ``name``; keyword arguments go to its factory.

    Every built-in factory takes ``root, resolution=32, channels=None, augment=True,
    crop_padding=None (its default), flip=None (its default), canvas=None, normalize=True,
    seed=0`` and its own options. An unknown name or keyword says what is valid.

    Example:
        >>> splits = load_dataset("digits", resolution=16)
        >>> len(splits.train), len(splits.test), splits.num_classes, tuple(splits.test[0][0].shape)
        (1437, 360, 10, (1, 16, 16))
    """
    factory = DATASETS.get(name)
    DATASETS.check_options(name, kwargs)
    return factory(**kwargs)


def augmentation_defaults(
    size: int, crop_padding: int | None, flip: bool | None, *, flip_default: bool
) -> tuple[int, bool]:
    """Fill in a dataset's augmentation defaults: padding size // 8 (4 at 32, the CIFAR recipe).

    Example:
        >>> augmentation_defaults(32, None, None, flip_default=False)
        (4, False)
    """
    padding = max(1, size // 8) if crop_padding is None else crop_padding
    return padding, flip_default if flip is None else bool(flip)
