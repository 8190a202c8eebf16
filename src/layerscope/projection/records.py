"""A sweep as tidy records (phase ``"projection"``) and back.

A record holds one value and no sweep coordinates, so the coordinates go into the statistic's
name, readable in SQL (``statistic LIKE 'relative_accuracy[pca,%'``):

- model level, per row of the sweep: ``<metric>[pca,delta=0.99]``,
  ``relative_<metric>[random,seed=0,delta=0.99]``;
- model level, per delta: ``total_dimensions[delta=0.99]``; once: ``unprojected_<metric>``,
  ``total_features``;
- per layer (``layer`` and ``layer_index`` set): ``k[delta=0.99]`` and ``features``.

Deltas are written with ``repr`` (the shortest decimal that reads back as the same float).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping

import pandas as pd

from layerscope.errors import ProjectionError
from layerscope.projection.sweeps import k_column, layer_columns, sweep_metric
from layerscope.store.records import Record

__all__ = ["PROJECTION_PHASE", "read_sweep", "sweep_records"]

#: Phase of projection records.
PROJECTION_PHASE = "projection"

_NAME = re.compile(
    r"^(?P<quantity>\w+)\[(?:(?P<baseline>pca|random),)?(?:seed=(?P<seed>-?\d+),)?"
    r"delta=(?P<delta>[0-9.eE+-]+)\]$"
)


def _coordinates(baseline: str | None, seed, delta: float) -> str:
    parts = [] if baseline is None else [baseline]
    if baseline == "random":
        parts.append(f"seed={int(seed)}")
    parts.append(f"delta={float(delta)!r}")
    return "[" + ",".join(parts) + "]"


def sweep_records(
    table: pd.DataFrame,
    *,
    run: str,
    epoch: int,
    layer_indices: Mapping[str, int],
    layer_features: Mapping[str, int],
    wall_time: float | None = None,
) -> list[Record]:
    """The records of a sweep table (see the module docstring for their names).

    Example:
        >>> table = pd.DataFrame({"delta": [0.9], "baseline": ["pca"], "seed": [None],
        ...     "accuracy": [0.5], "unprojected_accuracy": [0.8], "relative_accuracy": [0.625],
        ...     "total_dimensions": [3], "total_features": [8], "k[fc]": [3]})
        >>> rows = sweep_records(table, run="r", epoch=4, layer_indices={"fc": 0},
        ...                      layer_features={"fc": 8}, wall_time=0.0)
        >>> [r.statistic for r in rows][:3]
        ['accuracy[pca,delta=0.9]', 'relative_accuracy[pca,delta=0.9]', 'total_dimensions[delta=0.9]']
        >>> back = read_sweep(pd.DataFrame([r.as_dict() for r in rows]))
        >>> back[["delta", "relative_accuracy", "total_dimensions", "k[fc]"]].to_dict("records")
        [{'delta': 0.9, 'relative_accuracy': 0.625, 'total_dimensions': 3, 'k[fc]': 3}]
    """
    metric = sweep_metric(table)
    now = time.time() if wall_time is None else wall_time
    rows: list[Record] = []

    def add(statistic, value, layer=None):
        index = None if layer is None else layer_indices.get(layer)
        rows.append(Record(run, epoch, PROJECTION_PHASE, layer, index, statistic, float(value),
                           now))  # fmt: skip

    layers = [column[2:-1] for column in layer_columns(table)]
    for row in table.to_dict("records"):
        where = _coordinates(row["baseline"], row["seed"], row["delta"])
        add(f"{metric}{where}", row[metric])
        add(f"relative_{metric}{where}", row[f"relative_{metric}"])
    for delta, group in table.groupby("delta", sort=False):
        first = group.iloc[0]
        where = _coordinates(None, None, delta)
        add(f"total_dimensions{where}", first["total_dimensions"])
        for layer in layers:
            add(f"k{where}", first[k_column(layer)], layer)
    add(f"unprojected_{metric}", table[f"unprojected_{metric}"].iloc[0])
    add("total_features", table["total_features"].iloc[0])
    for layer in layers:
        add("features", layer_features[layer], layer)
    return rows


def read_sweep(df: pd.DataFrame, run: str | None = None) -> pd.DataFrame:
    """The sweep table stored as records (the shape :func:`~layerscope.projection.sweep`
    returns, deltas descending); empty when ``df`` holds no projection records.

    ``run`` picks one run of a store holding several (default: there must be one); the
    latest epoch with projection records is read.
    """
    rows = df[df.phase == PROJECTION_PHASE]
    if run is not None:
        rows = rows[rows.run == run]
    if rows.empty:
        return pd.DataFrame()
    if rows.run.nunique() > 1:
        raise ProjectionError(
            f"the store holds projections of runs {sorted(rows.run.unique())}; pass run=..."
        )
    rows = rows[rows.epoch == rows.epoch.max()]
    model = rows[rows.layer.isna()]
    scalars = dict(zip(model.statistic, model.value, strict=True))
    metric = _stored_metric(scalars)
    entries: dict[tuple, dict[str, float]] = {}
    totals: dict[float, float] = {}
    ks: dict[str, dict[float, float]] = {}
    for record in rows.itertuples():
        match = _NAME.match(record.statistic)
        if match is None:
            continue
        quantity, baseline, delta = match["quantity"], match["baseline"], float(match["delta"])
        if isinstance(record.layer, str):
            if quantity == "k":
                ks.setdefault(record.layer, {})[delta] = record.value
        elif baseline is not None:
            seed = None if match["seed"] is None else int(match["seed"])
            entries.setdefault((delta, baseline, seed), {})[quantity] = record.value
        elif quantity == "total_dimensions":
            totals[delta] = record.value
    order = rows[rows.layer.notna()].groupby("layer").layer_index.min().sort_values(kind="stable")
    table = pd.DataFrame([
        {"delta": delta, "baseline": baseline, "seed": seed, metric: values.get(metric),
         f"unprojected_{metric}": scalars[f"unprojected_{metric}"],
         f"relative_{metric}": values.get(f"relative_{metric}"),
         "total_dimensions": int(totals[delta]), "total_features": int(scalars["total_features"]),
         **{k_column(layer): int(ks[layer][delta]) for layer in order.index if layer in ks}}
        for (delta, baseline, seed), values in entries.items()
    ])  # fmt: skip
    table["seed"] = table["seed"].astype("Int64")
    table = table.sort_values(["delta", "baseline", "seed"], ascending=[False, True, True])
    return table.reset_index(drop=True)


def _stored_metric(scalars: Mapping[str, float]) -> str:
    names = [name for name in scalars if name.startswith("unprojected_")]
    if len(names) != 1 or "total_features" not in scalars:
        raise ProjectionError(
            "the projection records are incomplete (no unprojected_<metric> or total_features "
            "record); run `layerscope project RUN_DIR` again"
        )
    return names[0][len("unprojected_") :]
