"""Training curves of a run: loss and the other metrics per epoch (train and test), and the
learning rate, from the per-epoch records (phase ``"epoch"``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["training_curves"]


def _series(rows: pd.DataFrame, statistic: str) -> pd.Series:
    return rows[rows.statistic == statistic].groupby("epoch").value.last().sort_index()


def training_curves(df: pd.DataFrame) -> Figure | None:
    """Loss, each metric and the learning rate per epoch (train dashed, test solid); epochs
    whose loss is missing or not finite (a diverged run) are marked with a red cross at the
    top of the loss panel. None when no per-epoch metric was recorded.

    Example:
        >>> df = pd.DataFrame({"epoch": [0, 1, 0, 1], "phase": "epoch", "layer": None,
        ...     "statistic": ["train_loss", "train_loss", "test_loss", "test_loss"],
        ...     "value": [1.0, 0.5, 1.1, 0.7]})
        >>> [a.get_title() for a in training_curves(df).axes]
        ['loss']
    """
    rows = df[(df.phase == "epoch") & df.layer.isna()]
    names = [s[len("train_") :] for s in rows.statistic.unique() if s.startswith("train_")]
    names += [s[len("test_"):] for s in rows.statistic.unique()
              if s.startswith("test_") and s[len("test_"):] not in names]  # fmt: skip
    names = sorted(names, key=lambda n: (n != "loss", n))
    has_lr = (rows.statistic == "lr").any()
    panels = names + (["lr"] if has_lr else [])
    if not panels:
        return None
    figure = Figure(figsize=(min(4.0 * len(panels), 12), 3.2), layout="constrained")
    grid = figure.subplots(1, len(panels), squeeze=False)[0]
    epochs = sorted(rows.epoch.unique())
    for axes, name in zip(grid, panels, strict=True):
        if name == "lr":
            lr = _series(rows, "lr")
            axes.plot(lr.index + 1, lr.to_numpy(), marker="o", color="tab:purple")
            axes.set_yscale("log")
            axes.set_title("learning rate")
        else:
            for split, style in (("train", "--"), ("test", "-")):
                values = _series(rows, f"{split}_{name}")
                if len(values):
                    axes.plot(values.index + 1, values.to_numpy(), style, marker="o",
                              markersize=3, label=split)  # fmt: skip
            if name == "loss":
                _mark_nonfinite(axes, rows, epochs)
            axes.set_title(name)
            axes.legend(fontsize=8)
        axes.set_xlabel("epoch")
        axes.grid(alpha=0.3)
    return figure


def _mark_nonfinite(axes, rows: pd.DataFrame, epochs) -> None:
    losses = rows[rows.statistic.isin(["train_loss", "test_loss"])]
    bad = sorted({int(e) for e, v in zip(losses.epoch, losses.value, strict=True)
                  if v is None or not math.isfinite(v)})  # fmt: skip
    if not bad:
        return
    top = axes.get_ylim()[1] if np.isfinite(axes.get_ylim()[1]) else 1.0
    axes.plot([e + 1 for e in bad], [top] * len(bad), "x", color="tab:red", markersize=9,
              label="NaN / inf loss")  # fmt: skip
    if len(epochs) == len(bad):
        axes.set_ylim(0, 1)
