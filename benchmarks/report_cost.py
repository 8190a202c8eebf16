"""What an epoch end costs with a live report, early and late in a long run.

The live report (layerscope.report.ReportWriter) keeps what the report shows in memory and adds
each epoch's records; rebuilding the report from the store (what the Tracker did before it stopped
writing reports) reads every record of every epoch. This script trains nothing: it feeds a small
model random batches for EPOCHS epochs and times every ``end_epoch`` with the live report, then
times a report rebuilt from the store at the same epochs.

    python benchmarks/report_cost.py [--epochs 200]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from layerscope.report import ReportWriter, write_report
from layerscope.tracking import Tracker


def model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 16),
        nn.ReLU(),
        nn.Linear(16, 4),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=200)
    args = parser.parse_args()
    torch.manual_seed(0)
    net, x = model(), torch.randn(32, 1, 8, 8)
    folder = Path(tempfile.mkdtemp()) / "run"
    live, rebuilt = [], {}
    checkpoints = {2, args.epochs // 2, args.epochs}
    with Tracker(net, folder, callbacks=[ReportWriter()]) as tracker:
        for epoch in range(1, args.epochs + 1):
            net.train()
            net(x)
            net.eval()
            with torch.no_grad():
                net(x)
            started = time.perf_counter()
            tracker.end_epoch(loss=1.0 / epoch)
            live.append(time.perf_counter() - started)
            if epoch in checkpoints:
                started = time.perf_counter()
                write_report(folder)  # from the store: every record read again
                rebuilt[epoch] = time.perf_counter() - started
    early, late = live[1:6], live[-5:]
    spread = lambda xs: f"{min(xs) * 1000:.0f}-{max(xs) * 1000:.0f}"  # noqa: E731
    print(
        f"epoch end with the live report: epochs 2-6 median {statistics.median(early) * 1000:.0f}"
        f" ms (range {spread(early)}); epochs {args.epochs - 4}-{args.epochs} median "
        f"{statistics.median(late) * 1000:.0f} ms (range {spread(late)}); ratio "
        f"{statistics.median(late) / statistics.median(early):.2f}"
    )
    for epoch, seconds in rebuilt.items():
        print(f"report rebuilt from the store at epoch {epoch}: {seconds * 1000:.0f} ms")


if __name__ == "__main__":
    main()
