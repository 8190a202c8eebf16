"""Every sink through one conformance test; load() across runs and formats."""

from __future__ import annotations

import math
import sqlite3

import pytest

from layerscope.store import (
    COLUMNS,
    CSVSink,
    JSONLinesSink,
    MemorySink,
    Record,
    SQLiteSink,
    load,
    make_sink,
)

RECORDS = [
    Record("a", 0, "train", "features.0", 0, "saturation", 0.25, 100.0),
    Record("a", 0, "train", "fc, with comma", 1, "saturation", 0.5, 100.5),
    Record("a", 0, "epoch", None, None, "loss", 1.25, 101.0),
    Record("a", 1, "train", "features.0", 0, "log_determinant", -math.inf, 102.0),
]

FILE_SINKS = {"sqlite": SQLiteSink, "csv": CSVSink, "jsonl": JSONLinesSink}


@pytest.mark.parametrize("kind", sorted(FILE_SINKS))
def test_file_sinks_round_trip_through_load(tmp_path, kind):
    sink = make_sink(kind, tmp_path)
    assert isinstance(sink, FILE_SINKS[kind])
    sink.write(RECORDS[:2])
    sink.flush()
    sink.write(RECORDS[2:])
    sink.close()
    sink.close()  # safe twice
    with pytest.raises(ValueError, match="closed"):
        sink.write(RECORDS)
    df = load(tmp_path)
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == 4
    assert df.layer.tolist() == ["features.0", "fc, with comma", None, "features.0"]
    assert df.layer_index.tolist()[:2] == [0, 1] and df.layer_index.isna().tolist()[2]
    assert df.value.tolist()[:3] == [0.25, 0.5, 1.25]
    assert df.value.iloc[3] == -math.inf
    assert df.epoch.dtype == "int64"


def test_memory_sink_and_unknown_sink_names(tmp_path):
    sink = make_sink("memory", None)
    assert isinstance(sink, MemorySink)
    with pytest.raises(ValueError, match="unknown sink 'parquet'"):
        make_sink("parquet", tmp_path)
    with pytest.raises(ValueError, match="run_dir"):
        make_sink("csv", None)
    with pytest.raises(TypeError, match="write/flush/close"):
        make_sink(object(), tmp_path)


def test_load_many_runs_and_a_list_of_paths(tmp_path):
    for run in ("r1", "r2"):
        sink = SQLiteSink(tmp_path / "grid" / run / "records.sqlite")
        sink.write([Record(run, 0, "train", "fc", 0, "saturation", 0.1, 0.0)])
        sink.close()
    assert sorted(load(tmp_path / "grid").run) == ["r1", "r2"]
    both = load([tmp_path / "grid" / "r1", tmp_path / "grid" / "r2" / "records.sqlite"])
    assert sorted(both.run) == ["r1", "r2"]
    with pytest.raises(FileNotFoundError, match="no run folder"):
        load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no layerscope store"):
        load(tmp_path / "empty")


def test_uncommitted_sqlite_records_are_not_visible(tmp_path):
    sink = SQLiteSink(tmp_path / "records.sqlite")
    sink.write(RECORDS[:1])
    sink.flush()
    sink.write(RECORDS[1:])  # not flushed: a crash now would lose only these
    assert len(load(tmp_path)) == 1
    sink.close()
    assert len(load(tmp_path)) == 4


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_partial_last_line_is_ignored_and_appending_continues(tmp_path, kind):
    sink = make_sink(kind, tmp_path)
    sink.write(RECORDS[:2])
    sink.close()
    path = tmp_path / f"records.{kind}"
    with open(path, "a", encoding="utf-8") as f:
        f.write("a,0,train,features.0,0,saturation,0.12")  # a crash mid-line
    assert len(load(tmp_path)) == 2
    sink = make_sink(kind, tmp_path)  # a resumed run appends after the broken line
    sink.write(RECORDS[2:3])
    sink.close()
    df = load(tmp_path)
    assert df.statistic.tolist() == ["saturation", "saturation", "loss"]


def test_not_a_store_is_a_clear_error(tmp_path):
    path = tmp_path / "records.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ValueError, match="not a layerscope SQLite store"):
        SQLiteSink(path)
    with pytest.raises(ValueError, match="not a readable layerscope store"):
        load(path)


def test_sqlite_store_is_plain_sql(tmp_path):
    sink = SQLiteSink(tmp_path / "records.sqlite")
    sink.write(RECORDS)
    sink.close()
    with sqlite3.connect(tmp_path / "records.sqlite") as connection:
        rows = connection.execute(
            "select layer, value from records where statistic = 'saturation' order by value"
        ).fetchall()
    assert rows == [("features.0", 0.25), ("fc, with comma", 0.5)]


def test_tensorboard_sink_uses_epoch_as_step_and_real_tags(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sink = make_sink("tensorboard", tmp_path)
    sink.write(RECORDS)
    sink.close()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = sorted(events.Tags()["scalars"])
    assert tags == ["loss/epoch", "saturation/train/fc, with comma", "saturation/train/features.0"]
    (scalar,) = events.Scalars("loss/epoch")
    assert (scalar.step, scalar.value, scalar.wall_time) == (0, 1.25, 101.0)


def test_a_new_sink_format_is_one_registration(tmp_path):
    """A format registered once is written by the Tracker and read back by load()."""
    import json

    import pandas as pd
    import torch
    from torch import nn

    from layerscope.store import SINKS, SinkFormat
    from layerscope.store.lines import JSONLinesSink
    from layerscope.tracking import Tracker

    def read(path):
        return pd.DataFrame([json.loads(line) for line in path.read_text().splitlines()],
                            columns=list(COLUMNS))  # fmt: skip

    SINKS.add("ndjson-test", SinkFormat("records.ndjson", JSONLinesSink, read, priority=-1))
    try:
        model = nn.Linear(2, 2)
        with Tracker(model, tmp_path, sinks=["ndjson-test"], weights=False) as tracker:
            model(torch.randn(8, 2))
            tracker.end_epoch(loss=0.5)
        assert (tmp_path / "records.ndjson").is_file()
        assert not (tmp_path / "records.sqlite").exists()
        assert load(tmp_path).query("statistic == 'loss'").value.tolist() == [0.5]
    finally:
        SINKS.remove("ndjson-test")


def test_a_write_only_sink_adds_to_the_store_instead_of_replacing_it(tmp_path):
    import torch
    from torch import nn

    from layerscope.store import SINKS, MemorySink, SinkFormat
    from layerscope.tracking import Tracker

    written = []

    def writer(path):
        sink = MemorySink()
        written.append(sink)
        return sink

    SINKS.add("write-only-test", SinkFormat(None, writer))  # like tensorboard: no reader
    try:
        model = nn.Linear(2, 2)
        with Tracker(model, tmp_path, sinks=["write-only-test"], weights=False) as tracker:
            model(torch.randn(8, 2))
            tracker.end_epoch(loss=0.25)
        assert (tmp_path / "records.sqlite").is_file()
        assert load(tmp_path).query("statistic == 'loss'").value.tolist() == [0.25]
        assert any(r.statistic == "loss" for r in written[0].records)
    finally:
        SINKS.remove("write-only-test")
