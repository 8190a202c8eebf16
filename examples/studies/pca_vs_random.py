"""Study c: PCA projections keep accuracy, random ones of the same size do not (dissertation 7.3,
figure 43), and the relevant eigenspace over five instances (7.4, table 5's columns).

VGG11 at width 1/4 on the embedded digits data (32 px), five seeds, 5 epochs with Adam. Each run
is projected at the 19 deltas of grid 7.3 onto its layers' top eigendirections (PCA) and onto as
many random orthonormal directions (3 seeds), fitted on the training split and evaluated on the
test split (``layerscope project``). The claim holds when PCA's relative accuracy is above the
random baseline's at every delta >= 0.99; the relevant eigenspace is the paired t-test over the
five instances per delta.

    layerscope study pca_vs_random              # 1-2 minutes on 2 CPU cores
    layerscope study pca_vs_random -- --quick   # two seeds, 3 epochs, deltas 0.9 and 0.99
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from functools import partial
from multiprocessing import get_context

import numpy as np
import pandas as pd
import torch

from layerscope.lab import load_config, run_experiment
from layerscope.lab.executors import available_cores
from layerscope.lab.projecting import project_run
from layerscope.lab.studies import (
    StudyTimer,
    markdown_table,
    study_figure,
    study_main,
    write_results,
)
from layerscope.projection.relevance import relevant_eigenspace

FULL = {"seeds": (0, 1, 2, 3, 4), "epochs": 5, "deltas": "7.3", "random_seeds": 3}
QUICK = {"seeds": (0, 1), "epochs": 3, "deltas": (0.9, 0.99), "random_seeds": 1}
#: The instances train in worker processes, one per core, one torch thread each.
EXECUTOR = {"name": "processes"}


def _config(out: str, seeds, epochs) -> dict:
    return {
        "model": "vgg11", "dataset": "digits", "resolution": 32, "width": 0.25,
        "seed": list(seeds), "epochs": epochs, "batch_size": 64, "metrics": ["accuracy"],
        "logs_dir": f"{out}/logs", "run_id": "s{seed}",
        "optimizer": {"name": "adam", "lr": 0.001},
    }  # fmt: skip


def _curves(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per delta: relative accuracy of PCA and of random (seeds averaged per run first), mean and
    sd over the runs, and the mean total dimensions."""
    rows = []
    for run, table in tables.items():
        per_run = table.groupby(["delta", "baseline"]).agg(
            relative_accuracy=("relative_accuracy", "mean"),
            total_dimensions=("total_dimensions", "mean"),
        )
        rows.append(per_run.reset_index().assign(run=run))
    frame = pd.concat(rows)
    pivot = frame.pivot_table(index=["delta", "run"], columns="baseline",
                              values="relative_accuracy")  # fmt: skip
    dims = frame[frame.baseline == "pca"].groupby("delta").total_dimensions.mean()
    summary = pivot.groupby("delta").agg(["mean", "std"])
    summary.columns = [f"{baseline}_{what}" for baseline, what in summary.columns]
    summary["total_dimensions"] = dims
    return summary.sort_index(ascending=False).reset_index()


def _figure(curves: pd.DataFrame, features: float, path) -> None:
    with study_figure(path, figsize=(5.5, 3.4), dpi=100) as (_, ax):
        for baseline, color in (("pca", "tab:blue"), ("random", "tab:red")):
            ax.errorbar(curves.delta, curves[f"{baseline}_mean"], yerr=curves[f"{baseline}_std"],
                        marker="o", markersize=3, color=color, label=baseline.upper()
                        if baseline == "pca" else "random directions")  # fmt: skip
        ax.set_xlabel("delta (fraction of variance kept per layer)")
        ax.set_ylabel("accuracy / unprojected accuracy")
        ax.set_ylim(0, 1.1)
        ax.set_title(f"VGG11 1/4 on digits, 5 instances ({features:.0f} dimensions in all layers)",
                     fontsize=9)  # fmt: skip
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)


def _project(folders: list[str], plan: dict) -> dict[str, pd.DataFrame]:
    """Each run's delta sweep (``project_run``, figures but no report), one worker process per
    core at one torch thread each."""
    job = partial(project_run, deltas=plan["deltas"], seeds=range(plan["random_seeds"]),
                  report=False, progress=False)  # fmt: skip
    workers = min(available_cores(), len(folders))
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                             initializer=torch.set_num_threads, initargs=(1,)) as pool:  # fmt: skip
        return dict(zip(folders, pool.map(job, folders), strict=True))


def run(out: str = "logs/studies/pca_vs_random", quick: bool = False) -> dict:
    """Train the instances, sweep delta for PCA and random, test the relevant eigenspace."""
    timer = StudyTimer()
    torch.set_num_threads(1)
    plan = QUICK if quick else FULL
    configs = load_config(_config(out, plan["seeds"], plan["epochs"]))
    results = run_experiment(configs, progress=False, executor=EXECUTOR)
    tables = _project([str(r.run_dir) for r in results], plan)
    relevant = relevant_eigenspace(tables)
    curves = _curves(tables)
    features = float(np.mean([t.total_features.iloc[0] for t in tables.values()]))
    high = curves[curves.delta >= 0.99 - 1e-12]
    eigenspace = relevant.table
    _figure(curves, features, f"{out}/pca_vs_random.png")
    unprojected = [float(t.unprojected_accuracy.iloc[0]) for t in tables.values()]
    summary = {
        "study": "pca_vs_random", "quick": quick, "plan": plan,
        "curves": curves.to_dict("records"), "relevant_eigenspace": eigenspace.to_dict("records"),
        "selected_delta": relevant.selected_delta, "total_features": features,
        "unprojected_accuracy": unprojected,
        "pca_above_random_from_0.99": bool((high.pca_mean > high.random_mean).all()),
        **timer.resources(),
    }  # fmt: skip
    write_results(out, summary)
    return summary


def _summary(results) -> str:
    eigenspace = results["relevant_eigenspace"]
    return (f"\n{markdown_table(eigenspace, list(eigenspace[0]))}\nselected delta "
            f"{results['selected_delta']}; PCA above random from 0.99: "
            f"{results['pca_above_random_from_0.99']}")  # fmt: skip


if __name__ == "__main__":
    study_main("pca_vs_random", run, __doc__, rows="curves", summary=_summary,
               columns=["delta", "pca_mean", "pca_std", "random_mean", "random_std",
                        "total_dimensions"])  # fmt: skip
