"""Frame potential and unit contributions against numpy float64 written here (Heitmann 3.1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from layerscope import Tracker
from layerscope.stats.frame_potential import (
    frame_potential,
    normalized_rows,
    removal_frame_potential,
)
from layerscope.tracking.weights import unit_matrix


def _numpy_fp(matrix: np.ndarray) -> tuple[float, np.ndarray]:
    fp, contributions = 0.0, np.zeros(len(matrix))
    unit = [row / np.linalg.norm(row) if np.linalg.norm(row) > 0 else row for row in matrix]
    for i, wi in enumerate(unit):
        for wj in unit:
            contributions[i] += float(np.dot(wi, wj)) ** 2
        fp += contributions[i]
    return fp, contributions


@pytest.mark.parametrize("shape", [(7, 5), (5, 7), (6, 6), (1, 3)])  # both product sides
def test_fp_and_contributions_match_numpy(shape):
    matrix = np.random.default_rng(0).normal(size=shape)
    fp, contributions = frame_potential(torch.tensor(matrix, dtype=torch.float32))
    expected_fp, expected_c = _numpy_fp(matrix.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(fp, expected_fp, rtol=1e-10)
    np.testing.assert_allclose(contributions.numpy(), expected_c, rtol=1e-10)


def test_removal_identity_equals_recomputation():
    matrix = np.random.default_rng(1).normal(size=(9, 4))
    matrix[3] = 0.0  # a zero row: its self term is 0
    fp, contributions = frame_potential(torch.tensor(matrix))
    self_terms = (np.linalg.norm(matrix, axis=1) > 0).astype(float)
    removed = removal_frame_potential(fp, contributions, torch.tensor(self_terms)).numpy()
    for i in range(len(matrix)):
        np.testing.assert_allclose(removed[i], _numpy_fp(np.delete(matrix, i, axis=0))[0],
                                   rtol=1e-10)  # fmt: skip


def test_degenerate_matrices_are_defined():
    fp, c = frame_potential(torch.zeros(4, 3))
    assert fp == 0.0 and c.tolist() == [0.0] * 4
    fp, c = frame_potential(torch.zeros(0, 3))
    assert fp == 0.0 and c.numel() == 0
    # a tight frame (orthonormal rows) reaches the minimum m
    fp, _ = frame_potential(torch.eye(3))
    assert fp == pytest.approx(3.0)
    with pytest.raises(ValueError, match=r"weight\.flatten"):
        normalized_rows(torch.zeros(2, 2, 2))


def _dense_conv_matrix(weight: np.ndarray, groups: int) -> np.ndarray:
    """(out, in_g, k, k) grouped weight as the dense (out, in * k * k) matrix."""
    out, in_g = weight.shape[:2]
    k = weight[0, 0].size
    dense = np.zeros((out, groups * in_g * k))
    per = out // groups
    for o in range(out):
        g = o // per
        dense[o, g * in_g * k : (g + 1) * in_g * k] = weight[o].ravel()
    return dense


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_unit_matrix_of_convolutions(groups):
    conv = nn.Conv2d(4, 8, 3, groups=groups)
    expected = _dense_conv_matrix(conv.weight.detach().double().numpy(), groups)
    np.testing.assert_allclose(unit_matrix(conv).double().numpy(), expected)
    transposed = nn.ConvTranspose2d(4, 8, 3, groups=groups)
    w = transposed.weight.detach().double().numpy()  # (in, out / groups, k, k)
    as_conv = np.concatenate([w[g * (4 // groups) : (g + 1) * (4 // groups)].transpose(1, 0, 2, 3)
                              for g in range(groups)])  # fmt: skip
    np.testing.assert_allclose(unit_matrix(transposed).double().numpy(),
                               _dense_conv_matrix(as_conv, groups))  # fmt: skip


def test_tracker_records_frame_potential_per_epoch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 2), nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    with Tracker(model, statistics=["saturation"]) as tracker:
        for _ in range(2):
            _ = model(torch.randn(4, 1, 5, 5))
            with torch.no_grad():
                model[2].weight.mul_(1.5).add_(0.1)
            tracker.end_epoch()
    df = tracker.dataframe().query("phase == 'weights' and epoch == 1")
    weight = model[2].weight.detach().double().numpy()
    fp, c = _numpy_fp(weight)
    rows = df[df.layer == "2"].set_index("statistic").value
    np.testing.assert_allclose(rows["frame_potential"], fp, rtol=1e-9)
    got = [rows[f"frame_potential_contribution[{i}]"] for i in range(5)]
    np.testing.assert_allclose(got, c, rtol=1e-9)
    conv = df[df.layer == "0"].set_index("statistic").value
    np.testing.assert_allclose(conv["frame_potential"],
                               _numpy_fp(model[0].weight.detach().double().numpy().reshape(3, -1))[0],
                               rtol=1e-9)  # fmt: skip
