"""The studies of examples/studies/, shortened (``--quick``), asserting the claim each reproduced.

The full studies run by hand (``layerscope study NAME``); their numbers live in docs/studies/.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import torch

STUDIES = Path(__file__).resolve().parents[2] / "examples" / "studies"


def quick(name: str, tmp_path) -> dict:
    torch.set_num_threads(1)
    study = runpy.run_path(str(STUDIES / f"{name}.py"))
    results = study["run"](str(tmp_path / name), quick=True)
    assert (tmp_path / name / "results.json").is_file()
    assert (tmp_path / name / f"{name}.png").stat().st_size > 0
    return results


@pytest.mark.slow
def test_width_saturation_s_mu_rises_as_width_falls(tmp_path):
    results = quick("width_saturation", tmp_path)
    wide, narrow = results["rows"]
    assert (wide["width"], narrow["width"]) == (0.5, 0.125)
    assert narrow["s_mu"] > wide["s_mu"] + 0.05


@pytest.mark.slow
def test_bottom_up_lower_layers_settle_first(tmp_path):
    results = quick("bottom_up", tmp_path)
    summary = results["summary"]["cka"]
    assert summary["spearman_settle_vs_depth"] > 0.5
    assert summary["spearman_mean_vs_depth"] < -0.5
    first, last = summary["values"][0][0], summary["values"][0][-1]
    assert first > last  # at initialisation the first layer is closer to its final state


@pytest.mark.slow
def test_pca_beats_random_projections(tmp_path):
    results = quick("pca_vs_random", tmp_path)
    at = {round(row["delta"], 4): row for row in results["curves"]}
    assert at[0.99]["pca_mean"] > at[0.99]["random_mean"] + 0.3
    assert [row["delta"] for row in results["relevant_eigenspace"]] == [0.99, 0.9]


@pytest.mark.slow
def test_saturation_settles_no_later_than_the_loss(tmp_path):
    results = quick("saturation_converges", tmp_path)
    rows = results["rows"]
    assert [r["layer"] for r in rows] == ["layers.1", "layers.3", "layers.5"]
    assert sum(r["saturation_settles"] <= r["loss_settles"] for r in rows) >= 2
    assert results["rows"][0]["loss_settles"] >= 1  # the loss did not start flat


@pytest.mark.slow
def test_probes_stop_improving_after_the_border(tmp_path):
    results = quick("border_tail", tmp_path)
    (row,) = results["rows"]
    curve = results["curves"]["vgg11"]
    assert (row["model"], row["border"], row["convolutions"]) == ("vgg11", 6, 8)
    accuracy, saturation = curve["probe"], curve["saturation"]
    border = row["border"]
    # layers after the border add little over the best layer up to it (dissertation 9.3)
    assert max(accuracy[border:]) - max(accuracy[:border]) < 0.05
    assert saturation[-1] < 0.75 * max(saturation)  # the last convolution is the least used


@pytest.mark.slow
def test_pruning_magnitude_beats_frame_potential_beats_random(tmp_path):
    results = quick("pruning_frame_potential", tmp_path)
    area = {row["criterion"]: row["mean_accuracy_over_curve"] for row in results["rows"]}
    assert results["baseline_accuracy"] > 0.9
    assert area["smallest_norm"] >= area["smallest_contribution"]  # magnitude beats FP
    assert area["smallest_contribution"] > area["random"] > area["largest_contribution"]
    assert (
        results["ranking"][-1] == "largest_norm"
    )  # measured: the largest norms, not contributions
    assert results["curves"][0]["removed"] == 0


@pytest.mark.slow
def test_low_rank_elbow_follows_the_width_until_weight_decay_removes_the_init(tmp_path):
    results = quick("low_rank_elbow", tmp_path)
    ten, five = results["summary"]["adam"]["10"], results["summary"]["adam"]["5"]
    # measured (not the paper's k = 10): the elbow of a mostly-random 256 x 256 layer is near 128
    assert ten["k"] > 50 and five["k"] > 50
    assert abs(ten["k"] - five["k"]) < 15
    assert ten["norm_percent"] > 90 and ten["accuracy_drop_points"] < 2
    assert ten["update_elbow_k"] < ten["k"]
    assert ten["accuracy_drop_at_k_classes"] > 10  # rank 10 is far too low here
    # with weight decay the random initialisation is gone and rank 10 keeps what the paper kept
    decayed = results["summary"]["adamw_decay"]["10"]
    assert decayed["update_norm_share"] > 1  # the layer is mostly what training made of it
    assert decayed["k"] < ten["k"] / 2
    assert decayed["norm_percent_at_k_classes"] > 80
    assert decayed["accuracy_drop_at_k_classes"] < 5


@pytest.mark.slow
def test_rwc_clusters_split_off_the_shortcuts_and_rwc_falls(tmp_path):
    results = quick("rwc_clusters", tmp_path)
    summary, rows = results["summary"], results["rows"]
    assert len(rows) == 21  # 17 3x3 convolutions, 3 shortcuts, fc
    assert summary["k"] == max(summary["silhouettes"], key=lambda k: summary["silhouettes"][k])
    assert 2 <= summary["k"] <= 10
    assert summary["spearman_epoch_vs_mean_rwc"] < -0.8  # RWC falls over training
    shortcuts = {row["cluster"] for row in rows if "downsample" in row["layer"]}
    lowest = min(range(summary["k"]), key=lambda c: sum(summary["centers"][c]))
    assert shortcuts == {lowest}  # the 1x1 shortcuts change least, and cluster together
