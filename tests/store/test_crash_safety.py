"""A tracking process killed with SIGKILL mid-epoch leaves every earlier epoch intact."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from layerscope import load

SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from torch import nn
    from layerscope import Tracker
    from layerscope.report import ReportWriter

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    tracker = Tracker(model, sys.argv[1], sinks=["sqlite", "csv", "jsonl"],
                      callbacks=[ReportWriter()])
    for epoch in range(100):
        model.train()
        for _ in range(3):
            model(torch.randn(8, 1, 8, 8))
        model.eval()
        with torch.no_grad():
            for step in range(10**9 if epoch == 2 else 3):   # epoch 2 never ends
                model(torch.randn(8, 1, 8, 8))
                if epoch == 2 and step == 5:
                    print("mid-epoch", flush=True)
        tracker.end_epoch(loss=float(epoch))
    """
)


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")
def test_sigkill_mid_epoch_keeps_earlier_epochs(tmp_path):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(run_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        line = ""
        while "mid-epoch" not in line and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
        assert "mid-epoch" in line, "the tracking process never reached epoch 2"
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
        process.stdout.close()

    with sqlite3.connect(run_dir / "records.sqlite") as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    for store in ("records.sqlite", "records.csv", "records.jsonl"):
        df = load(run_dir / store)
        complete = df[df.epoch < 2]
        for epoch in (0, 1):
            rows = complete[complete.epoch == epoch]
            assert set(rows.phase) == {"train", "eval", "weights", "epoch"}, store
            assert rows.query("statistic == 'loss'").value.tolist() == [float(epoch)], store
            # both layers, both phases, every default statistic
            saturation = rows[rows.statistic == "saturation"]
            assert len(saturation) == 4, store
        # epoch 2: its finished train phase may be there, its eval phase in progress is not
        assert set(df[df.epoch == 2].phase) <= {"train"}, store

    leftovers = [p.name for p in run_dir.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    assert (run_dir / "report.html").is_file() and (run_dir / "layers.json").is_file()
