"""Tensor layouts to (samples, features) matrices: the one place these conversions live (SPEC C1).

A dense layer's output row is one sample. For a convolution every spatial position of every image
is one sample, ``(N, C, H, W) -> (N*H*W, C)`` (dissertation 6.1.3, after Raghu et al. 2017 and Garg
et al. 2020). For a sequence every token is one sample, ``(N, T, C) -> (N*T, C)``.

- :func:`to_samples`: a layer output in a named layout -> (samples, features);
- :func:`feature_map_matrix`: a channels-first (N, C, *positions) map -> a matrix by the
  similarity measures' ``spatial`` modes (positions as samples, average-pooled, or flattened);
- :func:`downsample`: shrink the positions of a feature map first (Delve's option);
- :func:`shifted_copy`: ``x - shift`` written into a buffer of the work dtype, the way that is
  fast on CPU and keeps an offset's digits (covariance updates and similarity centring).

Which axis of a *module's* output holds the features is decided in
:mod:`layerscope.tracking.layers` (``features_tensor``, ``channels_first``), which then calls
these. :class:`StreamingCovariance` takes (N, C, H, W) maps directly with ``feature_dim=1``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from layerscope.errors import OptionError

__all__ = [
    "DownsampleMethod",
    "Spatial",
    "channels_last_view",
    "downsample",
    "feature_map_matrix",
    "sequence_view",
    "shifted_copy",
    "to_samples",
]

DownsampleMethod = Literal["adaptive_avg", "nearest", "bilinear"]
#: How a feature map becomes a matrix: every position a sample, average over positions, or one
#: long vector per input.
Spatial = Literal["positions", "pool", "flatten"]
SPATIAL_MODES: tuple[str, ...] = ("positions", "pool", "flatten")
_INTERPOLATION_MODE = {1: "linear", 2: "bilinear", 3: "trilinear"}


def channels_last_view(x: torch.Tensor) -> torch.Tensor:
    """View (N, C, *spatial) as (N, *spatial, C); a (N, C) input is returned unchanged.

    Example:
        >>> channels_last_view(torch.zeros(2, 3, 4, 5)).shape
        torch.Size([2, 4, 5, 3])
    """
    if x.dim() < 2:
        raise OptionError(f"expected a (N, C, ...) tensor, got shape {tuple(x.shape)}")
    return x if x.dim() == 2 else x.movedim(1, -1)


def sequence_view(x: torch.Tensor, *, batch_first: bool = True) -> torch.Tensor:
    """View a sequence output as (N, T, C): tokens of every sequence are samples.

    ``batch_first=False`` is the (T, N, C) layout of ``nn.LSTM``/``nn.GRU``/``nn.RNN`` and
    ``nn.MultiheadAttention`` by default. A (T, C) unbatched sequence becomes (1, T, C).

    Example:
        >>> sequence_view(torch.zeros(7, 2, 5), batch_first=False).shape
        torch.Size([2, 7, 5])
    """
    if x.dim() == 2:
        return x.unsqueeze(0)
    if x.dim() != 3:
        raise OptionError(f"expected a (N, T, C) or (T, N, C) sequence, got shape {tuple(x.shape)}")
    return x if batch_first else x.transpose(0, 1)


def to_samples(x: torch.Tensor, *, layout: str = "channels_first") -> torch.Tensor:
    """Return a 2-D (samples, features) matrix from a layer output.

    Args:
        x: the layer output.
        layout: ``"channels_first"`` for (N, C, *spatial) (convolutions, and (N, C) dense
            outputs); ``"channels_last"`` for (..., C) (a Linear applied to (N, T, C) or to
            (N, H, W, C): all leading positions are samples); ``"sequence_first"`` for (T, N, C).

    Example:
        >>> x = torch.arange(2 * 3 * 2 * 2.).reshape(2, 3, 2, 2)
        >>> to_samples(x).shape
        torch.Size([8, 3])
        >>> to_samples(x)[1].tolist()   # image 0, position (0, 1), all 3 channels
        [1.0, 5.0, 9.0]
    """
    if layout == "channels_first":
        view = channels_last_view(x)
    elif layout == "channels_last":
        view = x
    elif layout == "sequence_first":
        view = sequence_view(x, batch_first=False)
    else:
        raise OptionError(
            f"layout must be 'channels_first', 'channels_last' or 'sequence_first', got {layout!r}"
        )
    return view.reshape(-1, x.shape[-1] if layout != "channels_first" else x.shape[1])


def feature_map_matrix(x: torch.Tensor, spatial: Spatial) -> torch.Tensor:
    """A channels-first (N, C, *positions) map as a matrix, by ``spatial``.

    ``"positions"``: every position of every input is a sample, (N * positions, C), rows
    input-major; ``"pool"``: the mean over positions, (N, C); ``"flatten"``: (N, C * positions),
    channel-major as torch's ``flatten``. A (N, C) input is returned unchanged.

    Example:
        >>> x = torch.arange(2 * 3 * 4.0).reshape(2, 3, 4)       # N=2, C=3, 4 positions
        >>> [tuple(feature_map_matrix(x, s).shape) for s in ("positions", "pool", "flatten")]
        [(8, 3), (2, 3), (2, 12)]
        >>> feature_map_matrix(x, "positions")[1].tolist()       # input 0, position 1
        [1.0, 5.0, 9.0]
    """
    if x.dim() == 2:
        return x
    if spatial == "positions":
        return to_samples(x)
    if spatial == "pool":
        return x.mean(dim=tuple(range(2, x.dim())))
    if spatial == "flatten":
        return x.reshape(x.shape[0], -1)
    raise OptionError(f"spatial must be 'positions', 'pool' or 'flatten', got {spatial!r}")


def downsample(
    x: torch.Tensor, size: int | tuple[int, ...], method: DownsampleMethod = "adaptive_avg"
) -> torch.Tensor:
    """Shrink the spatial axes of (N, C, *spatial) to at most ``size`` (never enlarges).

    Methods: ``"adaptive_avg"`` (adaptive average pooling), ``"nearest"`` and ``"bilinear"``
    (bilinear interpolation; linear or trilinear for 1 or 3 spatial axes). Axes already at
    or below ``size`` are kept; a (N, C) input is returned unchanged.

    Example:
        >>> downsample(torch.ones(1, 2, 8, 8), 4).shape
        torch.Size([1, 2, 4, 4])
        >>> downsample(torch.ones(1, 2, 3, 8), 4, "nearest").shape
        torch.Size([1, 2, 3, 4])
    """
    spatial = tuple(x.shape[2:])
    if not spatial:
        return x
    if isinstance(size, int):
        size = (size,) * len(spatial)
    if len(size) != len(spatial):
        raise OptionError(
            f"downsample size {size} has {len(size)} axes but the feature map {tuple(x.shape)} "
            f"has {len(spatial)} spatial axes"
        )
    if any(s < 1 for s in size):
        raise OptionError(f"downsample size must be >= 1 on every axis, got {size}")
    target = tuple(min(s, t) for s, t in zip(spatial, size, strict=True))
    if target == spatial:
        return x
    if method == "adaptive_avg":
        pool = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
        if len(spatial) not in pool:
            raise OptionError(f"adaptive_avg downsampling supports 1-3 spatial axes, got {spatial}")
        return pool[len(spatial)](x, target)
    if method == "nearest":
        return F.interpolate(x, size=target, mode="nearest")
    if method == "bilinear":
        if len(spatial) not in _INTERPOLATION_MODE:
            raise OptionError(f"bilinear downsampling supports 1-3 spatial axes, got {spatial}")
        return F.interpolate(
            x, size=target, mode=_INTERPOLATION_MODE[len(spatial)], align_corners=False
        )
    raise OptionError(
        f"downsample method must be 'adaptive_avg', 'nearest' or 'bilinear', got {method!r}"
    )


def shifted_copy(x: torch.Tensor, shift: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out = x - shift`` in ``out``'s dtype, returned.

    On CPU into a wider dtype (float32 activations, float64 work) a copy, exact, then an
    in-place subtraction: torch's CPU mixed-dtype subtraction runs a scalar casting loop, 15
    against 3.6 ms for 10000 x 512 on one thread. Into a narrower dtype the subtraction stays
    first, in x's precision, so that an offset's digits survive; on a GPU the one fused pass
    reads and writes less.

    Example:
        >>> x = torch.tensor([[1e6 + 1.0], [1e6 - 1.0]], dtype=torch.float64)
        >>> shifted_copy(x, x.mean(0), torch.empty(2, 1)).flatten().tolist()
        [1.0, -1.0]
    """
    widening = x.is_floating_point() and x.dtype.itemsize < out.dtype.itemsize
    if widening and x.device.type == "cpu":
        out.copy_(x)
        out.sub_(shift)
    else:
        torch.sub(x, shift, out=out)
    return out
