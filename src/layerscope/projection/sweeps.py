"""Delta sweeps: a projected network evaluated over a grid of deltas, with the random baseline
(SPEC C5; dissertation 7.3, figure 43).

One fit and one eigendecomposition per layer serve the whole sweep: each delta only re-selects
every layer's k, and the random baseline takes the same k from the same eigenvalues but projects
onto random orthonormal directions (drawn once per layer and seed).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
from torch import nn
from tqdm.auto import tqdm

from layerscope.errors import OptionError, OptionTypeError
from layerscope.projection.evaluation import Metric, evaluate, metric_name
from layerscope.projection.grids import resolve_deltas
from layerscope.projection.layers import BASELINES
from layerscope.projection.network import ProjectedNetwork, Selector
from layerscope.stats.covariance import DEFAULT_MAX_FEATURES

__all__ = ["k_column", "layer_columns", "sweep", "sweep_metric"]


def k_column(layer: str) -> str:
    """The sweep column of a layer's kept directions.

    Example:
        >>> k_column("features.0")
        'k[features.0]'
    """
    return f"k[{layer}]"


def _check_baselines(baselines: str | Iterable[str]) -> tuple[str, ...]:
    chosen = (baselines,) if isinstance(baselines, str) else tuple(dict.fromkeys(baselines))
    unknown = [b for b in chosen if b not in BASELINES]
    if not chosen or unknown:
        raise OptionError(
            f"baselines must be a non-empty selection of {BASELINES}, got {baselines!r}"
        )
    return chosen


def _check_seeds(seeds: int | Iterable[int]) -> tuple[int, ...]:
    values = (seeds,) if isinstance(seeds, int) else tuple(dict.fromkeys(seeds))
    if not values or any(isinstance(s, bool) or not isinstance(s, int) for s in values):
        raise OptionTypeError(f"seeds must be one or more ints (e.g. range(3)), got {seeds!r}")
    return values


class _Clock:
    """Wall seconds of the sweep's parts: fitting, eigendecompositions, evaluation."""

    def __init__(self) -> None:
        self.seconds = {"fitting": 0.0, "eigendecompositions": 0.0, "evaluation": 0.0}

    def timed(self, part: str, function, *args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            self.seconds[part] += time.perf_counter() - started


def sweep(
    model: nn.Module,
    fit_loader: Iterable[Any],
    eval_loader: Iterable[Any],
    deltas: str | Iterable[float] = "7.3",
    baselines: str | Iterable[str] = ("pca", "random"),
    seeds: int | Iterable[int] = (0,),
    *,
    metric: str | Metric = "accuracy",
    centered: bool = True,
    include: Iterable[Selector] | None = None,
    exclude: Iterable[Selector] | None = None,
    max_features: int = DEFAULT_MAX_FEATURES,
    device=None,
    progress: bool = False,
) -> pd.DataFrame:
    """Evaluate the projected network of ``model`` at every delta, for every baseline.

    Args:
        model: the trained network (untouched: a copy is projected).
        fit_loader: data the covariances are fitted on (the training split without augmentation).
        eval_loader: data the metric is measured on (the test split).
        deltas: a grid name (``"7.3"``, ``"7.4"``, ``"7.4-fine"``, see
            :mod:`~layerscope.projection.grids`) or values in (0, 1].
        baselines: ``"pca"`` and/or ``"random"``.
        seeds: seeds of the random baseline (one row per seed; PCA rows have no seed).
        metric: ``"accuracy"`` (default), ``"mse"`` (reconstruction error, for autoencoders) or a
            callable ``(outputs, inputs, targets) -> (N,)`` per-sample values.
        centered, include, exclude, max_features: as for
            :func:`~layerscope.projection.project`.
        device: where inputs go (default: where the model is).
        progress: a progress bar over the deltas (stderr).

    Returns:
        One row per (delta, baseline, seed), deltas descending: ``delta``, ``baseline``,
        ``seed``, the metric (``accuracy``), ``unprojected_<metric>``, ``relative_<metric>``
        (the metric divided by the unprojected model's), ``total_dimensions`` (sum_l k_l),
        ``total_features`` (sum_l d_l) and ``k[<layer>]`` per layer in forward order.
        ``attrs["seconds"]`` holds the wall seconds of fitting, eigendecompositions and
        evaluation.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> data = [(torch.randn(32, 4), torch.randint(0, 3, (32,))) for _ in range(3)]
        >>> table = sweep(model, data, data, deltas=[0.5, 1.0], seeds=[0])
        >>> table[["delta", "baseline", "total_dimensions"]].to_dict("records")[:2]  # rank 4 + 3
        [{'delta': 1.0, 'baseline': 'pca', 'total_dimensions': 7}, {'delta': 1.0, 'baseline': 'random', 'total_dimensions': 7}]
        >>> float(table.relative_accuracy[0])
        1.0
    """
    values = sorted(resolve_deltas(deltas), reverse=True)
    chosen, seed_values = _check_baselines(baselines), _check_seeds(seeds)
    name = metric_name(metric)
    clock = _Clock()
    network = ProjectedNetwork(model, values[0], centered=centered, include=include,
                               exclude=exclude, max_features=max_features)  # fmt: skip
    clock.timed("fitting", network.accumulate, fit_loader, device=device)
    clock.timed("eigendecompositions", network.decompose)
    network.eval()
    unprojected = clock.timed("evaluation", evaluate, network.model, eval_loader, metric,
                              device=device)  # fmt: skip
    rows = []
    bar = tqdm(values, desc="projection deltas", disable=not progress, file=sys.stderr)
    for delta in bar:
        network.delta = delta
        ks = network.k_
        for baseline in chosen:
            for seed in seed_values if baseline == "random" else (None,):
                network.set_baseline(baseline, 0 if seed is None else seed)
                value = clock.timed("evaluation", evaluate, network, eval_loader, metric,
                                    device=device)  # fmt: skip
                rows.append(_row(delta, baseline, seed, name, value, unprojected, ks,
                                 network.total_features))  # fmt: skip
    table = pd.DataFrame(rows)
    table["seed"] = table["seed"].astype("Int64")
    table.attrs["seconds"] = dict(clock.seconds)
    return table


def _row(delta, baseline, seed, name, value, unprojected, ks, total_features) -> dict:
    relative = value / unprojected if unprojected != 0 else float("nan")
    return {
        "delta": delta, "baseline": baseline, "seed": seed, name: value,
        f"unprojected_{name}": unprojected, f"relative_{name}": relative,
        "total_dimensions": sum(ks.values()), "total_features": total_features,
        **{k_column(layer): k for layer, k in ks.items()},
    }  # fmt: skip


def sweep_metric(table: pd.DataFrame) -> str:
    """The metric a sweep table measured (the column beside ``relative_<metric>``).

    Example:
        >>> sweep_metric(pd.DataFrame(columns=["delta", "mse", "relative_mse"]))
        'mse'
    """
    found = [c[len("relative_") :] for c in table.columns if c.startswith("relative_")]
    if len(found) != 1 or found[0] not in table.columns:
        raise OptionError(
            f"not a sweep table: it needs one <metric> column with relative_<metric>; columns "
            f"are {list(table.columns)}"
        )
    return found[0]


def layer_columns(table: pd.DataFrame) -> Sequence[str]:
    """The ``k[<layer>]`` columns of a sweep table, in forward order."""
    return [c for c in table.columns if c.startswith("k[") and c.endswith("]")]
