"""Image transforms written with torch ops, and the per-sample random numbers that drive them.

All transforms take and return one float image shaped (C, H, W). Pixel values are "raw" (in
[0, 1] for stored images) until :func:`normalize`, so a fill value of 0 is black.

Randomness never comes from a global generator: :class:`SampleRandom` derives a stream from a
key such as (seed, split, epoch, index). The same key gives the same crop, flip and canvas
position in any process, with any number of data-loader workers, after a resume, on any torch
version. That is what lets a killed run resume to the same weights as an uninterrupted one.

Canvas placement follows dissertation 9.2.1: the image keeps its size and its top-left corner is
drawn uniformly from [0, canvas - size] on both axes (inclusive, [0, 128] for 32 on 160), so it is
never cut off; the rest of the canvas is black.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F

from layerscope.errors import OptionError

__all__ = [
    "Pipeline",
    "SampleRandom",
    "convert_channels",
    "hflip",
    "normalize",
    "pad_crop",
    "place_on_canvas",
    "resize",
]

_MASK64 = (1 << 64) - 1
#: ITU-R BT.601 luma weights, the usual RGB -> grey conversion (PIL's "L" mode uses the same).
_LUMA = (0.299, 0.587, 0.114)


class SampleRandom:
    """A small deterministic random stream keyed by integers (splitmix64 after a blake2b hash).

    Example:
        >>> a, b = SampleRandom(0, 1, 2), SampleRandom(0, 1, 2)
        >>> [a.integers(10) for _ in range(5)] == [b.integers(10) for _ in range(5)]
        True
        >>> 0 <= SampleRandom(7).random() < 1
        True
    """

    __slots__ = ("_state",)

    def __init__(self, *keys: int) -> None:
        packed = struct.pack(f"<{len(keys)}Q", *(int(k) & _MASK64 for k in keys))
        self._state = int.from_bytes(hashlib.blake2b(packed, digest_size=8).digest(), "little")

    def next64(self) -> int:
        """The next 64-bit output of splitmix64 (Steele, Lea & Flood 2014)."""
        self._state = (self._state + 0x9E3779B97F4A7C15) & _MASK64
        z = self._state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        return z ^ (z >> 31)

    def integers(self, high: int) -> int:
        """Uniform integer in [0, high); the modulo bias is below high / 2**64."""
        if high < 1:
            raise OptionError(f"integers(high) needs high >= 1, got {high}")
        return self.next64() % high

    def random(self) -> float:
        """Uniform float in [0, 1) with 53 random bits."""
        return (self.next64() >> 11) * 2.0**-53


def resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of (C, H, W) to (C, size, size); antialiased when shrinking.

    Example:
        >>> resize(torch.ones(1, 8, 8), 32).shape
        torch.Size([1, 32, 32])
    """
    if image.shape[-2:] == (size, size):
        return image
    shrinking = image.shape[-1] > size or image.shape[-2] > size
    out = F.interpolate(
        image[None], size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking
    )
    return out[0]


def convert_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey to RGB by repetition, RGB to grey by BT.601 luma; anything else is an error.

    Example:
        >>> convert_channels(torch.ones(1, 2, 2), 3).shape
        torch.Size([3, 2, 2])
        >>> convert_channels(torch.ones(3, 2, 2), 1)[0, 0, 0].item()
        1.0
    """
    have = image.shape[-3]
    if have == channels:
        return image
    if have == 1 and channels == 3:
        return image.expand(*image.shape[:-3], 3, *image.shape[-2:]).clone()
    if have == 3 and channels == 1:
        weights = torch.tensor(_LUMA, dtype=image.dtype, device=image.device).view(3, 1, 1)
        return (image * weights).sum(dim=-3, keepdim=True)
    raise OptionError(
        f"cannot convert images with {have} channels to {channels} channels; only 1 <-> 3 is "
        f"supported (grey repeated, or RGB to luma). Leave channels=None to keep {have}."
    )


def pad_crop(
    image: torch.Tensor, padding: int, top: int, left: int, fill: float = 0.0
) -> torch.Tensor:
    """Pad (C, H, W) by ``padding`` on every side with ``fill``, then cut (H, W) at (top, left).

    ``top`` and ``left`` lie in [0, 2 * padding]; (padding, padding) returns the image unchanged.

    Example:
        >>> x = torch.arange(4.0).view(1, 2, 2)
        >>> pad_crop(x, 1, 0, 0).tolist()
        [[[0.0, 0.0], [0.0, 0.0]]]
        >>> pad_crop(x, 1, 2, 2).tolist()
        [[[3.0, 0.0], [0.0, 0.0]]]
    """
    if not (0 <= top <= 2 * padding and 0 <= left <= 2 * padding):
        raise OptionError(f"crop offset ({top}, {left}) outside [0, {2 * padding}]")
    height, width = image.shape[-2:]
    padded = F.pad(image, (padding, padding, padding, padding), value=fill)
    return padded[..., top : top + height, left : left + width]


def hflip(image: torch.Tensor) -> torch.Tensor:
    """Mirror (C, H, W) left to right.

    Example:
        >>> hflip(torch.tensor([[[1.0, 2.0]]])).tolist()
        [[[2.0, 1.0]]]
    """
    return image.flip(-1)


def place_on_canvas(
    image: torch.Tensor, canvas: int, top: int, left: int, fill: float = 0.0
) -> torch.Tensor:
    """Put (C, h, w) unchanged onto a (C, canvas, canvas) canvas of ``fill`` at (top, left).

    Dissertation 9.2.1: the image is never resized or cut; only its position varies.

    Example:
        >>> out = place_on_canvas(torch.ones(1, 2, 2), 4, 1, 2)
        >>> out.sum().item(), out[0, 1, 2].item(), out[0, 0, 0].item()
        (4.0, 1.0, 0.0)
    """
    channels, height, width = image.shape[-3:]
    if not (0 <= top <= canvas - height and 0 <= left <= canvas - width):
        raise OptionError(
            f"an image of {height}x{width} at ({top}, {left}) does not fit a {canvas}x{canvas} "
            f"canvas; top must lie in [0, {canvas - height}] and left in [0, {canvas - width}]"
        )
    out = image.new_full((channels, canvas, canvas), fill)
    out[:, top : top + height, left : left + width] = image
    return out


def normalize(image: torch.Tensor, mean, std) -> torch.Tensor:
    """(image - mean) / std per channel.

    Example:
        >>> normalize(torch.full((2, 1, 1), 3.0), (1.0, 2.0), (2.0, 0.5)).flatten().tolist()
        [1.0, 2.0]
    """
    mean_t = torch.as_tensor(mean, dtype=image.dtype, device=image.device).view(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=image.dtype, device=image.device).view(-1, 1, 1)
    return (image - mean_t) / std_t


@dataclass(frozen=True)
class Pipeline:
    """What happens to one image: channels -> resize -> crop -> flip -> canvas -> normalise.

    The canvas comes before normalisation so that its background is black (``fill``) in raw
    pixel values and, like the image, is normalised afterwards. Draws from the random stream
    happen in a fixed order (crop top, crop left, flip, canvas top, canvas left), only for the
    steps that are on.

    Example:
        >>> pipe = Pipeline(resolution=4, canvas=6, mean=(0.5,), std=(0.5,))
        >>> pipe(torch.ones(1, 2, 2), SampleRandom(0)).shape
        torch.Size([1, 6, 6])
    """

    #: Side of the square image after resizing; None keeps the stored size.
    resolution: int | None = None
    #: Channels after conversion (1 or 3); None keeps the stored channels.
    channels: int | None = None
    #: Random crop with this much padding on each side; 0 switches it off.
    crop_padding: int = 0
    #: Random horizontal flip with probability 1/2.
    flip: bool = False
    #: Side of the canvas the image is placed on at random (dissertation 9.2); None: no canvas.
    canvas: int | None = None
    #: Raw pixel value of padding and canvas background (0 is black).
    fill: float = 0.0
    #: Per-channel mean and standard deviation subtracted / divided at the end; None: skip.
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @cached_property
    def _mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        # Built once per pipeline (per worker process), not once per image.
        shape = (-1, 1, 1)
        return (
            torch.tensor(self.mean, dtype=torch.float32).view(shape),
            torch.tensor(self.std, dtype=torch.float32).view(shape),
        )

    @property
    def is_random(self) -> bool:
        """Whether the output depends on the random stream."""
        return self.crop_padding > 0 or self.flip or self.canvas is not None

    def __call__(self, image: torch.Tensor, rng: SampleRandom | None = None) -> torch.Tensor:
        if self.is_random and rng is None:
            raise OptionError("this pipeline has random steps; pass a SampleRandom")
        if self.channels is not None:
            image = convert_channels(image, self.channels)
        if self.resolution is not None:
            image = resize(image, self.resolution)
        if self.crop_padding > 0:
            span = 2 * self.crop_padding + 1
            top, left = rng.integers(span), rng.integers(span)
            image = pad_crop(image, self.crop_padding, top, left, self.fill)
        if self.flip and rng.integers(2):
            image = hflip(image)
        if self.canvas is not None:
            top = rng.integers(self.canvas - image.shape[-2] + 1)
            left = rng.integers(self.canvas - image.shape[-1] + 1)
            image = place_on_canvas(image, self.canvas, top, left, self.fill)
        if self.mean is not None:
            mean, std = self._mean_std
            image = (image - mean.to(image)) / std.to(image)
        return image
