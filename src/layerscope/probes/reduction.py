"""How a layer's output becomes one feature vector per sample for a probe (dissertation 8.3).

Feature maps are reduced as in the ablation of dissertation 8.3: adaptive average pooling to at
most s x s (``"avg4"``, the default, 8.3.3), nearest interpolation (``"nearest4"``), global
average pooling (``"gap"``), or kept whole (``"full"``). Sizes are maxima: a smaller map is never
enlarged (8.3.1). Then flattened channel-major (torch's ``flatten``). ``"pos8"`` keeps the
channel vector of every position of an at most 8 x 8 grid of positions (the centres of 8 x 8
equal cells; ``"pos"``: all positions), for position probes (9.3, figure 54). Dense outputs
(N, C) pass through unchanged; token sequences are treated as 1-D maps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from layerscope.errors import LatentsError
from layerscope.stats.samples import downsample
from layerscope.tracking.layers import channels_first

__all__ = ["DEFAULT_REDUCTION", "Reduction", "position_grid", "reduce_output"]

DEFAULT_REDUCTION = "avg4"
_REDUCTION = re.compile(r"(avg|nearest)(\d+)|gap|full|pos(\d*)")


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


def position_grid(size: int, limit: int | None) -> list[int]:
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
    x = channels_first(module, output)
    if x is None:
        raise LatentsError(f"{type(module).__name__} returned no tensor to reduce")
    x = x.detach()
    n, channels = x.shape[:2]
    spatial = tuple(x.shape[2:])
    if reduction.per_position:
        if not spatial:
            return x.reshape(n, 1, channels)
        for axis, size in enumerate(spatial):
            index = torch.tensor(position_grid(size, reduction.size), device=x.device)
            x = x.index_select(2 + axis, index)
        return x.flatten(2).transpose(1, 2)  # (N, positions, C), positions row-major
    if spatial and reduction.method == "gap":
        x = x.mean(tuple(range(2, x.dim())))
    elif spatial and reduction.method in ("avg", "nearest"):
        method = "adaptive_avg" if reduction.method == "avg" else "nearest"
        x = downsample(x, reduction.size, method)
    return x.reshape(n, -1)
