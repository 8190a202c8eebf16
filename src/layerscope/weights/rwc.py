"""The layer x epoch matrix of relative weight change, and the outlier rule before clustering.

Agrawal et al., "WeightScale" (seed 002):

- eq. 1 (the default, ``formula="l1"``): ``RWC_l = ||w_t - w_{t-1}||_1 / ||w_{t-1}||_1``, the
  value the Tracker records every epoch (phase ``"weights"``, statistic
  ``relative_weight_change``);
- the authors' code's variant (``formula="elementwise"``): the mean over the layer's weights of
  ``|w_t - w_{t-1}| / |w_{t-1}|``; an element that was exactly 0 and moved gives ``inf`` (0 when
  it stayed 0), which the outlier rule then replaces;
- eq. 2, outliers: within each layer's own trajectory, a value farther than 2 standard
  deviations from the trajectory's mean is replaced by that mean, in one pass, with mean and
  standard deviation computed over the trajectory's finite values, outliers included (as the
  authors' code); non-finite values (``inf``, a missing epoch) are replaced by the mean too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise

import numpy as np
import pandas as pd
import torch

from layerscope.errors import OptionError, toml_lines

__all__ = ["FORMULAS", "clip_outliers", "relative_weight_change", "rwc_matrix"]

FORMULAS = ("l1", "elementwise")
_STATISTIC = "relative_weight_change"


def relative_weight_change(
    previous: Sequence[torch.Tensor], current: Sequence[torch.Tensor], formula: str = "l1"
) -> float:
    """RWC of one layer between two snapshots of its weight tensors (biases left out by the caller).

    Example:
        >>> before, after = [torch.tensor([1.0, -2.0, 0.0])], [torch.tensor([1.5, -2.0, 0.0])]
        >>> relative_weight_change(before, after)                 # 0.5 / 3
        0.16666666666666666
        >>> relative_weight_change(before, after, "elementwise")  # (0.5 + 0 + 0) / 3
        0.16666666666666666
    """
    if formula not in FORMULAS:
        raise OptionError(f"formula={formula!r} is not one of {FORMULAS}")
    change = total = 0.0
    count = 0
    for p, c in zip(previous, current, strict=True):
        p, c = p.detach().double(), c.detach().double()
        delta = (c - p).abs()
        if formula == "l1":
            change += float(delta.sum())
            total += float(p.abs().sum())
        else:
            ratio = torch.where(delta == 0, 0.0, delta / p.abs())  # x / 0 = inf
            change += float(ratio.sum())
            count += p.numel()
    if formula == "elementwise":
        return change / count if count else float("nan")
    return change / total if total > 0 else float("nan")


def rwc_matrix(
    source: pd.DataFrame | Mapping[int, Mapping[str, Sequence[torch.Tensor]]],
    *,
    run: str | None = None,
    formula: str = "l1",
) -> pd.DataFrame:
    """The layer x epoch RWC matrix: rows are layers (forward order), columns real epoch numbers.

    ``source`` is either a records DataFrame (``layerscope.load(run_dir)``; eq. 1 as recorded)
    or snapshots ``{epoch: {layer: [weight tensors]}}`` from checkpoints, which any ``formula``
    can use; the first snapshot has no RWC and gives no column.

    Example:
        >>> df = pd.DataFrame({"run": "r", "epoch": [0, 1, 0, 1], "phase": "weights",
        ...     "layer": ["a", "a", "b", "b"], "layer_index": [0, 0, 1, 1],
        ...     "statistic": "relative_weight_change", "value": [0.5, 0.25, 0.1, 0.2]})
        >>> rwc_matrix(df).values.tolist()
        [[0.5, 0.25], [0.1, 0.2]]
    """
    if formula not in FORMULAS:
        raise OptionError(f"formula={formula!r} is not one of {FORMULAS}")
    if isinstance(source, pd.DataFrame):
        if formula != "l1":
            raise OptionError(
                f"formula={formula!r} needs the weights of every epoch: pass snapshots from "
                f"checkpoints instead of records, which hold eq. 1. A configured run keeps "
                f"every epoch's checkpoint with {toml_lines('checkpoints.keep', 'all')}"
            )
        return _from_records(source, run)
    epochs = sorted(source)
    columns = {}
    for before, after in pairwise(epochs):
        columns[after] = {layer: relative_weight_change(source[before][layer], weights, formula)
                          for layer, weights in source[after].items()}  # fmt: skip
    matrix = pd.DataFrame(columns)
    matrix.index.name, matrix.columns.name = "layer", "epoch"
    return matrix


def _from_records(df: pd.DataFrame, run: str | None) -> pd.DataFrame:
    rows = df[(df.phase == "weights") & (df.statistic == _STATISTIC)]
    if run is not None:
        rows = rows[rows.run == run]
    if rows.empty:
        raise OptionError(
            "the records hold no relative_weight_change (phase 'weights'): the run was tracked "
            "with weights=False, or for one epoch only"
        )
    if rows.run.nunique() > 1:
        raise OptionError(f"the records hold runs {sorted(rows.run.unique())}; pass run=...")
    order = rows.groupby("layer").layer_index.min().sort_values(na_position="last")
    matrix = rows.pivot_table(index="layer", columns="epoch", values="value", aggfunc="last")
    matrix = matrix.reindex(order.index)
    matrix.columns.name = "epoch"
    return matrix


def clip_outliers(matrix, n_sd: float = 2.0) -> np.ndarray:
    """Eq. 2 of WeightScale on each row of a (layers, epochs) matrix; a float64 copy.

    Example:
        >>> clipped = clip_outliers([[1, 1, 1, 1, 1, 9], [1, np.inf, 3, 1, 3, 1]])
        >>> clipped.round(3).tolist()   # 9 is > 2 sd from its row's mean 2.333; inf -> 1.8
        [[1.0, 1.0, 1.0, 1.0, 1.0, 2.333], [1.0, 1.8, 3.0, 1.0, 3.0, 1.0]]
    """
    values = np.array(matrix, dtype=np.float64)
    if values.ndim != 2:
        raise OptionError(f"the RWC matrix must be 2-D (layers, epochs), got shape {values.shape}")
    if not n_sd > 0:
        raise OptionError(f"n_sd must be > 0, got {n_sd}")
    for i, row in enumerate(values):
        finite = np.isfinite(row)
        if not finite.any():
            raise OptionError(
                f"row {i} of the RWC matrix has no finite value; drop that layer before clustering"
            )
        mean, sd = row[finite].mean(), row[finite].std()
        outlier = ~finite | (np.abs(row - mean) > n_sd * sd)
        row[outlier] = mean
    return values
