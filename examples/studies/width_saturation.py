"""Study a: average saturation rises as the width falls (dissertation 8.4, 11.3; seed 000 s. 3).

VGG11 at widths 1, 1/2, 1/4 and 1/8 on the embedded digits data (32 px), three seeds each, 6
epochs with Adam, the learning rate cut tenfold after 4 (an earlier 4-epoch version left the
full width unconverged, so the sweet-spot half could not be judged). Measures the average saturation s_mu of the last epoch (evaluation phase, all
recorded layers, delta 0.99) and the test accuracy, and checks the claim: s_mu rises as the width
falls, and the best-accuracy width lies in the sweet spot (layerscope's default 0.2-0.3,
dissertation 11.3; seed 000 names 0.2-0.4).

    layerscope study width_saturation              # about 3-4 minutes on 2 CPU cores
    layerscope study width_saturation -- --quick   # widths 1/2 and 1/8, one seed, 2 epochs
"""

from __future__ import annotations

import numpy as np
import torch

from layerscope.architecture import SWEET_SPOT
from layerscope.lab import load_config, run_experiment
from layerscope.lab.studies import StudyTimer, study_figure, study_main, write_results
from layerscope.store import load

FULL = {"widths": (1.0, 0.5, 0.25, 0.125), "seeds": (0, 1, 2), "epochs": 6}
#: The grid's runs in worker processes, one per core, one torch thread each.
EXECUTOR = {"name": "processes"}
QUICK = {"widths": (0.5, 0.125), "seeds": (0,), "epochs": 2}


def _config(out: str, widths, seeds, epochs) -> dict:
    return {
        "model": "vgg11", "dataset": "digits", "resolution": 32, "width": list(widths),
        "seed": list(seeds), "epochs": epochs, "batch_size": 64, "metrics": ["accuracy"],
        "logs_dir": f"{out}/logs", "run_id": "w{width}-s{seed}",
        "optimizer": {"name": "adam", "lr": 0.001, "step": 4, "factor": 0.1},
        "tracker": {"delta": 0.99},
    }  # fmt: skip


def _figure(rows, path) -> None:
    widths = [r["width"] for r in rows]
    with study_figure(path, figsize=(5, 3.2), dpi=100) as (_, left):
        left.errorbar(widths, [r["s_mu"] for r in rows], yerr=[r["s_mu_std"] for r in rows],
                      marker="o", color="tab:blue", label="s_mu (eval)")  # fmt: skip
        left.axhspan(*SWEET_SPOT, color="tab:green", alpha=0.15, label="sweet spot 0.2-0.3")
        left.set_xscale("log", base=2)
        left.set_xlabel("width factor")
        left.set_ylabel("average saturation s_mu")
        right = left.twinx()
        right.errorbar(widths, [r["test_accuracy"] for r in rows], yerr=[r["accuracy_std"] for r in rows],
                       marker="s", color="black", label="test accuracy")  # fmt: skip
        right.set_ylabel("test accuracy")
        handles = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
        left.legend(handles=handles, fontsize=7, loc="center left")
        left.set_title("VGG11 on digits: width against saturation", fontsize=9)


def run(out: str = "logs/studies/width_saturation", quick: bool = False) -> dict:
    """Train the grid, measure s_mu and accuracy per width, write results.json and a figure."""
    timer = StudyTimer()
    torch.set_num_threads(1)
    plan = QUICK if quick else FULL
    run_experiment(load_config(_config(out, plan["widths"], plan["seeds"], plan["epochs"])),
                   progress=False, executor=EXECUTOR)  # fmt: skip
    df = load(f"{out}/logs")
    last = df.epoch.max()
    saturation = df[(df.statistic == "average_saturation") & (df.phase == "eval")
                    & (df.epoch == last)].set_index("run").value  # fmt: skip
    accuracy = df[(df.statistic == "test_accuracy") & (df.epoch == last)].set_index("run").value
    rows = []
    for width in plan["widths"]:
        runs = [f"w{width}-s{seed}" for seed in plan["seeds"]]
        s_mu, acc = saturation[runs].to_numpy(), accuracy[runs].to_numpy()
        rows.append({"width": width, "s_mu": s_mu.mean(), "s_mu_std": s_mu.std(),
                     "test_accuracy": acc.mean(), "accuracy_std": acc.std(),
                     "s_mu_per_seed": s_mu, "accuracy_per_seed": acc})  # fmt: skip
    best = max(rows, key=lambda r: r["test_accuracy"])
    s_mus = [r["s_mu"] for r in rows]
    results = {
        "study": "width_saturation", "quick": quick, "plan": plan, "rows": rows,
        "s_mu_rises_as_width_falls": bool(np.all(np.diff(s_mus) > 0)),
        "best_width": best["width"], "best_s_mu": best["s_mu"],
        "best_in_sweet_spot": bool(SWEET_SPOT[0] <= best["s_mu"] <= SWEET_SPOT[1]),
        "best_in_seed000_sweet_spot": bool(0.2 <= best["s_mu"] <= 0.4),
        **timer.resources(),
    }  # fmt: skip
    _figure(rows, f"{out}/width_saturation.png")
    write_results(out, results)
    return results


def _summary(results) -> str:
    return (f"s_mu rises as width falls: {results['s_mu_rises_as_width_falls']}; best width "
            f"{results['best_width']} (s_mu {results['best_s_mu']:.3f}, in the sweet spot: "
            f"{results['best_in_sweet_spot']})")  # fmt: skip


if __name__ == "__main__":
    study_main("width_saturation", run, __doc__, summary=_summary,
               columns=["width", "s_mu", "s_mu_std", "test_accuracy", "accuracy_std"])  # fmt: skip
