"""Study g: low rank at the elbow (seed 003, Heitmann, section 3.3, figure 8).

An MLP 256-256-10 (the dense head of Conv-2) on the embedded digits data at 16 px (256 inputs),
batch size 64, over 3 seeds, trained two ways: Adam for 30 epochs (``adam``: the layer stays
close to its random initialisation, W - W_init is about 16 % of its norm) and AdamW with weight
decay 3 for 100 epochs (``adamw_decay``: the decay removes what the gradient does not keep, so
the layer is what training made of it); and the same MLP trained on the first 5 digits only
(5 classes), to test the paper's closing question whether the elbow follows the number of classes.
The first dense layer's best rank-k approximation W_k is chosen at the elbow (Kneedle) of its
Frobenius residuals for k = 1..255 (``layerscope.weights.low_rank_table``), substituted into a
copy of the model, and reported with ``100 ||W_k||_F / ||W||_F`` and the test accuracy drop; the
elbow of the training update W - W_init (the same rule on its residuals) and the rank-k
approximation at k = the number of classes (the paper's rank 10) are reported beside it.
The paper found k = 10 (= the classes of CIFAR-10) for every first dense layer, 62-100 % of the norm
kept and an accuracy drop of 0-5 points.

    layerscope study low_rank_elbow              # under a minute on 2 CPU cores
    layerscope study low_rank_elbow -- --quick   # one seed per class count, 10 / 60 epochs
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from layerscope.datasets import load_dataset
from layerscope.lab.studies import StudyTimer, study_figure, study_main, write_results
from layerscope.models import create_model
from layerscope.weights import kneedle, layer_matrix, low_rank_residuals, low_rank_table

LAYER = "layers.1"
#: Training name -> (epochs, AdamW's decoupled weight decay; 0 is plain Adam).
TRAININGS = {"adam": (30, 0.0), "adamw_decay": (100, 3.0)}
FULL = {"trainings": TRAININGS, "seeds": (0, 1, 2), "classes": (10, 5)}
QUICK = {"trainings": {"adam": (10, 0.0), "adamw_decay": (60, 3.0)}, "seeds": (0,),
         "classes": (10, 5)}  # fmt: skip


def _tensors(split, classes: int):
    x, y = next(iter(DataLoader(split, batch_size=len(split))))
    keep = y < classes
    return x[keep], y[keep]


def _train(epochs: int, decay: float, seed: int, classes: int):
    """An MLP 256-256-``classes`` trained on the digits 0..classes-1 (Adam, or AdamW with
    weight decay ``decay``), its first layer's matrix at initialisation, and the test tensors
    of those digits."""
    torch.manual_seed(seed)
    splits = load_dataset("digits", resolution=16, augment=False, seed=0)
    model = create_model("mlp", hidden=(256, 256), num_classes=classes, in_channels=1,
                         input_size=16)  # fmt: skip
    initial = layer_matrix(model, LAYER).clone()
    optimizer = (torch.optim.AdamW(model.parameters(), lr=0.001, weight_decay=decay) if decay
                 else torch.optim.Adam(model.parameters(), lr=0.001))  # fmt: skip
    x, y = _tensors(splits.train, classes)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(x), generator=generator).split(64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return model.eval(), initial, _tensors(splits.test, classes)


def _figure(curves, updates, path) -> None:
    """One panel per training: the layer's residual curves (seed 0), its update's dashed."""
    trainings = list(dict.fromkeys(key[0] for key in curves))
    with study_figure(path, 1, len(trainings), figsize=(6 * len(trainings), 3.6), dpi=100,
                      squeeze=False) as (_, axes):  # fmt: skip
        for ax, training in zip(axes[0], trainings, strict=True):
            for (name, classes, _, k), curve in curves.items():
                if name == training:
                    line = ax.plot(curve.k, curve.relative_residual, linewidth=1,
                                   label=f"{classes} classes: elbow k = {k}")  # fmt: skip
                    at = curve[curve.k == k].relative_residual.iloc[0]
                    ax.plot([k], [at], "o", color=line[0].get_color())
                    ax.axvline(classes, color=line[0].get_color(), linestyle=":", linewidth=1)
            for (name, classes, _, k), curve in updates.items():
                if name == training:
                    ax.plot(curve.k, curve.relative_residual, linewidth=1, linestyle="--",
                            color="black" if classes == 10 else "grey",
                            label=f"W - W_init, own norm ({classes} classes): elbow {k}")  # fmt: skip
            ax.set_xscale("log")
            ax.set_xlabel("rank k of the approximation (log); dotted: k = classes")
            ax.set_ylabel("||W - W_k||_F / ||W||_F")
            ax.set_title(f"{training}: first dense layer ({LAYER}, 256 x 256), seed 0",
                         fontsize=9)  # fmt: skip
            ax.legend(fontsize=6)


def _measure(training: str, epochs: int, decay: float, seed: int, classes: int):
    """One trained MLP's row: the elbow and its approximation, the update's elbow, rank k =
    classes; with the residual curves of the layer and of its update."""
    model, initial, (x, y) = _train(epochs, decay, seed, classes)

    def accuracy(candidate) -> float:
        return float((candidate(x).argmax(1) == y).float().mean())

    table, curve = low_rank_table(model, [LAYER], accuracy)
    (row,) = table.to_dict("records")
    (at_classes,) = low_rank_table(model, [LAYER], accuracy, k=classes)[0].to_dict("records")
    update = layer_matrix(model, LAYER) - initial  # what training added to the init
    residuals = low_rank_residuals(update)
    update_k = int(residuals.k.iloc[kneedle(residuals.k, residuals.residual)])
    share = float(torch.linalg.matrix_norm(update) / torch.linalg.matrix_norm(initial + update))
    measured = {"training": training, "classes": classes, "seed": seed, "k": row["k"],
                "rank": row["rank"], "norm_percent": row["norm_percent"],
                "accuracy": row["metric"], "accuracy_low_rank": row["metric_low_rank"],
                "accuracy_drop_points": 100.0 * (row["metric"] - row["metric_low_rank"]),
                "update_elbow_k": update_k, "update_norm_share": share,
                "norm_percent_at_k_classes": at_classes["norm_percent"],
                "accuracy_drop_at_k_classes": 100.0 * (at_classes["metric"]
                                                       - at_classes["metric_low_rank"])}  # fmt: skip
    return measured, curve, residuals


SUMMARY_KEYS = ("k", "norm_percent", "accuracy_drop_points", "update_elbow_k", "update_norm_share",
                "norm_percent_at_k_classes", "accuracy_drop_at_k_classes")  # fmt: skip


def run(out: str = "logs/studies/low_rank_elbow", quick: bool = False) -> dict:
    """Train, approximate the first dense layer at its elbow, write results.json and a figure."""
    timer = StudyTimer()
    torch.set_num_threads(1)
    plan = QUICK if quick else FULL
    rows, curves, updates = [], {}, {}
    for training, (epochs, decay) in plan["trainings"].items():
        for classes in plan["classes"]:
            for seed in plan["seeds"]:
                row, curve, residuals = _measure(training, epochs, decay, seed, classes)
                rows.append(row)
                if seed == plan["seeds"][0]:
                    curves[(training, classes, seed, row["k"])] = curve
                    updates[(training, classes, seed, row["update_elbow_k"])] = residuals
    summary = {training: {str(classes): {key: float(np.mean(
        [r[key] for r in rows if r["training"] == training and r["classes"] == classes]))
        for key in SUMMARY_KEYS} for classes in plan["classes"]}
        for training in plan["trainings"]}  # fmt: skip
    _figure(curves, updates, f"{out}/low_rank_elbow.png")
    results = {"study": "low_rank_elbow", "quick": quick, "plan": plan, "layer": LAYER,
               "rows": rows, "summary": summary, **timer.resources()}  # fmt: skip
    write_results(out, results)
    return results


def _summary(results) -> str:
    return "\n".join(
        f"{training}, {classes} classes: mean elbow k {values['k']:.1f}, norm kept "
        f"{values['norm_percent']:.1f} %, accuracy drop {values['accuracy_drop_points']:.2f} "
        f"points; at k = {classes}: {values['norm_percent_at_k_classes']:.1f} %, drop "
        f"{values['accuracy_drop_at_k_classes']:.2f} points"
        for training, per_classes in results["summary"].items()
        for classes, values in per_classes.items()
    )


if __name__ == "__main__":
    study_main("low_rank_elbow", run, __doc__, summary=_summary)
