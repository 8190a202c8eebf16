"""RWC matrix, the outlier rule (WeightScale eq. 2) and RWCClusters against numpy / sklearn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, silhouette_score
from torch import nn

from layerscope.errors import OptionError
from layerscope.weights import (
    RWCClusters,
    clip_outliers,
    cluster_by_primitive,
    primitive_groups,
    relative_weight_change,
    rwc_matrix,
)


def _trajectories(seed=0, layers=12, epochs=8):
    """Three families of layers (high and falling, middle and falling, flat) with noise, one
    spike and one inf."""
    rng = np.random.default_rng(seed)
    t = np.arange(epochs)
    shapes = [1.0 - 0.05 * t, 0.5 - 0.02 * t, 0.05 + 0 * t]
    rows = [shapes[i % 3] + rng.normal(0, 0.01, epochs) for i in range(layers)]
    matrix = np.abs(np.array(rows))
    matrix[4, 5] = 30.0  # an outlier spike
    matrix[7, 2] = np.inf
    return matrix


def _clip_by_hand(matrix, n_sd=2.0):
    out = matrix.astype(float).copy()
    for i in range(len(out)):
        finite = [v for v in out[i] if np.isfinite(v)]
        mean = sum(finite) / len(finite)
        sd = (sum((v - mean) ** 2 for v in finite) / len(finite)) ** 0.5
        for j, v in enumerate(out[i]):
            if not np.isfinite(v) or abs(v - mean) > n_sd * sd:
                out[i, j] = mean
    return out


def test_clipping_rule():
    matrix = _trajectories()
    np.testing.assert_allclose(clip_outliers(matrix), _clip_by_hand(matrix))
    np.testing.assert_allclose(clip_outliers(matrix, 1.0), _clip_by_hand(matrix, 1.0))
    assert matrix[4, 5] == 30.0  # the input is not modified
    with pytest.raises(OptionError, match="no finite value"):
        clip_outliers([[np.inf, np.nan]])


@pytest.mark.parametrize("seed", [0, 3])
def test_labels_equal_sklearn_kmeans_on_the_clipped_matrix(seed):
    matrix = _trajectories(seed)
    clipped = _clip_by_hand(matrix)
    fitted = RWCClusters(k=3, seed=seed).fit(matrix)
    reference = KMeans(3, init="k-means++", n_init=10, max_iter=300, random_state=seed).fit(clipped)
    assert adjusted_rand_score(fitted.labels_, reference.labels_) == 1.0
    np.testing.assert_allclose(fitted.inertia_, reference.inertia_, rtol=1e-10)
    np.testing.assert_allclose(fitted.clipped_, clipped)
    assert fitted.labels_[0] == 0  # numbered in forward order
    np.testing.assert_allclose(fitted.silhouette_, silhouette_score(clipped, reference.labels_))
    expected_plane = PCA(2).fit_transform(clipped)
    # PCA's signs are a convention: compare up to a sign per axis
    for axis in range(2):
        got, want = fitted.embedding_[:, axis], expected_plane[:, axis]
        assert np.allclose(got, want) or np.allclose(got, -want)


def test_auto_k_is_the_best_silhouette():
    matrix = _trajectories(1, layers=15)
    fitted = RWCClusters(seed=0).fit(matrix)
    clipped = _clip_by_hand(matrix)
    scores = {}
    for k in range(2, 11):
        labels = KMeans(k, n_init=10, random_state=0).fit_predict(clipped)
        scores[k] = silhouette_score(clipped, labels)
    # three families, and the spiked layer on its own: its spike is replaced by a mean that the
    # spike itself raised (mean and sd computed with the outliers, as the authors' code)
    assert fitted.k_ == max(scores, key=scores.get) == 4
    assert sorted(fitted.scree_) == list(range(2, 11))
    np.testing.assert_allclose([fitted.silhouettes_[k] for k in scores], list(scores.values()))
    assert all(a >= b for a, b in zip(list(fitted.scree_.values()),
                                      list(fitted.scree_.values())[1:], strict=False))  # fmt: skip


def test_bad_k():
    matrix = _trajectories()
    with pytest.raises(OptionError, match=r"pass k=1\.\.12"):
        RWCClusters(k=13).fit(matrix)
    with pytest.raises(OptionError, match="at least 3 layers"):
        RWCClusters().fit(matrix[:2])
    with pytest.raises(OptionError, match="positive int"):
        RWCClusters(k="three").fit(matrix)
    with pytest.raises(OptionError, match="clip=True"):
        RWCClusters(k=2, clip=False).fit(matrix)
    one = RWCClusters(k=1).fit(matrix)
    assert one.labels_.tolist() == [0] * 12 and np.isnan(one.silhouette_)


def test_rwc_matrix_from_records_and_from_snapshots():
    rng = np.random.default_rng(0)
    snapshots = {e: {"a": [torch.tensor(rng.normal(size=(3, 2)))],
                     "b": [torch.tensor(rng.normal(size=4)), torch.tensor([0.0, 1.0])]}
                 for e in (0, 2, 3)}  # fmt: skip
    snapshots[3]["b"][1] = torch.tensor([0.5, 1.0])  # a weight that was 0 moves: inf
    matrix = rwc_matrix(snapshots)
    assert matrix.columns.tolist() == [2, 3]  # real epoch numbers
    a0, a2 = snapshots[0]["a"][0].numpy(), snapshots[2]["a"][0].numpy()
    np.testing.assert_allclose(matrix.loc["a", 2], np.abs(a2 - a0).sum() / np.abs(a0).sum())
    elementwise = rwc_matrix(snapshots, formula="elementwise")
    assert np.isinf(elementwise.loc["b", 3])
    np.testing.assert_allclose(elementwise.loc["a", 2], np.mean(np.abs(a2 - a0) / np.abs(a0)))
    records = pd.DataFrame({"run": "r", "epoch": [1, 2, 1, 2], "phase": "weights",
                            "layer": ["late", "late", "early", "early"],
                            "layer_index": [1, 1, 0, 0], "statistic": "relative_weight_change",
                            "value": [0.1, 0.2, 0.3, 0.4]})  # fmt: skip
    from_records = rwc_matrix(records)
    assert from_records.index.tolist() == ["early", "late"]
    assert from_records.values.tolist() == [[0.3, 0.4], [0.1, 0.2]]
    with pytest.raises(OptionError, match="checkpoints"):
        rwc_matrix(records, formula="elementwise")
    with pytest.raises(OptionError, match="formula"):
        relative_weight_change([], [], "l2")


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.depthwise = nn.Conv2d(8, 8, 3, groups=8)
        self.project = nn.Conv2d(8, 16, 1)
        self.se = nn.Sequential(nn.Conv2d(16, 4, 1), nn.Conv2d(4, 16, 1))
        self.conv = nn.Conv2d(16, 16, 3)
        self.fc = nn.Linear(16, 2)


def test_primitive_groups_and_clustering_within_them():
    groups = primitive_groups(Block())
    assert groups == {"depthwise": "depthwise", "project": "pointwise", "se.0": "gate",
                      "se.1": "gate", "conv": "conv", "fc": "dense"}  # fmt: skip
    layers = [f"l{i}" for i in range(10)]
    matrix = pd.DataFrame(np.abs(_trajectories(layers=10)), index=layers)
    table, fits = cluster_by_primitive(matrix, {n: ("conv" if i < 6 else "dense")
                                                for i, n in enumerate(layers)}, k=2)  # fmt: skip
    assert sorted(fits) == ["conv", "dense"]
    conv_reference = KMeans(2, n_init=10, random_state=0).fit_predict(
        _clip_by_hand(matrix.iloc[:6].to_numpy())
    )
    assert adjusted_rand_score(table.cluster[:6], conv_reference) == 1.0
    with pytest.raises(OptionError, match="no primitive group"):
        cluster_by_primitive(matrix, {"l0": "conv"})
