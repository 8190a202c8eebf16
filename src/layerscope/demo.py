"""The demo: a small CNN trained on the embedded digits data with tracking on.

Nothing is downloaded: scikit-learn's 1797 digits are upsampled to 32 x 32, normalised, and split
1437 / 360 (fixed, stratified). The run folder gets the store, figures and ``report.html``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from layerscope.datasets import load_dataset
from layerscope.errors import OptionError
from layerscope.lab.metrics import accuracy
from layerscope.lab.trainer import run_epoch
from layerscope.report.html import layer_table
from layerscope.report.live import ReportWriter
from layerscope.store.folder import read_layers
from layerscope.store.runs import load
from layerscope.tracking.tracker import Tracker

__all__ = ["demo_model", "run_demo"]


def demo_model(in_channels: int = 1, num_classes: int = 10, width: int = 16) -> nn.Sequential:
    """Four 3x3 conv layers with batch norm and pooling, then two linear layers.

    Example:
        >>> demo_model()(torch.zeros(2, 1, 32, 32)).shape
        torch.Size([2, 10])
    """

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(in_channels, width),
        *block(width, 2 * width),
        nn.MaxPool2d(2),
        *block(2 * width, 4 * width),
        nn.MaxPool2d(2),
        *block(4 * width, 4 * width),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4 * width, 4 * width),
        nn.ReLU(inplace=True),
        nn.Linear(4 * width, num_classes),
    )


def run_demo(
    out: str | Path = "runs/demo",
    *,
    epochs: int = 5,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Train the demo CNN on digits with a :class:`Tracker`; return the run folder.

    The folder is ``<out>/<date-time>``; it holds ``records.sqlite``, ``layers.json``,
    ``run.json``, ``figures/`` and ``report.html``.
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise OptionError(f"epochs must be an int >= 1, got {epochs!r}")
    torch.manual_seed(seed)
    data = load_dataset("digits", resolution=32, augment=False, seed=seed)
    train = DataLoader(data.train, batch_size=batch_size, shuffle=True,
                       generator=torch.Generator().manual_seed(seed))  # fmt: skip
    test = DataLoader(data.test, batch_size=256)
    model = demo_model(data.in_channels, data.num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    metrics = {"accuracy": accuracy}
    run_dir = Path(out) / time.strftime("%Y%m%d-%H%M%S")
    while run_dir.exists():  # two demos in the same second
        run_dir = run_dir.with_name(run_dir.name + "-1")
    metadata = {"dataset": "digits", "resolution": 32, "epochs": epochs,
                "batch_size": batch_size, "seed": seed, "optimizer": "adam, lr 2e-3"}  # fmt: skip
    tracker = Tracker(model, run_dir, run="demo", metadata=metadata, callbacks=[ReportWriter()])
    with tracker:
        for epoch in range(epochs):
            started = time.perf_counter()
            label = f"demo epoch {epoch + 1}/{epochs}"
            cpu = torch.device("cpu")
            train_ = run_epoch(model, train, cpu, metrics, optimizer, label, progress)
            test_ = run_epoch(model, test, cpu, metrics, None, label + " eval", progress)
            values = {f"train_{k}": v for k, v in train_.items()}
            values |= {f"test_{k}": v for k, v in test_.items()}
            tracker.end_epoch(**values, seconds=time.perf_counter() - started)
            if progress:
                print(f"epoch {epoch + 1}/{epochs}: train loss {train_['loss']:.3f}, "
                      f"test accuracy {test_['accuracy']:.3f}", file=sys.stderr)  # fmt: skip
    return run_dir


def summary(run_dir: str | Path) -> str:
    """A plain-text per-layer table of the latest epoch of a run."""
    table = layer_table(load(run_dir), read_layers(run_dir))
    columns = [c for c in table.columns if c.startswith(("saturation", "intrinsic"))]
    table = table[["type", "features", *columns]]
    formatters = {c: (lambda v: f"{v:.0f}") for c in columns if c.startswith("intrinsic")}
    with pd.option_context("display.width", 140, "display.max_columns", 20):
        return table.to_string(formatters=formatters, float_format=lambda v: f"{v:.3f}")
