"""Study g: low rank at the elbow (seed 003, Heitmann, section 3.3, figure 8).

An MLP 256-256-10 (the dense head of Conv-2) on the embedded digits data at 16 px (256 inputs),
Adam, batch size 64, 30 epochs, over 3 seeds; and the same MLP trained on the first 5 digits only
(5 classes), to test the paper's closing question whether the elbow follows the number of classes.
The first dense layer's best rank-k approximation W_k is chosen at the elbow (Kneedle) of its
Frobenius residuals for k = 1..255 (``layerscope.weights.low_rank_table``), substituted into a
copy of the model, and reported with ``100 ||W_k||_F / ||W||_F`` and the test accuracy drop; the
elbow of the training update W - W_init (the same rule on its residuals) and the rank-k
approximation at k = the number of classes (the paper's rank 10) are reported beside it.
The paper found k = 10 (= the classes of CIFAR-10) for every first dense layer, 62-100 % of the norm
kept and an accuracy drop of 0-5 points.

    layerscope study low_rank_elbow              # under a minute on 2 CPU cores
    layerscope study low_rank_elbow -- --quick   # one seed per class count, 10 epochs
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
FULL = {"epochs": 30, "seeds": (0, 1, 2), "classes": (10, 5)}
QUICK = {"epochs": 10, "seeds": (0,), "classes": (10, 5)}


def _tensors(split, classes: int):
    x, y = next(iter(DataLoader(split, batch_size=len(split))))
    keep = y < classes
    return x[keep], y[keep]


def _train(epochs: int, seed: int, classes: int):
    """An MLP 256-256-``classes`` trained on the digits 0..classes-1, its first layer's matrix
    at initialisation, and the test tensors of those digits."""
    torch.manual_seed(seed)
    splits = load_dataset("digits", resolution=16, augment=False, seed=0)
    model = create_model("mlp", hidden=(256, 256), num_classes=classes, in_channels=1,
                         input_size=16)  # fmt: skip
    initial = layer_matrix(model, LAYER).clone()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
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
    with study_figure(path, figsize=(9, 3.6), dpi=100) as (_, ax):
        for (classes, seed, k), curve in curves.items():
            line = ax.plot(curve.k, curve.relative_residual, linewidth=1,
                           label=f"{classes} classes, seed {seed}: elbow k = {k}")  # fmt: skip
            at = curve[curve.k == k].relative_residual.iloc[0]
            ax.plot([k], [at], "o", color=line[0].get_color())
        for (classes, seed, k), curve in updates.items():
            ax.plot(curve.k, curve.relative_residual, linewidth=1, linestyle="--", color="black",
                    label=f"update W - W_init, own norm ({classes} classes, seed {seed}): elbow {k}")  # fmt: skip
        for classes in sorted({key[0] for key in curves}):
            ax.axvline(classes, color="grey", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel("rank k of the approximation (log)")
        ax.set_ylabel("||W - W_k||_F / ||W||_F")
        ax.set_title(f"first dense layer ({LAYER}, 256 x 256) of an MLP on digits; dotted: k = classes",
                     fontsize=9)  # fmt: skip
        ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5))


def run(out: str = "logs/studies/low_rank_elbow", quick: bool = False) -> dict:
    """Train, approximate the first dense layer at its elbow, write results.json and a figure."""
    timer = StudyTimer()
    torch.set_num_threads(1)
    plan = QUICK if quick else FULL
    rows, curves, updates = [], {}, {}
    for classes in plan["classes"]:
        for seed in plan["seeds"]:
            model, initial, (x, y) = _train(plan["epochs"], seed, classes)

            def accuracy(candidate, x=x, y=y) -> float:
                return float((candidate(x).argmax(1) == y).float().mean())

            table, curve = low_rank_table(model, [LAYER], accuracy)
            (row,) = table.to_dict("records")
            (at_classes,) = low_rank_table(model, [LAYER], accuracy, k=classes)[0].to_dict(
                "records"
            )
            drop = 100.0 * (row["metric"] - row["metric_low_rank"])
            update = layer_matrix(model, LAYER) - initial  # what training added to the init
            residuals = low_rank_residuals(update)
            update_k = int(residuals.k.iloc[kneedle(residuals.k, residuals.residual)])
            share = float(
                torch.linalg.matrix_norm(update) / torch.linalg.matrix_norm(initial + update)
            )
            rows.append({"classes": classes, "seed": seed, "k": row["k"], "rank": row["rank"],
                         "norm_percent": row["norm_percent"], "accuracy": row["metric"],
                         "accuracy_low_rank": row["metric_low_rank"],
                         "accuracy_drop_points": drop, "update_elbow_k": update_k,
                         "update_norm_share": share,
                         "norm_percent_at_k_classes": at_classes["norm_percent"],
                         "accuracy_drop_at_k_classes": 100.0 * (at_classes["metric"]
                                                                - at_classes["metric_low_rank"])})  # fmt: skip
            curves[(classes, seed, row["k"])] = curve
            if seed == plan["seeds"][0]:
                updates[(classes, seed, update_k)] = residuals
    summary = {}
    for classes in plan["classes"]:
        mine = [r for r in rows if r["classes"] == classes]
        summary[str(classes)] = {key: float(np.mean([r[key] for r in mine]))
                                 for key in ("k", "norm_percent", "accuracy_drop_points", "update_elbow_k",
                                             "norm_percent_at_k_classes",
                                             "accuracy_drop_at_k_classes")}  # fmt: skip
    _figure(curves, updates, f"{out}/low_rank_elbow.png")
    results = {"study": "low_rank_elbow", "quick": quick, "plan": plan, "layer": LAYER,
               "rows": rows, "summary": summary, **timer.resources()}  # fmt: skip
    write_results(out, results)
    return results


def _summary(results) -> str:
    return "\n".join(
        f"{classes} classes: mean elbow k {values['k']:.1f}, norm kept "
        f"{values['norm_percent']:.1f} %, accuracy drop {values['accuracy_drop_points']:.2f} points"
        for classes, values in results["summary"].items()
    )


if __name__ == "__main__":
    study_main("low_rank_elbow", run, __doc__, summary=_summary)
