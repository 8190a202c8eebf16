"""Study d: saturation converges early, no later than the loss (seed 000, section 4).

An MLP 256-k-10 (k = 16 and 64; digits at 16 px, 256 inputs) and a small CNN (VGG11 at width 1/8,
digits at 32 px), Adam, batch size 128, 15 epochs. For every layer: the epoch from which its
saturation (train phase, delta 0.99) stays within 0.03 of its final value, or within one
dimension of it for layers narrower than 34 (saturation moves in steps of 1/d); for the model: the
epoch from which the training loss stays within 10 % of its total drop of its final value. The
claim holds when every layer settles no later than the loss.

    layerscope study saturation_converges              # 1-2 minutes on 2 CPU cores
    layerscope study saturation_converges -- --quick   # the MLP with k = 16 only, 8 epochs
"""

from __future__ import annotations

import numpy as np
import torch

from layerscope.lab import load_config, run_experiment
from layerscope.lab.studies import StudyTimer, study_figure, study_main, write_results
from layerscope.store import load

#: Saturation band (absolute, widened to one dimension, 1/d, for narrow layers) and loss band
#: (fraction of the loss's total drop).
SATURATION_BAND = 0.03
LOSS_BAND = 0.10

MODELS = {
    "mlp-256-16": {"model": "mlp", "resolution": 16, "model_kwargs": {"hidden": {"value": [256, 16]}, "input_size": 16}},
    "mlp-256-64": {"model": "mlp", "resolution": 16, "model_kwargs": {"hidden": {"value": [256, 64]}, "input_size": 16}},
    "vgg11-1/8": {"model": "vgg11", "resolution": 32, "width": 0.125},
}  # fmt: skip
FULL = {"models": tuple(MODELS), "epochs": 15}
QUICK = {"models": ("mlp-256-16",), "epochs": 8}
#: The models train in worker processes, one per core, one torch thread each.
EXECUTOR = {"name": "processes"}


def settle_epoch(values: np.ndarray, band: float) -> int:
    """The first index from which every later value stays within ``band`` of the last one.

    Example:
        >>> settle_epoch(np.array([0.1, 0.3, 0.41, 0.39, 0.4]), 0.03)
        2
    """
    inside = np.abs(values - values[-1]) <= band
    outside = np.flatnonzero(~inside)
    return 0 if len(outside) == 0 else int(outside[-1] + 1)


def _runs(out: str, names, epochs: int) -> None:
    configs = []
    for name in names:
        config = {
            "dataset": "digits", "epochs": epochs, "batch_size": 128, "seed": 0,
            "metrics": ["accuracy"], "logs_dir": f"{out}/logs", "run_id": name.replace("/", "_"),
            "optimizer": {"name": "adam", "lr": 0.001}, "tracker": {"delta": 0.99},
            **MODELS[name],
        }  # fmt: skip
        configs += load_config(config)
    configs.sort(key=lambda cfg: cfg.model != "vgg11")  # the slowest first
    run_experiment(configs, progress=False, executor=EXECUTOR)


def _figure(curves, path) -> None:
    with study_figure(path, 1, len(curves), figsize=(4 * len(curves), 3.2), dpi=100,
                      squeeze=False) as (_, axes):  # fmt: skip
        for ax, (name, curve) in zip(axes[0], curves.items(), strict=True):
            _panel(ax, name, *curve)


def _panel(ax, name: str, epochs, layers: dict, loss, loss_epoch: int) -> None:
    for layer, values in layers.items():
        ax.plot(epochs, values, marker=".", label=layer)
    ax.set_ylim(0, 1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("saturation (train)")
    right = ax.twinx()
    right.plot(epochs, loss, color="black", linestyle="--", label="train loss")
    right.axvline(loss_epoch, color="black", alpha=0.3)
    right.set_ylabel("train loss")
    ax.set_title(f"{name}: loss flat from epoch {loss_epoch}", fontsize=9)
    ax.legend(fontsize=6, loc="center right")


def run(out: str = "logs/studies/saturation_converges", quick: bool = False) -> dict:
    """Train the models, find the settle epochs, write results.json and a figure."""
    timer = StudyTimer()
    torch.set_num_threads(1)
    plan = QUICK if quick else FULL
    _runs(out, plan["models"], plan["epochs"])
    df = load(f"{out}/logs")
    rows, curves = [], {}
    for name in plan["models"]:
        frame = df[df.run == name.replace("/", "_")]
        loss = frame[frame.statistic == "train_loss"].sort_values("epoch").value.to_numpy()
        drop = loss.max() - loss[-1]
        loss_epoch = settle_epoch(loss, LOSS_BAND * drop)
        saturation = frame[(frame.statistic == "saturation") & (frame.phase == "train")]
        table = saturation.pivot_table(index="epoch", columns="layer", values="value")
        order = saturation.groupby("layer").layer_index.first().sort_values().index
        layers = {layer: table[layer].to_numpy() for layer in order}
        dims = frame[(frame.statistic == "intrinsic_dimension") & (frame.phase == "train")]
        dims = dims.pivot_table(index="epoch", columns="layer", values="value")
        for layer, values in layers.items():
            # saturation = k / d: d from the last epoch's intrinsic dimension k
            features = dims[layer].iloc[-1] / values[-1] if values[-1] > 0 else np.inf
            epoch = settle_epoch(values, max(SATURATION_BAND, 1.0 / features + 1e-9))
            rows.append({"model": name, "layer": layer, "saturation_settles": epoch,
                         "loss_settles": loss_epoch, "final_saturation": float(values[-1]),
                         "no_later_than_loss": epoch <= loss_epoch})  # fmt: skip
        curves[name] = (table.index.to_numpy(), layers, loss, loss_epoch)
    results = {
        "study": "saturation_converges", "quick": quick, "plan": plan, "rows": rows,
        "saturation_band": SATURATION_BAND, "loss_band": LOSS_BAND,
        "fraction_no_later_than_loss": float(np.mean([r["no_later_than_loss"] for r in rows])),
        **timer.resources(),
    }  # fmt: skip
    _figure(curves, f"{out}/saturation_converges.png")
    write_results(out, results)
    return results


def _summary(results) -> str:
    return f"layers settling no later than the loss: {results['fraction_no_later_than_loss']:.0%}"


if __name__ == "__main__":
    study_main("saturation_converges", run, __doc__, summary=_summary,
               columns=["model", "layer", "saturation_settles", "loss_settles",
                        "final_saturation"])  # fmt: skip
