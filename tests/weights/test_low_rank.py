"""Low-rank residuals against numpy's SVD tail sums, the elbow against a hand-made curve, and
substitution of W_k into a copy of the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from layerscope.errors import OptionError
from layerscope.weights import kneedle, low_rank_approximation, low_rank_residuals, low_rank_table


@pytest.mark.parametrize("shape", [(6, 9), (9, 4)])
def test_residuals_are_tail_sums_of_squared_singular_values(shape):
    matrix = np.random.default_rng(0).normal(size=shape)
    s = np.linalg.svd(matrix, compute_uv=False)
    table = low_rank_residuals(torch.tensor(matrix))
    assert table.k.tolist() == list(range(1, shape[0]))
    for k, residual in zip(table.k, table.residual, strict=True):
        np.testing.assert_allclose(residual, np.sqrt((s[k:] ** 2).sum()), atol=1e-10)
        u, sv, vh = np.linalg.svd(matrix, full_matrices=False)
        approx = (u[:, :k] * sv[:k]) @ vh[:k] if k <= len(s) else matrix
        np.testing.assert_allclose(residual, np.linalg.norm(matrix - approx), atol=1e-9)
        if k <= len(s):
            np.testing.assert_allclose(low_rank_approximation(torch.tensor(matrix), k).numpy(), approx,
                                       atol=1e-10)  # fmt: skip
    spectral = low_rank_residuals(torch.tensor(matrix), norm="spectral")
    expected = [s[k] if k < len(s) else 0.0 for k in spectral.k]
    np.testing.assert_allclose(spectral.residual, expected, atol=1e-10)
    np.testing.assert_allclose(spectral.relative_residual, np.array(expected) / s[0], atol=1e-12)


def test_kneedle_on_hand_made_curves():
    k = np.arange(1, 21)
    # two straight pieces meeting at k = 6: the elbow is the corner
    residual = np.where(k <= 6, 100 - 15 * (k - 1), 25 - (k - 6))
    assert k[kneedle(k, residual)] == 6
    assert kneedle([1, 2], [3.0, 1.0]) == 0
    assert kneedle([1, 2, 3], [1.0, 1.0, 1.0]) == 0  # no drop: the first k
    with pytest.raises(OptionError, match="1-D"):
        kneedle([1, 2, 3], [1.0, 2.0])


def test_table_substitutes_w_k_into_a_copy():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.randn(40, 5)
    before = {key: v.clone() for key, v in model.state_dict().items()}
    table, curves = low_rank_table(model, ["0", "2"], lambda m: float(m(x).sum()), k=2)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])
    w = before["0.weight"].double().numpy()
    u, s, vh = np.linalg.svd(w, full_matrices=False)
    w2 = (u[:, :2] * s[:2]) @ vh[:2]
    out = torch.relu(x.double() @ torch.tensor(w2).T + before["0.bias"].double())
    expected = float((out @ before["2.weight"].double().T + before["2.bias"].double()).sum())
    row = table.set_index("layer").loc["0"]
    assert row.metric_low_rank == pytest.approx(expected, rel=1e-5)
    assert row.metric == pytest.approx(float(model(x).detach().sum()), rel=1e-6)
    assert row.norm_percent == pytest.approx(100 * np.linalg.norm(w2) / np.linalg.norm(w))
    assert row.residual == pytest.approx(np.sqrt((s[2:] ** 2).sum()))
    assert sorted(curves.layer.unique()) == ["0", "2"]
    elbow, _ = low_rank_table(model, ["0"])
    assert 1 <= elbow.k.item() <= 7


def test_bad_ranks_and_layers():
    model = nn.Sequential(nn.Linear(3, 4), nn.Conv2d(4, 4, 3, groups=2))
    with pytest.raises(OptionError, match=r"within 1\.\.3"):
        low_rank_table(model, ["0"], k=4)
    with pytest.raises(OptionError, match="grouped convolution"):
        low_rank_table(model, ["1"], k=1)
    with pytest.raises(OptionError, match="norm"):
        low_rank_residuals(torch.zeros(2, 2), norm="nuclear")
    zero = low_rank_residuals(torch.zeros(3, 2))  # all-zero weights: defined, no NaN
    assert zero.residual.tolist() == [0.0, 0.0] and zero.relative_residual.tolist() == [0.0, 0.0]
    empty = low_rank_residuals(torch.zeros(0, 2))
    assert empty.empty
