"""Pruning orders against a brute-force numpy greedy, curves against pruning by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from layerscope.errors import OptionError, UnknownNameError
from layerscope.weights import pruning_curves, pruning_order, pruning_summary


def _contributions(matrix: np.ndarray, alive: list[int]) -> dict[int, float]:
    unit = {i: matrix[i] / np.linalg.norm(matrix[i]) for i in alive}
    return {i: sum(float(unit[i] @ unit[j]) ** 2 for j in alive) for i in alive}


def _greedy_by_hand(matrix: np.ndarray, criterion: str) -> tuple[list[int], list[float]]:
    """Recompute every contribution from scratch after each removal."""
    alive, order, potentials = list(range(len(matrix))), [], []
    norms = np.linalg.norm(matrix, axis=1)
    while alive:
        c = _contributions(matrix, alive)
        keys = {"smallest_norm": {i: norms[i] for i in alive},
                "largest_norm": {i: -norms[i] for i in alive},
                "smallest_contribution": c,
                "largest_contribution": {i: -v for i, v in c.items()}}[criterion]  # fmt: skip
        best = min(keys.values())
        r = min(i for i in alive if keys[i] <= best + 1e-9 * max(1.0, abs(best)))  # ties: low i
        alive.remove(r)
        order.append(r)
        potentials.append(sum(_contributions(matrix, alive).values()) if alive else 0.0)
    return order, potentials


# Two near-duplicate pairs, one lone direction and a large row: every criterion differs.
HAND_MADE = np.array([
    [1.0, 0.0, 0.0],
    [0.9, 0.1, 0.0],
    [0.0, 3.0, 0.0],
    [0.0, 2.8, 0.3],
    [0.2, 0.2, 5.0],
    [0.5, 0.5, 0.5],
])  # fmt: skip
EXPECTED_FIRST = {"smallest_norm": 5, "largest_norm": 4, "smallest_contribution": 4,
                  "largest_contribution": 5}  # fmt: skip


@pytest.mark.parametrize("criterion", list(EXPECTED_FIRST))
def test_order_per_criterion_equals_brute_force(criterion):
    order, potentials = pruning_order(torch.tensor(HAND_MADE), criterion)
    expected_order, expected_potentials = _greedy_by_hand(HAND_MADE, criterion)
    assert order == expected_order
    assert order[0] == EXPECTED_FIRST[criterion]
    np.testing.assert_allclose(potentials, expected_potentials, rtol=1e-10, atol=1e-12)


def test_random_order_is_a_seeded_permutation():
    first, _ = pruning_order(torch.tensor(HAND_MADE), "random", seed=3)
    again, _ = pruning_order(torch.tensor(HAND_MADE), "random", seed=3)
    assert first == again and sorted(first) == list(range(6))
    with pytest.raises(OptionError, match="criterion"):
        pruning_order(torch.tensor(HAND_MADE), "max_mag")


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))


def test_curves_equal_pruning_by_hand_and_leave_the_model_untouched():
    model = _net()
    x = torch.randn(64, 4)
    labels = model(x).argmax(1)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def accuracy(m):
        return float((m(x).argmax(1) == labels).float().mean())

    table = pruning_curves(model, "0", accuracy, criteria=["largest_norm", "random"],
                           seeds=range(5), step=2)  # fmt: skip
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert model.training  # not switched to eval either
    assert sorted(set(table.removed)) == [0, 2, 4, 5]
    assert table[table.criterion == "random"].seed.nunique() == 5
    weight = before["0.weight"].numpy().astype(np.float64)
    order = list(np.argsort(-np.linalg.norm(weight, axis=1), kind="stable"))
    for removed in (2, 4, 5):
        w, b = before["0.weight"].clone(), before["0.bias"].clone()
        w[order[:removed]] = 0.0
        b[order[:removed]] = 0.0
        hidden = torch.relu(x @ w.T + b)
        logits = hidden @ before["2.weight"].T + before["2.bias"]
        expected = float((logits.argmax(1) == labels).float().mean())
        row = table[(table.criterion == "largest_norm") & (table.removed == removed)]
        assert row.metric.item() == pytest.approx(expected)
        kept = np.sqrt((weight[order[removed:]] ** 2).sum() / (weight**2).sum())
        assert row.norm_kept.item() == pytest.approx(kept)
    summary = pruning_summary(table)
    random = table[(table.criterion == "random") & (table.removed == 4)].metric.to_numpy()
    got = summary[(summary.criterion == "random") & (summary.removed == 4)]
    assert got["mean"].item() == pytest.approx(random.mean())
    assert got["sd"].item() == pytest.approx(random.std(ddof=1))


def test_conv_units_and_bad_layers():
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.Flatten(), nn.LazyLinear(2))
    x = torch.randn(8, 2, 5, 5)
    model(x)
    table = pruning_curves(model, "0", lambda m: float(m(x).abs().sum()),
                           criteria=["smallest_contribution"])  # fmt: skip
    assert table.metric.iloc[-1] < table.metric.iloc[0]
    with pytest.raises(UnknownNameError, match="did you mean '0'"):
        pruning_curves(model, "00", lambda m: 0.0)
    with pytest.raises(OptionError, match="max_removed"):
        pruning_curves(model, "0", lambda m: 0.0, max_removed=9)
    with pytest.raises(OptionError, match="not the rows"):
        pruning_curves(nn.Sequential(nn.LSTM(2, 3)), "0", lambda m: 0.0)
