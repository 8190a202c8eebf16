"""The live report: rewritten at every epoch end from records kept in memory, never the store."""

from __future__ import annotations

import torch
from torch import nn

import layerscope.report.live as live
from layerscope import Tracker
from layerscope.report import ReportWriter


def train(run_dir, epochs, start_epoch=0):
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    with Tracker(model, run_dir, start_epoch=start_epoch, callbacks=[ReportWriter()]) as tracker:
        for epoch in range(epochs):
            model(torch.randn(16, 4))
            tracker.end_epoch(loss=1.0 / (start_epoch + epoch + 1))


def test_the_store_is_read_once_per_tracker_and_a_continued_run_shows_every_epoch(
    tmp_path, monkeypatch
):
    reads = []
    original = live.load
    monkeypatch.setattr(live, "load", lambda path: reads.append(path) or original(path))
    train(tmp_path / "run", epochs=3)
    assert len(reads) == 1  # the first epoch end; later ones add the new records only
    train(tmp_path / "run", epochs=2, start_epoch=3)
    assert len(reads) == 2
    page = (tmp_path / "run" / "report.html").read_text()
    assert "<b>epochs recorded</b> 5" in page


def test_report_records_keep_the_latest_value_and_the_histories():
    from layerscope.store import Record

    records = live.ReportRecords()
    records.add([Record("r", e, "train", "fc", 0, s, float(e), 0.0)
                 for e in range(4) for s in ("saturation", "trace")])  # fmt: skip
    records.add([Record("r", e, "epoch", None, None, "loss", float(e), 0.0) for e in range(4)])
    frame = records.frame()
    assert sorted(frame[frame.statistic == "saturation"].epoch) == [0, 1, 2, 3]
    assert frame[frame.statistic == "trace"].epoch.tolist() == [3]
    assert len(frame[frame.statistic == "loss"]) == 4
