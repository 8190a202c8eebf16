"""Sweeps as records: names, a round trip through the SQLite store, replacement on rerun."""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from layerscope.projection import read_sweep, sweep, sweep_records
from layerscope.store import load
from layerscope.store.records import Record
from layerscope.store.sqlite import SQLiteSink


def table() -> pd.DataFrame:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
    data = [(torch.randn(40, 5), torch.randint(0, 3, (40,))) for _ in range(3)]
    return sweep(model, data, data, deltas=[0.5, 0.9, 0.99], seeds=[0, 1])


def test_statistic_names_carry_the_sweep_coordinates():
    rows = sweep_records(table(), run="r", epoch=2, layer_indices={"0": 0, "2": 1},
                         layer_features={"0": 7, "2": 3}, wall_time=1.0)  # fmt: skip
    names = {r.statistic for r in rows}
    assert {"accuracy[pca,delta=0.9]", "relative_accuracy[random,seed=1,delta=0.99]",
            "total_dimensions[delta=0.5]", "unprojected_accuracy", "total_features",
            "k[delta=0.9]", "features"} <= names  # fmt: skip
    assert {r.phase for r in rows} == {"projection"} and {r.epoch for r in rows} == {2}
    layer_rows = [r for r in rows if r.layer is not None]
    assert {(r.layer, r.layer_index) for r in layer_rows} == {("0", 0), ("2", 1)}
    assert len(rows) == 3 * 3 * 2 + 3 + 3 * 2 + 2 + 2


def test_round_trip_through_the_store_and_replace_on_rerun(tmp_path):
    original = table()
    path = tmp_path / "records.sqlite"
    other = Record("r", 2, "eval", "0", 0, "saturation", 0.5, 0.0)
    sink = SQLiteSink(path)
    sink.write([other])
    for _ in range(2):  # a rerun replaces the earlier sweep in one transaction
        rows = sweep_records(original, run="r", epoch=2, layer_indices={"0": 0, "2": 1},
                             layer_features={"0": 7, "2": 3})  # fmt: skip
        sink.replace(rows, run="r", phase="projection", layers=["0", "2"])
    sink.close()
    df = load(path)
    assert (df.phase == "projection").sum() == len(rows)
    assert (df.statistic == "saturation").sum() == 1
    back = read_sweep(df)
    pd.testing.assert_frame_equal(back, original.reset_index(drop=True), check_dtype=False)
    assert read_sweep(df[df.phase != "projection"]).empty
