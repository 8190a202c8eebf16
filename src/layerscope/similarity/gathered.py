"""Rows of every layer gathered for the CCA family, and a measure's matrix over them (SPEC C9).

The layer-by-layer helpers of :mod:`layerscope.similarity.layers` collect at most
``max_samples`` rows per layer (on the CPU, in the model's dtype), then compute every pair:
through the measure's ``pairwise`` when it has one (each layer centred, multiplied by itself and
whitened once), else by calling it pair by pair.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from layerscope.errors import DegenerateInputError, SimilarityInputError, UndefinedSimilarityWarning
from layerscope.similarity.measures import MEASURES

__all__ = ["Gathered", "pair_by_pair"]


class Gathered:
    """Rows of every layer on both sides, up to max_samples, for the CCA family."""

    def __init__(self, num_x: int, num_y: int, max_samples: int) -> None:
        self.xs: list[list[torch.Tensor]] = [[] for _ in range(num_x)]
        self.ys: list[list[torch.Tensor]] = [[] for _ in range(num_y)]
        self.max_samples = max_samples
        self.count = 0
        self.same = False  # ys are xs (a model against itself)

    @property
    def full(self) -> bool:
        return self.count >= self.max_samples

    def update(self, xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> None:
        take = self.max_samples - self.count
        self.same = ys is xs
        for store, items in [(self.xs, xs)] + ([] if self.same else [(self.ys, ys)]):
            for rows, item in zip(store, items, strict=True):
                rows.append(item[:take].to("cpu"))
        self.count += min(take, xs[0].shape[0])

    def compute(self, measure: str, rows, cols, options: Mapping[str, Any]) -> np.ndarray:
        entry = MEASURES.get(measure)
        xs = [torch.cat(parts) for parts in self.xs]
        ys = None if self.same else [torch.cat(parts) for parts in self.ys]
        if entry.pairwise is not None:
            found = entry.pairwise(xs, ys, **options)
        else:
            found = pair_by_pair(entry.function, xs, xs if ys is None else ys, options)
        values = np.full((len(xs), len(xs if ys is None else ys)), np.nan)
        undefined = []
        for i, j, value in found:
            if isinstance(value, DegenerateInputError):
                undefined.append((rows[i], cols[j]))
            elif isinstance(value, SimilarityInputError):
                raise type(value)(f"layers {rows[i]!r} vs {cols[j]!r}: {value}") from None
            else:
                values[i, j] = float(value)
        if undefined:
            warnings.warn(
                f"{measure} is undefined (NaN) for {undefined}: a layer had no variance",
                UndefinedSimilarityWarning,
                stacklevel=3,
            )
        return values


def pair_by_pair(function, xs, ys, options):
    """``(i, j, value or SimilarityInputError)`` of a measure without ``pairwise``."""
    for i, x in enumerate(xs):
        for j, y in enumerate(ys):
            try:
                yield i, j, function(x, y, **options)
            except SimilarityInputError as error:
                yield i, j, error
