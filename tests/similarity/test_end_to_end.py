"""End to end (issue 7, "Done when"): two small CNNs trained briefly on scikit-learn's digits,
compared layer by layer with all four measures, one of them over its epochs, with figures.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from layerscope.report.similarity import plot_similarity_matrix, plot_similarity_over_epochs
from layerscope.similarity import layer_similarity, similarity_over_epochs


def digits():
    images, labels = load_digits(return_X_y=True)
    x = torch.tensor(images, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    return x, torch.tensor(labels)


def small_cnn(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),  # 8x8 -> 4x4
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )


def train(model, x, y, epochs=6, seed=0):
    """Adam, batches of 64; returns the state dict after every epoch (index 0: before training)."""
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    states = [copy.deepcopy(model.state_dict())]
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 64):
            index = order[start : start + 64]
            optimiser.zero_grad()
            nn.functional.cross_entropy(model(x[index]), y[index]).backward()
            optimiser.step()
        states.append(copy.deepcopy(model.state_dict()))
    return states


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


@pytest.fixture(scope="module")
def trained():
    x, y = digits()
    train_x, train_y, test_x, test_y = x[:1400], y[:1400], x[1400:], y[1400:]
    first, second = small_cnn(0), small_cnn(1)
    states = train(first, train_x, train_y, seed=0)
    train(second, train_x, train_y, seed=1)
    return dict(first=first, second=second, states=states, x=x, test=(test_x, test_y))


def loader(x, size=128):
    return [(x[start : start + size], None) for start in range(0, len(x), size)]


def test_two_trained_models_all_measures_and_figures(trained, tmp_path):
    first, second = trained["first"], trained["second"]
    assert accuracy(first, *trained["test"]) > 0.85 and accuracy(second, *trained["test"]) > 0.85
    data = loader(trained["x"])  # all 1797 digits
    results = {
        measure: layer_similarity(first, second, data, measure=measure)
        for measure in ("cka", "cca", "svcca", "pwcca")
    }
    for measure, result in results.items():
        assert result.rows == ("0", "2", "5", "7")
        assert result.values.shape == (4, 4) and np.isfinite(result.values).all(), measure
        assert (result.values > -0.05).all() and (result.values <= 1 + 1e-9).all(), measure
        path = tmp_path / f"{measure}.png"
        plot_similarity_matrix(result, path=path, labels=("seed 0", "seed 1"))
        assert path.read_bytes()[:4] == b"\x89PNG"
    # Trained from different seeds, the logits agree far more with each other than with an
    # untrained network's (Kornblith et al. 2019 find the same for corresponding layers).
    untrained = layer_similarity(first, small_cnn(2), data)
    cka = results["cka"].values
    assert cka[3, 3] > 0.8 and cka[3, 3] > untrained.values[3, 3] + 0.2
    assert results["cka"].num_samples == 1797 and results["cca"].spatial == "pool"


def test_one_run_over_its_epochs(trained, tmp_path):
    data = loader(trained["x"])
    over = similarity_over_epochs(trained["states"], data, model=small_cnn(5))
    assert over.values.shape == (7, 4) and over.epochs == tuple(range(7))
    np.testing.assert_allclose(over.values[-1], 1.0, atol=1e-9)
    # Representations converge towards their final form: the last epoch before the end is
    # closer to it than the initialisation is, for every layer (seed 004, Morcos et al. 2018).
    assert (over.values[-2] > over.values[0]).all()
    pwcca = similarity_over_epochs(trained["states"], data, model=small_cnn(5), measure="pwcca")
    assert np.isfinite(pwcca.values).all() and (pwcca.values[-2] > pwcca.values[0]).all()
    path = tmp_path / "epochs.png"
    plot_similarity_over_epochs(over, path=path)
    assert path.stat().st_size > 1000
