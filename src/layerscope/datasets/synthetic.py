"""Synthetic images with controllable difficulty (SPEC C11).

Each class owns ``modes`` prototype patterns: smooth random fields made by drawing standard normal
values on a coarse grid of (resolution / feature_size)^2 cells and upsampling them bilinearly to
the resolution, then standardising each prototype to mean 0 and standard deviation 1 per pixel.
``feature_size`` is thus the size in pixels of the discriminatory blobs (the quantity
dissertation 9.2 finds decisive for where layers stop contributing). A sample of class y is one of
its prototypes, chosen uniformly, plus independent Gaussian pixel noise:

    x = P[y, m] + noise * eps,   eps ~ N(0, 1) per pixel.

Difficulty rises with (nearest-centroid test accuracy with 10 classes and the default
feature size, for orientation: noise 4 gives 0.54 / 0.92 / 1.00 at resolution 8 / 16 / 32,
noise 8 (the default) 0.24 / 0.46 / 0.81, noise 16 0.15 / 0.19 / 0.30)
- ``noise``: the per-pixel noise standard deviation relative to the pattern's (a signal-to-noise
  ratio of 1 / noise per pixel). With one mode per class the best possible classifier is the
  nearest prototype, and its accuracy falls monotonically as noise grows. Averaging over a blob
  removes noise, so the same noise is easier for larger ``feature_size`` and resolution;
- ``num_classes``: more prototypes crowd the same space, and chance level falls to 1/num_classes;
- ``modes``: several unrelated patterns per class make the class boundary non-linear (a
  nearest-mean classifier no longer suffices).

The data is a fixed function of ``data_seed`` (prototypes, labels, noise); the run's ``seed``
only drives augmentation. Classes are balanced exactly in both splits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from layerscope.datasets.base import ArraySource, DatasetSplits, build_splits
from layerscope.errors import OptionError
from layerscope.registry import DATASETS

__all__ = ["make_synthetic", "synthetic"]


def _check(name: str, value, low, kind=int) -> None:
    wrong_type = isinstance(value, bool) or not isinstance(
        value, (int, float) if kind is float else int
    )
    if wrong_type or value < low:
        raise OptionError(
            f"synthetic: {name} must be {'a number' if kind is float else 'an int'} >= {low}, got {value!r}"
        )


def make_synthetic(
    num_samples: int,
    *,
    num_classes: int = 10,
    noise: float = 1.0,
    modes: int = 1,
    resolution: int = 32,
    feature_size: int | None = None,
    channels: int = 1,
    generator: torch.Generator,
    prototypes: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images (N, C, R, R), labels (N,) and the prototypes (classes, modes, C, R, R).

    Pass ``prototypes`` to draw more samples from the same classes (the test split).

    Example:
        >>> x, y, p = make_synthetic(20, num_classes=4, resolution=8, generator=torch.Generator().manual_seed(0))
        >>> tuple(x.shape), torch.bincount(y).tolist(), tuple(p.shape)
        ((20, 1, 8, 8), [5, 5, 5, 5], (4, 1, 1, 8, 8))
    """
    if prototypes is None:
        size = feature_size or max(1, resolution // 4)
        grid = max(1, round(resolution / size))
        coarse = torch.randn(num_classes * modes, channels, grid, grid, generator=generator)
        fields = F.interpolate(
            coarse, size=(resolution, resolution), mode="bilinear", align_corners=False
        )
        flat = fields.flatten(1)
        flat = (flat - flat.mean(1, keepdim=True)) / flat.std(
            1, correction=0, keepdim=True
        ).clamp_min(1e-12)
        prototypes = flat.view(num_classes, modes, channels, resolution, resolution)
    num_classes, modes = prototypes.shape[:2]
    labels = torch.arange(num_samples) % num_classes  # exactly balanced (up to the remainder)
    labels = labels[torch.randperm(num_samples, generator=generator)]
    mode = torch.randint(modes, (num_samples,), generator=generator)
    clean = prototypes[labels, mode]
    images = clean + noise * torch.randn(clean.shape, generator=generator)
    return images, labels, prototypes


@DATASETS.register("synthetic")
def synthetic(
    *,
    root=None,
    resolution: int = 32,
    channels: int | None = None,
    augment: bool = True,
    crop_padding: int | None = None,
    flip: bool | None = None,
    canvas: int | None = None,
    normalize: bool = True,
    seed: int = 0,
    num_classes: int = 10,
    noise: float = 8.0,
    modes: int = 1,
    feature_size: int | None = None,
    train_size: int = 2000,
    test_size: int = 500,
    data_seed: int = 0,
) -> DatasetSplits:
    """Random-prototype images whose difficulty is set by ``noise``, ``num_classes``, ``modes``.

    ``feature_size`` defaults to resolution // 4 pixels. Generated at ``resolution`` with
    ``channels`` (default 1). No augmentation by default (``crop_padding=None`` means 0): the
    patterns are the signal. ``root`` is accepted for a uniform signature and ignored.

    Example:
        >>> easy = synthetic(resolution=8, num_classes=3, noise=0.1, train_size=30, test_size=9)
        >>> len(easy.train), len(easy.test), easy.num_classes, easy.in_channels
        (30, 9, 3, 1)
    """
    _check("resolution", resolution, 1)
    _check("num_classes", num_classes, 2)
    _check("modes", modes, 1)
    _check("train_size", train_size, num_classes)
    _check("test_size", test_size, 1)
    _check("noise", noise, 0, float)
    if feature_size is not None:
        _check("feature_size", feature_size, 1)
    generator = torch.Generator().manual_seed(int(data_seed))
    shape = dict(resolution=resolution, feature_size=feature_size, channels=channels or 1)
    train_x, train_y, protos = make_synthetic(
        train_size, num_classes=num_classes, noise=noise, modes=modes, generator=generator, **shape
    )
    test_x, test_y, _ = make_synthetic(
        test_size, noise=noise, generator=generator, prototypes=protos, **shape
    )
    return build_splits(
        "synthetic",
        ArraySource(train_x, train_y),
        ArraySource(test_x, test_y),
        num_classes=num_classes,
        class_names=[f"class{k}" for k in range(num_classes)],
        resolution=resolution,
        augment=augment,
        crop_padding=crop_padding or 0,
        flip=bool(flip),
        canvas=canvas,
        normalize=normalize,
        seed=seed,
    )
