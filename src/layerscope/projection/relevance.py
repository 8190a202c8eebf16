"""The relevant eigenspace: the smallest delta whose projected networks are statistically
indistinguishable from the unprojected ones (SPEC C5; dissertation 7.4.1, tables 4 and 5).

Over n independently trained instances, per delta, a paired two-sided t-test on the differences
``d_i = unprojected_i - projected_i`` of the metric::

    t = mean(d) / (sd(d) / sqrt(n)),   sd with n - 1 degrees of freedom,   df = n - 1

with the p-value from Student's t distribution (scipy). The selected delta is the smallest one
such that it and every larger delta of the grid are not significant at ``alpha``. The table makes
other readings possible: the dissertation's table 5 (ResNet18, n = 15) picks 0.9998, while this
rule gives 0.9991 (0.9991 ... 0.9999 are all not significant, 0.998 is).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from layerscope.errors import OptionError, ProjectionError
from layerscope.projection.sweeps import sweep_metric

__all__ = ["RelevantEigenspace", "TTest", "paired_t_test", "relevant_eigenspace", "t_test"]


@dataclass(frozen=True)
class TTest:
    """A two-sided one-sample t-test of mean 0 (paired: on differences).

    Attributes:
        mean: mean of the differences.
        sd: their sample standard deviation (n - 1 degrees of freedom).
        n: number of pairs.
        t: ``mean / (sd / sqrt(n))``; NaN when every difference is 0.
        p: two-sided p-value with n - 1 degrees of freedom; NaN when t is.
    """

    mean: float
    sd: float
    n: int
    t: float
    p: float


def t_test(mean: float, sd: float, n: int) -> TTest:
    """The two-sided t-test of mean 0 from a summary: mean, sample sd and count.

    Identical differences (sd = 0) give t = +-inf and p = 0, or NaN when they are all 0.

    Example (dissertation table 5, delta = 0.99):
        >>> result = t_test(0.0812, 0.0782, 15)
        >>> round(result.t, 2), round(result.p, 3)
        (4.02, 0.001)
    """
    if not isinstance(n, int) or n < 2:
        raise ProjectionError(f"a t-test needs at least 2 instances, got n={n!r}")
    if not sd >= 0:
        raise OptionError(f"sd must be >= 0, got {sd!r}")
    if sd == 0:
        if mean == 0:
            return TTest(float(mean), 0.0, n, math.nan, math.nan)
        return TTest(float(mean), 0.0, n, math.copysign(math.inf, mean), 0.0)
    t = mean / (sd / math.sqrt(n))
    p = 2.0 * float(stats.t.sf(abs(t), df=n - 1))
    return TTest(float(mean), float(sd), n, float(t), p)


def paired_t_test(unprojected: Sequence[float], projected: Sequence[float]) -> TTest:
    """The paired two-sided t-test on ``unprojected[i] - projected[i]``.

    Example:
        >>> result = paired_t_test([0.9, 0.8, 0.85], [0.7, 0.7, 0.6])
        >>> round(result.mean, 4), round(result.t, 3)
        (0.1833, 4.158)
    """
    a = np.asarray(unprojected, dtype=np.float64)
    b = np.asarray(projected, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ProjectionError(
            f"paired values must be two 1-D sequences of one length, got {a.shape} and {b.shape}"
        )
    differences = a - b
    sd = float(np.std(differences, ddof=1)) if differences.size > 1 else math.nan
    return t_test(float(differences.mean()) if differences.size else math.nan, sd,
                  int(differences.size))  # fmt: skip


@dataclass(frozen=True)
class RelevantEigenspace:
    """The result of :func:`relevant_eigenspace`.

    Attributes:
        table: one row per delta, descending: ``delta``, ``n``, ``mean_difference``,
            ``sd_difference``, ``t``, ``p``, ``significant``, ``mean_total_dimensions``,
            ``sd_total_dimensions`` (over instances), ``total_features``.
        selected_delta: the smallest delta such that it and every larger one are not
            significant; ``None`` when already the largest delta is significant.
        alpha: the significance level.
        metric: the metric compared.
    """

    table: pd.DataFrame
    selected_delta: float | None
    alpha: float
    metric: str


def _instances(sweeps) -> dict[str, pd.DataFrame]:
    if isinstance(sweeps, pd.DataFrame):
        if "instance" not in sweeps.columns:
            raise ProjectionError(
                "one table of several instances needs an 'instance' column; or pass a list "
                "of sweep tables, one per trained instance"
            )
        return {str(k): group for k, group in sweeps.groupby("instance", sort=False)}
    if isinstance(sweeps, Mapping):
        return {str(k): v for k, v in sweeps.items()}
    return {str(i): table for i, table in enumerate(sweeps)}


def _per_instance(tables: dict[str, pd.DataFrame], baseline: str, metric: str) -> pd.DataFrame:
    """(instance, delta) rows: the metric (mean over random seeds), unprojected, dimensions."""
    frames = []
    for instance, table in tables.items():
        rows = table[table.baseline == baseline]
        if rows.empty:
            raise ProjectionError(f"instance {instance!r} has no rows of baseline {baseline!r}")
        grouped = rows.groupby("delta").agg(
            projected=(metric, "mean"), unprojected=(f"unprojected_{metric}", "first"),
            total_dimensions=("total_dimensions", "first"),
            total_features=("total_features", "first"),
        )  # fmt: skip
        frames.append(grouped.assign(instance=instance).reset_index())
    found = pd.concat(frames, ignore_index=True)
    grids = found.groupby("instance").delta.apply(lambda d: tuple(sorted(d)))
    if grids.nunique() != 1:
        raise ProjectionError(
            "the instances were swept over different deltas; sweep them over one grid "
            f"(deltas per instance: {grids.to_dict()})"
        )
    return found


def relevant_eigenspace(
    sweeps: Sequence[pd.DataFrame] | Mapping[str, pd.DataFrame] | pd.DataFrame,
    *,
    alpha: float = 0.05,
    baseline: str = "pca",
) -> RelevantEigenspace:
    """Per delta, the paired t-test of unprojected against projected networks over instances.

    Args:
        sweeps: sweep tables (:func:`~layerscope.projection.sweep`), one per independently
            trained instance (a list, a mapping name -> table, or one table with an
            ``instance`` column).
        alpha: significance level (default 0.05, as table 5; table 4 used 0.01).
        baseline: which projection to test (random-baseline seeds are averaged per instance).

    Example:
        >>> rows = lambda acc, drop: pd.DataFrame({"delta": [0.9, 0.99], "baseline": "pca",
        ...     "accuracy": [acc - drop, acc], "unprojected_accuracy": acc,
        ...     "relative_accuracy": 1.0, "total_dimensions": [5, 9], "total_features": 12})
        >>> found = relevant_eigenspace([rows(0.90, 0.20), rows(0.92, 0.25), rows(0.91, 0.22)])
        >>> found.selected_delta, found.table.significant.tolist()
        (0.99, [False, True])
    """
    if not 0.0 < alpha < 1.0:
        raise OptionError(f"alpha must be in (0, 1), got {alpha!r}")
    tables = _instances(sweeps)
    if len(tables) < 2:
        raise ProjectionError(
            f"the relevant eigenspace compares at least 2 trained instances, got {len(tables)}"
        )
    metric = sweep_metric(next(iter(tables.values())))
    found = _per_instance(tables, baseline, metric)
    rows = []
    for delta, group in found.groupby("delta"):
        test = paired_t_test(group.unprojected.to_numpy(), group.projected.to_numpy())
        dims = group.total_dimensions.to_numpy(dtype=np.float64)
        rows.append({
            "delta": float(delta), "n": test.n, "mean_difference": test.mean,
            "sd_difference": test.sd, "t": test.t, "p": test.p,
            "significant": bool(test.p < alpha) if not math.isnan(test.p) else False,
            "mean_total_dimensions": float(dims.mean()),
            "sd_total_dimensions": float(dims.std(ddof=1)),
            "total_features": float(group.total_features.mean()),
        })  # fmt: skip
    table = pd.DataFrame(rows).sort_values("delta", ascending=False, ignore_index=True)
    selected = None
    for row in table.itertuples():
        if row.significant:
            break
        selected = row.delta
    return RelevantEigenspace(table, selected, float(alpha), metric)
