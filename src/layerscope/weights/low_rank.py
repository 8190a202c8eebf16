"""Low-rank approximation of a layer's weights (Heitmann, seed 003, section 3.3, figure 8).

By Eckart-Young-Mirsky the best rank-k approximation ``W_k = sum_{i<=k} s_i u_i v_iᵀ`` of the
(units, inputs) matrix W leaves the residual

    ||W - W_k||_F = sqrt(sum_{i>k} s_i^2)        (Frobenius, the default)
    ||W - W_k||_2 = s_{k+1}                      (spectral norm, ``norm="spectral"``)

for k = 1..m-1 (m units; 0 once k reaches the rank). k is chosen at the elbow of that curve
by :func:`kneedle`; the layer's W is replaced by W_k in a copy of the model to measure the metric
(test accuracy) with it, beside ``100 * ||W_k||_F / ||W||_F``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from layerscope.errors import OptionError
from layerscope.weights.units import get_layer, layer_matrix, write_matrix

__all__ = ["kneedle", "low_rank_approximation", "low_rank_residuals", "low_rank_table"]

_NORMS = ("fro", "spectral")


def kneedle(x: Sequence[float], y: Sequence[float]) -> int:
    """Index of the elbow of a decreasing convex curve, Kneedle's offline rule (Satopää et al.,
    2011): with both axes scaled to [0, 1], the point farthest below the straight line through
    the first and last points. A curve with fewer than 3 points or no drop gives 0.

    Example:
        >>> kneedle([1, 2, 3, 4, 5, 6], [10.0, 4.0, 2.0, 1.5, 1.2, 1.0])
        2
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise OptionError(
            f"kneedle needs two 1-D sequences of one length, got {x.shape}, {y.shape}"
        )
    if len(x) < 3 or np.ptp(y) == 0 or np.ptp(x) == 0:
        return 0
    xn = (x - x.min()) / np.ptp(x)
    yn = (y - y.min()) / np.ptp(y)
    line = 1.0 - xn  # the chord from (0, 1) to (1, 0) of a decreasing curve
    return int(np.argmax(line - yn))


def _singular_values(matrix: torch.Tensor) -> np.ndarray:
    return torch.linalg.svdvals(matrix.detach().to(torch.float64)).numpy()


def low_rank_residuals(matrix: torch.Tensor, norm: str = "fro") -> pd.DataFrame:
    """Residual of the best rank-k approximation for k = 1..m-1 (columns ``k``, ``residual``,
    ``relative_residual`` = residual / ||W|| in the same norm).

    Example:
        >>> table = low_rank_residuals(torch.diag(torch.tensor([3.0, 2.0, 1.0])))
        >>> table.residual.round(4).tolist()          # sqrt(2^2 + 1^2), 1
        [2.2361, 1.0]
    """
    if norm not in _NORMS:
        raise OptionError(f"norm={norm!r} is not one of {_NORMS}")
    s = _singular_values(matrix)
    m = matrix.shape[0]
    ks = np.arange(1, m)
    if norm == "fro":
        tail = np.sqrt(np.concatenate([np.cumsum((s**2)[::-1])[::-1], [0.0]]))
        residual = tail[np.minimum(ks, len(s))]
        whole = tail[0] if len(tail) else 0.0
    else:
        padded = np.concatenate([s, [0.0]])
        residual = padded[np.minimum(ks, len(s))]
        whole = s[0] if len(s) else 0.0
    relative = residual / whole if whole > 0 else np.zeros_like(residual)
    return pd.DataFrame({"k": ks, "residual": residual, "relative_residual": relative})


def low_rank_approximation(matrix: torch.Tensor, k: int) -> torch.Tensor:
    """The best rank-``k`` approximation W_k of ``matrix`` (float64); ``k`` at or above the
    rank gives W itself (up to rounding).

    Example:
        >>> w = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
        >>> low_rank_approximation(w, 1).tolist()
        [[3.0, 0.0], [0.0, 0.0]]
    """
    top = min(matrix.shape)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= top:
        raise OptionError(
            f"rank k={k!r} must be an int within 1..{top} (the smaller side of the "
            f"{tuple(matrix.shape)} matrix)"
        )
    u, s, vh = torch.linalg.svd(matrix.detach().to(torch.float64), full_matrices=False)
    return (u[:, :k] * s[:k]) @ vh[:k]


def _check_substitutable(module: nn.Module, name: str) -> None:
    if getattr(module, "groups", 1) != 1:
        raise OptionError(
            f"layer {name!r} is a grouped convolution (groups={module.groups}): a low-rank W_k "
            f"is dense and cannot be written back into its groups; leave it out of layers=[...]"
        )


def low_rank_table(
    model: nn.Module,
    layers: Sequence[str],
    evaluate: Callable[[nn.Module], float] | None = None,
    *,
    k: int | str = "elbow",
    norm: str = "fro",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per layer: the rank k (the elbow, or given), the residual at k, ``100 ||W_k||_F / ||W||_F``
    and, with ``evaluate(model) -> float``, the metric before and after substituting W_k into a
    copy of the model (``model`` is untouched). Returns (table, residual curves).

    Example:
        >>> torch.manual_seed(0)
        <torch._C.Generator object at ...>
        >>> model = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 2))
        >>> table, curves = low_rank_table(model, ["0"], k=3)
        >>> table[["layer", "k", "units", "rank"]].values.tolist()
        [['0', 3, 6, 6]]
    """
    baseline = _measure(evaluate, model)
    rows, curves = [], []
    for name in layers:
        module = get_layer(model, name)
        _check_substitutable(module, name)
        matrix = layer_matrix(model, name)
        curve = low_rank_residuals(matrix, norm)
        curves.append(curve.assign(layer=name))
        chosen = _choose(curve, k, matrix, name)
        approximation = low_rank_approximation(matrix, chosen)
        whole = float(torch.linalg.matrix_norm(matrix))
        kept = float(torch.linalg.matrix_norm(approximation))
        copied = copy.deepcopy(model)
        write_matrix(get_layer(copied, name), approximation)
        rows.append({
            "layer": name, "units": matrix.shape[0], "inputs": matrix.shape[1],
            "rank": int(torch.linalg.matrix_rank(matrix)), "k": chosen,
            "residual": _residual_at(curve, chosen, matrix, approximation, norm),
            "norm_percent": 100.0 * kept / whole if whole > 0 else 0.0,
            "metric": baseline, "metric_low_rank": _measure(evaluate, copied),
        })  # fmt: skip
    columns = ["layer", "k", "residual", "relative_residual"]
    curve_table = pd.concat(curves, ignore_index=True)[columns] if curves else pd.DataFrame()
    return pd.DataFrame(rows), curve_table


def _choose(curve: pd.DataFrame, k, matrix: torch.Tensor, name: str) -> int:
    if k == "elbow":
        if curve.empty:
            return 1
        return int(curve.k.iloc[kneedle(curve.k, curve.residual)])
    top = min(matrix.shape)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= top:
        raise OptionError(
            f"k={k!r} for layer {name!r}: pass 'elbow' or an int within 1..{top} (its "
            f"{tuple(matrix.shape)} matrix has rank at most {top})"
        )
    return int(k)


def _residual_at(curve, k, matrix, approximation, norm) -> float:
    hit = curve[curve.k == k]
    if len(hit):
        return float(hit.residual.iloc[0])
    order = "fro" if norm == "fro" else 2
    return float(torch.linalg.matrix_norm(matrix - approximation, ord=order))


def _measure(evaluate, model: nn.Module) -> float:
    if evaluate is None:
        return float("nan")
    probe = copy.deepcopy(model).eval()
    with torch.no_grad():
        return float(evaluate(probe))
