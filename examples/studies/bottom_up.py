"""Study h: layers converge bottom-up (seed 004; Raghu et al. 2017, SVCCA over training).

VGG11 at width 1/8 on the embedded digits data (32 px), Adam, 10 epochs; the weights after every
epoch (and at initialisation) are kept in memory. Each layer at every epoch is then compared with
the same layer at the final epoch on the 360 test images, by linear CKA (flattened feature maps)
and by SVCCA (average-pooled, 99 % of the variance). The claim holds when lower layers settle
first: the epoch from which a layer's similarity to its final state stays at or above 0.9 grows
with depth (Spearman correlation between layer index and settle epoch > 0), and the mean
similarity over training falls with depth.

    layerscope study bottom_up              # under a minute on 2 CPU cores
    layerscope study bottom_up -- --quick   # 4 epochs, CKA only
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from scipy.stats import spearmanr
from torch.utils.data import DataLoader

from layerscope.datasets import load_dataset
from layerscope.lab.studies import StudyTimer, study_figure, study_main, write_results
from layerscope.models import create_model
from layerscope.similarity import similarity_over_epochs

THRESHOLD = 0.9
FULL = {"epochs": 10, "measures": ("cka", "svcca")}
QUICK = {"epochs": 4, "measures": ("cka",)}


def _train(epochs: int):
    """The model and its state dicts at initialisation and after every epoch."""
    torch.manual_seed(0)
    splits = load_dataset("digits", resolution=32, seed=0)
    model = create_model("vgg11", width=0.125, num_classes=10, in_channels=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    generator = torch.Generator().manual_seed(0)
    loader = DataLoader(splits.train, batch_size=64, shuffle=True, generator=generator)
    states = [copy.deepcopy(model.state_dict())]
    for epoch in range(epochs):
        splits.set_epoch(epoch)
        model.train()
        for x, y in loader:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        states.append(copy.deepcopy(model.state_dict()))
    return model, states, splits


def settle_epoch(values: np.ndarray, threshold: float = THRESHOLD) -> int:
    """The first index from which every later value is at least ``threshold``.

    Example:
        >>> settle_epoch(np.array([0.2, 0.95, 0.85, 0.93, 1.0]))
        3
    """
    below = np.flatnonzero(values < threshold)
    return 0 if len(below) == 0 else int(below[-1] + 1)


def _figure(curves, path) -> None:
    import matplotlib

    with study_figure(
        path, 1, len(curves), figsize=(4.5 * len(curves), 3.4), dpi=100, squeeze=False
    ) as (_, axes):
        cmap = matplotlib.colormaps.get_cmap("viridis")
        for ax, (measure, result) in zip(axes[0], curves.items(), strict=True):
            for j, layer in enumerate(result.layers):
                ax.plot(result.epochs, result.values[:, j], color=cmap(j / max(1, len(result.layers) - 1)),
                        marker=".", label=f"{j + 1} {layer}")  # fmt: skip
            ax.axhline(THRESHOLD, color="grey", linestyle=":")
            ax.set_xlabel("epoch (0 = initialisation)")
            ax.set_ylabel(f"{measure.upper()} to the final epoch")
            ax.set_title(f"VGG11 1/8 on digits: {measure.upper()} to the final state", fontsize=9)
            ax.legend(fontsize=5, ncol=2)


def run(out: str = "logs/studies/bottom_up", quick: bool = False) -> dict:
    """Train, compare every epoch with the last, write results.json and a figure."""
    timer = StudyTimer()
    torch.set_num_threads(1)
    plan = QUICK if quick else FULL
    model, states, splits = _train(plan["epochs"])
    test = DataLoader(splits.test, batch_size=120)
    epochs = list(range(len(states)))
    rows, curves, summary = [], {}, {}
    for measure in plan["measures"]:
        result = similarity_over_epochs(states, test, model=model, epochs=epochs, measure=measure)
        curves[measure] = result
        settles = [settle_epoch(result.values[:, j]) for j in range(len(result.layers))]
        means = result.values[:-1].mean(0)  # the final epoch's 1 left out
        for j, layer in enumerate(result.layers):
            rows.append({"measure": measure, "index": j + 1, "layer": layer,
                         "settle_epoch": settles[j], "mean_to_final": float(means[j]),
                         "after_epoch_1": float(result.values[1, j])})  # fmt: skip
        depth = np.arange(len(result.layers))
        summary[measure] = {
            "spearman_settle_vs_depth": float(spearmanr(depth, settles).statistic),
            "spearman_mean_vs_depth": float(spearmanr(depth, means).statistic),
            "layers": list(result.layers),
            "values": result.values,
        }
    _figure(curves, f"{out}/bottom_up.png")
    results = {"study": "bottom_up", "quick": quick, "plan": plan, "rows": rows,
               "summary": summary, "threshold": THRESHOLD,
               **timer.resources()}  # fmt: skip
    write_results(out, results)
    return results


def _summary(results) -> str:
    return "\n".join(
        f"{measure}: Spearman(depth, settle epoch) {values['spearman_settle_vs_depth']:.2f}, "
        f"Spearman(depth, mean similarity) {values['spearman_mean_vs_depth']:.2f}"
        for measure, values in results["summary"].items()
    )


if __name__ == "__main__":
    study_main("bottom_up", run, __doc__, summary=_summary,
               columns=["measure", "index", "layer", "settle_epoch", "mean_to_final",
                        "after_epoch_1"])  # fmt: skip
