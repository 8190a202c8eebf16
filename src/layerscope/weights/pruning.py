"""Greedy structured pruning of one layer's units without retraining (Heitmann, seed 003,
section 3.1, figure 2).

Units (rows of the layer's matrix) are removed one at a time, the criterion recomputed after
every removal; the test metric is measured after every removal (or every ``step``-th). The
criteria are named by what they remove; the figure's names map as

==========================  =======================  ==========================================
criterion                   figure 2                 removes
==========================  =======================  ==========================================
``smallest_norm``           ``max_mag_pruning``      the row of smallest Euclidean norm
``largest_norm``            ``min_mag_pruning``      the row of largest norm
``smallest_contribution``   ``max_fp_pruning``       the smallest frame-potential contribution
``largest_contribution``    ``min_fp_pruning``       the largest contribution (most redundant)
``random``                  random                   a uniformly random row (several seeds)
==========================  =======================  ==========================================

("max_mag" keeps the pruned matrix's Frobenius norm largest by removing the smallest rows;
"max_fp" keeps its frame potential largest, which by ``FP(without i) = FP - 2 c_i + 1`` means
removing the smallest contribution.) After removing unit r every contribution loses its term
with r, ``c_i -= <ŵ_i, ŵ_r>^2``, and ``FP -= 2 c_r - 1``: O(m) per step from the Gram matrix.
Removing a unit zeroes its row and bias on a copy of the model; a normalisation layer after it
still adds its shift, so the unit's output becomes a constant rather than 0.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from layerscope.errors import OptionError
from layerscope.stats.frame_potential import normalized_rows
from layerscope.weights.units import get_layer, layer_matrix, zero_units

__all__ = ["CRITERIA", "PAPER_NAMES", "pruning_curves", "pruning_order", "pruning_summary"]

CRITERIA = (
    "smallest_norm",
    "largest_norm",
    "smallest_contribution",
    "largest_contribution",
    "random",
)
#: The names of Heitmann's figure 2 for each criterion.
PAPER_NAMES = {
    "smallest_norm": "max_mag_pruning",
    "largest_norm": "min_mag_pruning",
    "smallest_contribution": "max_fp_pruning",
    "largest_contribution": "min_fp_pruning",
    "random": "random",
}


def _check_criterion(criterion: str) -> None:
    if criterion not in CRITERIA:
        raise OptionError(f"criterion={criterion!r} is not one of {CRITERIA}")


def pruning_order(
    matrix: torch.Tensor, criterion: str, *, seed: int = 0
) -> tuple[list[int], list[float]]:
    """The order in which ``criterion`` removes the rows of ``matrix`` (m, n), and the frame
    potential of the rows left after each removal (m values, the last 0). Ties go to the lower
    index.

    Example:
        >>> w = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
        >>> pruning_order(w, "smallest_norm")[0]
        [0, 2, 1]
        >>> order, fps = pruning_order(w, "largest_contribution")
        >>> order, fps
        ([0, 1, 2], [2.0, 1.0, 0.0])
    """
    _check_criterion(criterion)
    rows = normalized_rows(matrix)  # (m, n) float64
    m = rows.shape[0]
    self_terms = (rows.abs().sum(dim=1) > 0).to(torch.float64)
    if criterion in ("smallest_norm", "largest_norm"):
        norms = torch.linalg.vector_norm(matrix.detach().to(torch.float64), dim=1).numpy()
        keys = norms if criterion == "smallest_norm" else -norms
        order = [int(i) for i in np.argsort(keys, kind="stable")]
    elif criterion == "random":
        order = [int(i) for i in np.random.default_rng(seed).permutation(m)]
    else:
        order = None
    gram = (rows @ rows.T).square()  # (m, m): <ŵ_i, ŵ_j>^2
    contributions = gram.sum(dim=1)
    total = float(contributions.sum())
    alive = torch.ones(m, dtype=torch.bool)
    removed, potentials = [], []
    for step in range(m):
        if order is not None:
            r = order[step]
        else:
            r = _lowest(contributions if criterion == "smallest_contribution" else -contributions,
                        alive)  # fmt: skip
        total = total - 2.0 * float(contributions[r]) + float(self_terms[r])
        contributions -= gram[:, r]  # O(m): every unit loses its term with r
        alive[r] = False
        removed.append(r)
        potentials.append(max(total, 0.0) if step < m - 1 else 0.0)
    return removed, potentials


def _lowest(keys: torch.Tensor, alive: torch.Tensor) -> int:
    """The first alive index whose key is the smallest, up to rounding (1e-9 relative), so that
    equal contributions (e.g. the last two units) go to the lower index whatever the
    floating-point order of the updates."""
    keys = torch.where(alive, keys, torch.inf)
    best = float(keys.min())
    tied = keys <= best + 1e-9 * max(1.0, abs(best))
    return int(tied.nonzero()[0])


def _checkpoints(units: int, step: int, max_removed: int | None) -> list[int]:
    last = units - 1 if max_removed is None else max_removed
    if not 0 <= last <= units:
        raise OptionError(f"max_removed={max_removed} must be within 0..{units} (the units)")
    if step < 1:
        raise OptionError(f"step must be >= 1, got {step}")
    return sorted({*range(0, last + 1, step), last})


def pruning_curves(
    model: nn.Module,
    layer: str,
    evaluate: Callable[[nn.Module], float],
    *,
    criteria: Sequence[str] = CRITERIA,
    seeds: Iterable[int] = range(5),
    step: int = 1,
    max_removed: int | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Metric after every ``step``-th removal of units of ``layer``, for each criterion.

    ``evaluate(model) -> float`` measures a model (e.g. test accuracy; it is called on a copy in
    eval mode under ``torch.no_grad()``). ``model`` is not modified. Columns: ``criterion``,
    ``paper_name``, ``seed`` (random only, else -1), ``removed``, ``metric``,
    ``frame_potential`` (of the rows left), ``norm_kept`` (``||W_kept||_F / ||W||_F``).

    Example:
        >>> torch.manual_seed(0)
        <torch._C.Generator object at ...>
        >>> model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
        >>> x = torch.randn(32, 3)
        >>> target = model(x).argmax(1)
        >>> accuracy = lambda m: float((m(x).argmax(1) == target).float().mean())
        >>> table = pruning_curves(model, "0", accuracy, criteria=["largest_norm"])
        >>> table.removed.tolist(), float(table.metric.iloc[0])
        ([0, 1, 2, 3], 1.0)
    """
    for criterion in criteria:
        _check_criterion(criterion)
    matrix = layer_matrix(model, layer)
    units = matrix.shape[0]
    points = _checkpoints(units, step, max_removed)
    row_norms = matrix.square().sum(dim=1)
    total_norm = float(row_norms.sum())
    start = _frame_potential(matrix)
    runs = [(c, s) for c in criteria for s in (list(seeds) if c == "random" else [-1])]
    bar = tqdm(total=len(runs) * len(points), desc=f"pruning {layer}", leave=False,
               disable=not progress, file=sys.stderr)  # fmt: skip
    rows = []
    for criterion, seed in runs:
        order, potentials = pruning_order(matrix, criterion, seed=max(seed, 0))
        pruned = copy.deepcopy(model).eval()
        target = get_layer(pruned, layer)
        done, kept = 0, total_norm
        for count in points:
            zero_units(target, order[done:count])
            kept -= float(row_norms[order[done:count]].sum()) if count > done else 0.0
            done = count
            with torch.no_grad():
                metric = float(evaluate(pruned))
            fp = potentials[count - 1] if count else start
            rows.append((criterion, PAPER_NAMES[criterion], seed, count, metric, fp,
                         float(np.sqrt(max(kept, 0.0) / total_norm)) if total_norm else 0.0))  # fmt: skip
            bar.update(1)
    bar.close()
    return pd.DataFrame(rows, columns=["criterion", "paper_name", "seed", "removed", "metric",
                                       "frame_potential", "norm_kept"])  # fmt: skip


def _frame_potential(matrix: torch.Tensor) -> float:
    """Frame potential of all rows (the curve's first point)."""
    rows = normalized_rows(matrix)
    return float((rows @ rows.T).square().sum())


def pruning_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per criterion and number removed: mean and sd of the metric over seeds (random), and the
    area under each curve (mean metric over the points), the least-hurting criterion first.

    Example:
        >>> table = pd.DataFrame({"criterion": ["random"] * 4, "seed": [0, 0, 1, 1],
        ...                       "removed": [0, 1, 0, 1], "metric": [1.0, 0.5, 1.0, 0.7]})
        >>> pruning_summary(table)[["removed", "mean", "sd"]].round(3).values.tolist()
        [[0.0, 1.0, 0.0], [1.0, 0.6, 0.141]]
    """
    grouped = table.groupby(["criterion", "removed"]).metric
    summary = pd.DataFrame({"mean": grouped.mean(), "sd": grouped.std(ddof=1).fillna(0.0)})
    summary = summary.reset_index()
    area = summary.groupby("criterion")["mean"].mean().rename("mean_over_curve")
    summary = summary.merge(area, on="criterion")
    order = area.sort_values(ascending=False).index.tolist()
    summary["criterion"] = pd.Categorical(summary.criterion, categories=order, ordered=True)
    return summary.sort_values(["criterion", "removed"]).reset_index(drop=True)
