"""scikit-learn's handwritten digits: the embedded default dataset (SPEC C11).

1797 grey 8x8 images of the digits 0-9 with pixel values 0..16, shipped inside scikit-learn, so
nothing is downloaded. Pixels are scaled to [0, 1] and upsampled bilinearly to the resolution.

The train/test split is fixed and independent of the run's seed: 360 test images (20 %),
stratified (each digit gives 35 or 36), drawn with numpy's PCG64(0) (see
:func:`~layerscope.datasets.base.stratified_split`), leaving 1437 for training. Runs with different
seeds therefore test on the same images.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from layerscope.datasets.base import (
    ArraySource,
    DatasetSplits,
    augmentation_defaults,
    build_splits,
    stratified_split,
)
from layerscope.registry import DATASETS

__all__ = ["DIGITS_TEST_SIZE", "digits"]

#: Test images in the fixed split (20 % of 1797).
DIGITS_TEST_SIZE = 360


@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """Images (1797, 8, 8) float64 0..16 and labels (1797,), read once per process.

    scikit-learn ships the data as ``datasets/data/digits.csv.gz`` (64 pixels then the label per
    row). Reading that file directly skips importing scikit-learn (about 1.5 s); if the file
    ever moves, ``sklearn.datasets.load_digits`` is used instead.
    """
    spec = importlib.util.find_spec("sklearn")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            table = np.loadtxt(path, delimiter=",")
            images, labels = table[:, :64].reshape(-1, 8, 8), table[:, 64].astype(np.int64)
            break
    else:
        from sklearn.datasets import load_digits

        data = load_digits()
        images, labels = data.images, data.target.astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


@DATASETS.register("digits")
def digits(
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
    split_seed: int = 0,
) -> DatasetSplits:
    """scikit-learn's 8x8 digits at ``resolution`` (default 32), 1 channel (``channels=3`` repeats).

    Augmentation (train only): random crop with padding ``resolution // 8``; no flip by default
    (a mirrored digit is not the same digit). ``root`` is accepted for a uniform signature and
    ignored: the data is embedded. ``split_seed`` changes the fixed split (leave it at 0).

    Example:
        >>> splits = digits(resolution=16, augment=False, normalize=False)
        >>> x, y = splits.test[0]
        >>> tuple(x.shape), 0.0 <= x.min().item() <= x.max().item() <= 1.0, splits.class_names[y] == str(y)
        ((1, 16, 16), True, True)
    """
    raw_images, raw_labels = _digits_arrays()
    images = torch.tensor(raw_images, dtype=torch.float32)[:, None] / 16.0  # (1797, 1, 8, 8)
    labels = torch.tensor(raw_labels)
    train_idx, test_idx = stratified_split(raw_labels, DIGITS_TEST_SIZE, seed=split_seed)
    train_idx, test_idx = torch.as_tensor(train_idx), torch.as_tensor(test_idx)
    padding, flip = augmentation_defaults(resolution or 8, crop_padding, flip, flip_default=False)
    return build_splits(
        "digits",
        ArraySource(images[train_idx], labels[train_idx]),
        ArraySource(images[test_idx], labels[test_idx]),
        num_classes=10,
        class_names=[str(d) for d in range(10)],
        resolution=resolution,
        channels=channels,
        augment=augment,
        crop_padding=padding,
        flip=flip,
        canvas=canvas,
        normalize=normalize,
        seed=seed,
    )
