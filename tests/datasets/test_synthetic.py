"""Synthetic data: balanced, reproducible, and harder as noise, classes and modes grow."""

import itertools

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestCentroid

from layerscope.datasets import load_dataset


def _arrays(dataset):
    x = torch.stack([dataset[i][0] for i in range(len(dataset))]).flatten(1).numpy()
    return x, dataset.targets.numpy()


def _centroid_accuracy(**options):
    splits = load_dataset("synthetic", augment=False, train_size=600, test_size=300, **options)
    (train_x, train_y), (test_x, test_y) = _arrays(splits.train), _arrays(splits.test)
    return NearestCentroid().fit(train_x, train_y).score(test_x, test_y)


def test_accuracy_falls_as_noise_rises():
    # Nearest centroid (scikit-learn) approximates the optimal nearest-prototype rule here.
    accuracy = [_centroid_accuracy(resolution=16, noise=n) for n in (1.0, 4.0, 8.0, 16.0)]
    assert accuracy[0] > 0.99
    assert all(a > b + 0.05 for a, b in itertools.pairwise(accuracy)), accuracy
    assert accuracy[-1] < 0.3  # near chance (0.1)


def test_accuracy_falls_as_classes_and_modes_grow():
    by_classes = [_centroid_accuracy(resolution=16, noise=4.0, num_classes=k) for k in (2, 10, 40)]
    assert all(a > b + 0.03 for a, b in itertools.pairwise(by_classes)), by_classes
    one_mode = _centroid_accuracy(resolution=16, noise=2.0)
    four_modes = _centroid_accuracy(resolution=16, noise=2.0, modes=4)
    assert one_mode > four_modes + 0.2, (one_mode, four_modes)


def test_balanced_reproducible_and_seed_dependent():
    a = load_dataset("synthetic", resolution=8, train_size=40, test_size=20, num_classes=4)
    b = load_dataset("synthetic", resolution=8, train_size=40, test_size=20, num_classes=4)
    c = load_dataset(
        "synthetic", resolution=8, train_size=40, test_size=20, num_classes=4, data_seed=1
    )
    assert np.bincount(a.train.targets.numpy()).tolist() == [10] * 4
    assert np.bincount(a.test.targets.numpy()).tolist() == [5] * 4
    assert torch.equal(_arrays_t(a.train), _arrays_t(b.train))
    assert not torch.equal(_arrays_t(a.train), _arrays_t(c.train))
    assert (a.in_channels, a.input_size, a.num_classes) == (1, 8, 4)


def _arrays_t(dataset):
    return torch.stack([dataset[i][0] for i in range(len(dataset))])


def test_prototypes_are_standardised_and_noise_has_the_requested_scale():
    clean = load_dataset("synthetic", resolution=16, noise=0.0, normalize=False, train_size=20)
    x = _arrays_t(clean.train).double()
    flat = x.flatten(1)
    np.testing.assert_allclose(flat.mean(1).numpy(), 0, atol=1e-6)
    np.testing.assert_allclose(flat.std(1, correction=0).numpy(), 1, atol=1e-5)
    noisy = load_dataset("synthetic", resolution=16, noise=3.0, normalize=False, train_size=400)
    residual = _arrays_t(noisy.train).double().flatten(1)
    # Total per-pixel variance = 1 (pattern) + noise^2.
    assert float(residual.var()) == pytest.approx(1 + 9, rel=0.05)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("num_classes", 1, "num_classes must be an int >= 2"),
        ("noise", -1.0, "noise must be a number >= 0"),
        ("modes", 0, "modes must be an int >= 1"),
        ("train_size", 3, "train_size must be an int >= 10"),
    ],
)
def test_bad_options(option, value, message):
    with pytest.raises(ValueError, match=message):
        load_dataset("synthetic", **{option: value})
