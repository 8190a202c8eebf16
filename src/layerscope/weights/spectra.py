"""Spectra of weight matrices (Heitmann, seed 003, section 3.3, figures 6-7) and their heavy-tail
metrics, per layer of a model.

A layer's matrices, by ``conv=``:

- ``"reshape"`` (default, as 003): one (units, inputs) matrix, a convolution's weight reshaped to
  (out, in * kh * kw) (:func:`~layerscope.tracking.weights.unit_matrix`);
- ``"slices"`` (as weightwatcher): one (out, in) matrix per kernel position of a ``Conv2d``, all
  their eigenvalues pooled into one spectrum, each slice scaled by sqrt(1/2) as weightwatcher's
  default ``conv2d_norm`` does, so the metrics equal weightwatcher 0.7.7's ``analyze()`` on the
  same weights. ``Linear`` layers are the same either way.

Weights are read as float32 (weightwatcher casts to float32 first), then computed in float64.
The eigenvalues come from the symmetric product on the smaller side (``eigvalsh`` of W Wᵀ or
Wᵀ W), not from an SVD, which is what makes this faster than weightwatcher.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from layerscope.errors import OptionError
from layerscope.tracking.weights import unit_matrix
from layerscope.weights.heavy_tails import heavy_tail_metrics
from layerscope.weights.units import get_layer, unit_layers

__all__ = ["CONV_MODES", "LayerSpectrum", "layer_spectrum", "weight_spectra"]

CONV_MODES = ("reshape", "slices")
_SLICE_SCALE = 0.5  # weightwatcher's conv2d_norm: each slice times sqrt(1/2), eigenvalues / 2


@dataclass(frozen=True)
class LayerSpectrum:
    """A layer's pooled spectrum.

    Attributes:
        eigenvalues: (k,) ascending, of W Wᵀ on the smaller side of each matrix (k = the sum of
            their smaller sides).
        rows, columns: the shape of one matrix (m units, n inputs); ``ratio`` Q = n / m.
        variance: the MP scale ``s^2 = n * var(W)`` (entries of variance s^2 / n).
        matrices: how many matrices were pooled (kernel positions with ``conv="slices"``).
    """

    eigenvalues: np.ndarray
    rows: int
    columns: int
    variance: float
    matrices: int

    @property
    def ratio(self) -> float:
        return self.columns / self.rows if self.rows else float("nan")

    @property
    def larger_side(self) -> int:
        return max(self.rows, self.columns)


def _matrices(module: nn.Module, conv: str) -> tuple[list[torch.Tensor], float]:
    if conv not in CONV_MODES:
        raise OptionError(f"conv={conv!r} is not one of {CONV_MODES}")
    if conv == "slices" and isinstance(module, nn.Conv2d):
        weight = module.weight.detach().float().double()  # (out, in / groups, kh, kw)
        slices = weight.flatten(2).permute(2, 0, 1)  # (kh * kw, out, in / groups)
        return list(slices), _SLICE_SCALE
    return [unit_matrix(module).float().double()], 1.0


def _eigenvalues(matrix: torch.Tensor) -> torch.Tensor:
    """Eigenvalues of W Wᵀ from the smaller Gram matrix, ascending and clipped at 0."""
    m, n = matrix.shape
    if m == 0 or n == 0:
        return matrix.new_zeros(0)
    gram = matrix @ matrix.T if m <= n else matrix.T @ matrix
    return torch.linalg.eigvalsh(gram).clamp_min(0.0)


def layer_spectrum(module: nn.Module, conv: str = "reshape") -> LayerSpectrum:
    """The pooled eigenvalues of a convolution's or Linear layer's matrices.

    Example:
        >>> layer = nn.Linear(3, 2, bias=False)
        >>> with torch.no_grad():
        ...     _ = layer.weight.copy_(torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
        >>> layer_spectrum(layer).eigenvalues.tolist()
        [1.0, 4.0]
    """
    if unit_matrix(module) is None:
        raise OptionError(
            f"{type(module).__name__} has no weight matrix of units; spectra are for "
            f"convolutions and Linear layers"
        )
    matrices, scale = _matrices(module, conv)
    values = torch.cat([_eigenvalues(w) for w in matrices]) * scale
    rows, columns = matrices[0].shape
    entries = torch.cat([w.flatten() for w in matrices])
    variance = float(columns * entries.var(unbiased=False) * scale) if entries.numel() else 0.0
    return LayerSpectrum(np.sort(values.numpy()), rows, columns, variance, len(matrices))


def weight_spectra(
    model: nn.Module, layers: Sequence[str] | None = None, *, conv: str = "reshape"
) -> pd.DataFrame:
    """Heavy-tail metrics of every layer with a weight matrix (or of ``layers``), one row per
    layer: ``layer``, ``type``, ``rows``, ``columns``, ``Q``, ``mp_variance`` and the metrics of
    :func:`~layerscope.weights.heavy_tails.heavy_tail_metrics`.

    Example:
        >>> torch.manual_seed(0)
        <torch._C.Generator object at ...>
        >>> table = weight_spectra(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)))
        >>> table[["layer", "rows", "columns", "num_evals"]].values.tolist()
        [['0', 32, 64, 32], ['2', 10, 32, 10]]
    """
    names = list(layers) if layers is not None else unit_layers(model)
    rows = []
    for name in names:
        module = get_layer(model, name)
        spectrum = layer_spectrum(module, conv)
        metrics = heavy_tail_metrics(spectrum.eigenvalues, spectrum.larger_side)
        rows.append({"layer": name, "type": type(module).__name__, "rows": spectrum.rows,
                     "columns": spectrum.columns, "Q": spectrum.ratio,
                     "mp_variance": spectrum.variance, **metrics})  # fmt: skip
    return pd.DataFrame(rows)
