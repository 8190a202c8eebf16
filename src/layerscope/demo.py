"""The demo: a small CNN trained on the embedded digits data with tracking on.

Nothing is downloaded: scikit-learn's 1797 digits are upsampled to 32 x 32, normalised, and split
1437 / 360 (fixed, stratified). The demo is an ordinary configured run (model ``demo_cnn``, see
:func:`demo_config`) trained by the lab's pipeline, so its folder is a real run folder:
``config.json``, ``checkpoints/``, the store, figures and ``report.html``, and every command that
takes a run folder (``probe``, ``similarity``, ``resume``, ``report``, ``project``) works on it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from torch import nn

from layerscope.errors import OptionError, fix
from layerscope.lab.config import RunConfig
from layerscope.lab.experiment import run_one
from layerscope.models.small import demo_cnn
from layerscope.report.html import layer_table
from layerscope.store.folder import read_layers
from layerscope.store.runs import load

__all__ = ["demo_config", "demo_model", "next_commands", "run_demo"]


def demo_model(in_channels: int = 1, num_classes: int = 10, width: int = 16) -> nn.Sequential:
    """The demo's CNN (the registered model ``demo_cnn`` with ``channels=width``).

    Example:
        >>> import torch
        >>> demo_model()(torch.zeros(2, 1, 32, 32)).shape
        torch.Size([2, 10])
    """
    return demo_cnn(num_classes=num_classes, in_channels=in_channels, channels=width)


def demo_config(
    run_id: str, *, out: str | Path = "runs/demo", epochs: int = 5, batch_size: int = 64,
    seed: int = 0,
) -> RunConfig:  # fmt: skip
    """The demo's run as a config: ``demo_cnn`` on digits at 32 px, Adam with lr 2e-3, on the
    CPU, written to ``<out>/<run_id>``.

    Example:
        >>> cfg = demo_config("r1", epochs=2)
        >>> cfg.model, cfg.optimizer.name, cfg.optimizer.lr, cfg.epochs
        ('demo_cnn', 'adam', 0.002, 2)
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise OptionError(
            f"epochs must be an int >= 1, got {epochs!r} ({fix(python='epochs=3', cli='--epochs 3')})"
        )
    return RunConfig.from_dict({
        "model": "demo_cnn", "dataset": "digits", "resolution": 32, "epochs": epochs,
        "batch_size": batch_size, "seed": seed, "optimizer": {"name": "adam", "lr": 2e-3},
        "metrics": ["accuracy"], "device": "cpu", "logs_dir": str(out), "run_id": run_id,
    })  # fmt: skip


def run_demo(
    out: str | Path = "runs/demo",
    *,
    epochs: int = 5,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Train the demo CNN on digits through the lab's pipeline; return the run folder.

    The folder is ``<out>/<date-time>``; it holds ``config.json``, ``checkpoints/``,
    ``records.sqlite``, ``layers.json``, ``run.json``, ``done.json``, ``figures/`` and
    ``report.html``.
    """
    run_dir = Path(out) / time.strftime("%Y%m%d-%H%M%S")
    while run_dir.exists():  # two demos in the same second
        run_dir = run_dir.with_name(run_dir.name + "-1")
    cfg = demo_config(run_dir.name, out=out, epochs=epochs, batch_size=batch_size, seed=seed)
    run_one(cfg, folder=run_dir, progress=progress)
    return run_dir


def next_commands(run_dir: str | Path) -> str:
    """What to try next on a demo run folder, one command a line.

    Example:
        >>> print(next_commands("runs/demo/x").splitlines()[2])
          layerscope probe runs/demo/x
    """
    run = Path(run_dir).as_posix()
    parent = Path(run_dir).parent.as_posix()
    lines = [
        ("layerscope probe " + run, "logistic-regression probes per layer, added to the report"),
        (f"layerscope similarity {run} {run} --out similarity.png",
         "CKA of every layer against every layer (give another run as the second folder)"),
        (f"layerscope resume {run} --epochs 10", "train the same run on to epoch 10"),
        (f"layerscope project {run}", "project every layer onto its top eigendirections"),
        (f"layerscope report {parent}", "an index over every demo run (run the demo twice)"),
    ]  # fmt: skip
    return "next:\n" + "\n".join(f"  # {why}\n  {command}" for command, why in lines)


def summary(run_dir: str | Path) -> str:
    """A plain-text per-layer table of the latest epoch of a run."""
    table = layer_table(load(run_dir), read_layers(run_dir))
    columns = [c for c in table.columns if c.startswith(("saturation", "intrinsic"))]
    table = table[["type", "features", *columns]]
    formatters = {c: (lambda v: f"{v:.0f}") for c in columns if c.startswith("intrinsic")}
    with pd.option_context("display.width", 140, "display.max_columns", 20):
        return table.to_string(formatters=formatters, float_format=lambda v: f"{v:.3f}")
