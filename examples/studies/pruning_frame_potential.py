"""Study f: pruning by frame potential (seed 003, Heitmann, section 3.1, figure 2).

An MLP 300-100-10 (LeNet's dense layers) on the embedded digits data at 16 px (256 inputs), Adam,
batch size 64, 30 epochs, seed 0. Its first layer's 300 units are then removed one at a time
without retraining, by each criterion of ``layerscope.weights.pruning_curves``: the smallest norm
first (figure 2's ``max_mag_pruning``), the largest norm, the smallest frame-potential
contribution (``max_fp_pruning``), the largest contribution (``min_fp_pruning``), and at random
(5 seeds); test accuracy on the 360 test images after every 5th removal. The claim holds when
magnitude pruning keeps the most accuracy (area under the curve), frame-potential pruning beats
random and removing the largest contributions hurts most of the frame-potential criteria.

    layerscope study pruning_frame_potential              # under a minute on 2 CPU cores
    layerscope study pruning_frame_potential -- --quick   # every 10th removal, 3 random seeds
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from layerscope.datasets import load_dataset
from layerscope.lab.studies import StudyTimer, study_figure, study_main, write_results
from layerscope.models import create_model
from layerscope.weights import PAPER_NAMES, pruning_curves, pruning_summary

LAYER = "layers.1"
FULL = {"epochs": 30, "step": 5, "seeds": 5}
QUICK = {"epochs": 30, "step": 10, "seeds": 3}


def _tensors(split):
    loader = DataLoader(split, batch_size=len(split))
    return next(iter(loader))


def _train(epochs: int):
    """The trained MLP 300-100-10 and the test tensors."""
    torch.manual_seed(0)
    splits = load_dataset("digits", resolution=16, augment=False, seed=0)
    model = create_model("mlp", hidden=(300, 100), num_classes=10, in_channels=1, input_size=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    x, y = _tensors(splits.train)
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(x), generator=generator).split(64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return model.eval(), _tensors(splits.test)


def _figure(summary, path) -> None:
    with study_figure(path, figsize=(6, 3.8), dpi=100) as (_, ax):
        for criterion, curve in summary.groupby("criterion", observed=True):
            label = f"{criterion} ({PAPER_NAMES[criterion]})"
            ax.plot(curve.removed, curve["mean"], marker=".", markersize=3, label=label)
            if criterion == "random":
                ax.fill_between(curve.removed, curve["mean"] - curve.sd, curve["mean"] + curve.sd,
                                alpha=0.25)  # fmt: skip
        ax.set_xlabel(f"units removed from {LAYER} (of 300)")
        ax.set_ylabel("test accuracy")
        ax.set_title("MLP 300-100-10 on digits: pruning the first layer without retraining",
                     fontsize=9)  # fmt: skip
        ax.legend(fontsize=7)


def run(out: str = "logs/studies/pruning_frame_potential", quick: bool = False) -> dict:
    """Train, prune the first layer by every criterion, write results.json and a figure."""
    timer = StudyTimer()
    torch.set_num_threads(1)
    plan = QUICK if quick else FULL
    model, (x, y) = _train(plan["epochs"])

    def accuracy(candidate) -> float:
        return float((candidate(x).argmax(1) == y).float().mean())

    table = pruning_curves(model, LAYER, accuracy, seeds=range(plan["seeds"]), step=plan["step"])
    summary = pruning_summary(table)
    areas = summary.groupby("criterion", observed=True).mean_over_curve.first()
    ranking = list(areas.index)  # best first
    rows = [{"rank": i + 1, "criterion": c, "paper_name": PAPER_NAMES[c],
             "mean_accuracy_over_curve": float(areas[c]),
             **{f"accuracy_at_{n}": float(summary[(summary.criterion == c)
                                                  & (summary.removed == n)]["mean"].iloc[0])
                for n in (0, 100, 200, 280) if n in set(summary.removed)}}
            for i, c in enumerate(ranking)]  # fmt: skip
    _figure(summary, f"{out}/pruning_frame_potential.png")
    results = {"study": "pruning_frame_potential", "quick": quick, "plan": plan, "layer": LAYER,
               "baseline_accuracy": accuracy(model), "ranking": ranking, "rows": rows,
               "curves": summary.astype({"criterion": str}).to_dict("records"),
               **timer.resources()}  # fmt: skip
    write_results(out, results)
    return results


def _summary(results) -> str:
    return f"test accuracy before pruning {results['baseline_accuracy']:.3f}"


if __name__ == "__main__":
    study_main("pruning_frame_potential", run, __doc__, summary=_summary)
