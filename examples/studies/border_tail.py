"""Study b: the border layer predicts the tail pattern (dissertation 9.3, figure 52).

VGG11, 13, 16 and 19 at width 1/4 on the embedded digits, each digit drawn at 12 px and placed at
a random position of a 32 px canvas (the canvas placement of 9.2: upsampled digits alone are so
easy that every probe saturates at once; on the canvas a layer must see far enough to find and
read the digit). 8 epochs of Adam, then logistic-regression probes on every layer (default
preset, 4x4 average pooling). Per network: the border layer b_min predicted for 32 px
(``border_rule="input"``, the rule of figure 52), the low-saturation tail found in the last
epoch's saturation of the convolutions (``find_tail``), and the layer after which the probes'
test accuracy stops improving (no later layer more than 0.02 above it).

    layerscope study border_tail              # 1-2 minutes on 2 CPU cores
    layerscope study border_tail -- --quick   # VGG11 only, 4 epochs
"""

from __future__ import annotations

import numpy as np
import torch

from layerscope.architecture import find_tail, receptive_field
from layerscope.lab import load_config, run_experiment
from layerscope.lab.studies import StudyTimer, study_figure, study_main, write_results
from layerscope.models import create_model
from layerscope.store import load

FULL = {"models": ("vgg11", "vgg13", "vgg16", "vgg19"), "epochs": 8}
QUICK = {"models": ("vgg11",), "epochs": 4}
#: The networks train in worker processes, one per core, one torch thread each.
EXECUTOR = {"name": "processes"}
#: Probe accuracy gain below which a later layer does not count as an improvement.
IMPROVEMENT = 0.02


def plateau_layer(accuracy: np.ndarray, improvement: float = IMPROVEMENT) -> int:
    """1-based label of the first layer no later layer beats by more than ``improvement``.

    Example:
        >>> plateau_layer(np.array([0.3, 0.6, 0.8, 0.81, 0.79]))
        3
    """
    for index, value in enumerate(accuracy):
        if np.all(accuracy[index + 1 :] <= value + improvement):
            return index + 1
    return len(accuracy)


def _config(out: str, names, epochs: int) -> dict:
    return {
        "model": list(names), "dataset": "digits", "resolution": 12, "width": 0.25, "seed": 0,
        "dataset_kwargs": {"canvas": 32}, "epochs": epochs, "batch_size": 64,
        "metrics": ["accuracy"], "logs_dir": f"{out}/logs", "run_id": "canvas",
        "optimizer": {"name": "adam", "lr": 0.001}, "probes": True,
    }  # fmt: skip


def _measure(run_dir, name: str) -> tuple[dict, dict]:
    df = load(run_dir)
    last = df[df.phase == "eval"].epoch.max()
    saturation = df[(df.statistic == "saturation") & (df.phase == "eval") & (df.epoch == last)]
    saturation = saturation.sort_values("layer_index")
    probes = df[(df.phase == "probe") & (df.statistic == "probe_test_acc")].sort_values(
        "layer_index"
    )
    rf = receptive_field(create_model(name, width=0.25, in_channels=1), 32)
    convs = [x.name for x in rf.layers_ if x.type == "Conv2d"]
    conv_saturation = saturation.set_index("layer").value.reindex(convs)
    tail = find_tail(dict(conv_saturation))
    accuracy = probes.set_index("layer").value.reindex(convs).to_numpy()
    border = rf.border_number("min")
    row = {
        "model": name, "convolutions": len(convs), "border": border,
        "border_output_rule": receptive_field(create_model(name, width=0.25, in_channels=1), 32,
                                              border_rule="output").border_number("min"),
        "tail_start": None if tail is None else convs.index(tail.layers[0]) + 1,
        "tail_drop": None if tail is None else tail.drop,
        "plateau": plateau_layer(accuracy),
        "test_accuracy": float(df[(df.statistic == "test_accuracy") & (df.epoch == last)].value.iloc[0]),
    }  # fmt: skip
    curves = {"saturation": conv_saturation.to_numpy(), "probe": accuracy, "border": border,
              "tail_start": row["tail_start"]}  # fmt: skip
    return row, curves


def _figure(curves: dict, path) -> None:
    with study_figure(path, 1, len(curves), figsize=(3.6 * len(curves), 3.2), dpi=90,
                      squeeze=False) as (_, axes):  # fmt: skip
        for ax, (name, curve) in zip(axes[0], curves.items(), strict=True):
            _panel(ax, name, curve)


def _panel(ax, name: str, curve: dict) -> None:
    layers = np.arange(1, len(curve["saturation"]) + 1)
    ax.plot(layers, curve["saturation"], marker="o", label="saturation (eval)")
    ax.plot(layers, curve["probe"], marker="s", color="black", label="probe test acc.")
    if curve["border"] is not None:
        ax.axvline(curve["border"], color="tab:red", linestyle="--", label="b_min")
    if curve["tail_start"] is not None:
        ax.axvspan(curve["tail_start"] - 0.5, layers[-1] + 0.5, color="grey", alpha=0.15,
                   label="tail")  # fmt: skip
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("convolution (1-based)")
    ax.set_title(f"{name} 1/4, digits on a 32 px canvas", fontsize=8)
    ax.legend(fontsize=6)


def run(out: str = "logs/studies/border_tail", quick: bool = False) -> dict:
    """Train and probe each network, compare border, tail and plateau; results.json, figure."""
    timer = StudyTimer()
    torch.set_num_threads(1)
    plan = QUICK if quick else FULL
    # the deepest network first, so that the two workers finish together
    names = sorted(plan["models"], key=lambda name: -int(name[3:]))
    configs = load_config(_config(out, names, plan["epochs"]))
    folders = {cfg.model: r.run_dir for cfg, r in
               zip(configs, run_experiment(configs, progress=False, executor=EXECUTOR), strict=True)}  # fmt: skip
    rows, curves = [], {}
    for name in plan["models"]:
        rows.append((measured := _measure(folders[name], name))[0])
        curves[name] = measured[1]
    _figure(curves, f"{out}/border_tail.png")
    results = {"study": "border_tail", "quick": quick, "plan": plan, "rows": rows,
               "curves": curves, "improvement": IMPROVEMENT,
               **timer.resources()}  # fmt: skip
    write_results(out, results)
    return results


if __name__ == "__main__":
    study_main("border_tail", run, __doc__,
               columns=["model", "convolutions", "border", "border_output_rule", "tail_start",
                        "tail_drop", "plateau", "test_accuracy"])  # fmt: skip
