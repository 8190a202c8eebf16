"""Weight spectra, Marchenko-Pastur and heavy-tail metrics against numpy / scipy written here."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from torch import nn

from layerscope.errors import OptionError
from layerscope.weights import (
    heavy_tail_metrics,
    layer_spectrum,
    marchenko_pastur_bounds,
    marchenko_pastur_density,
    power_law_fit,
    weight_spectra,
)


def _mp(x, q, s2):
    """Marchenko-Pastur continuous density, written from the formula."""
    lo, hi = s2 * (1 - q**-0.5) ** 2, s2 * (1 + q**-0.5) ** 2
    if not lo < x < hi:
        return 0.0
    return q / (2 * math.pi * s2 * x) * math.sqrt((hi - x) * (x - lo))


@pytest.mark.parametrize("q", [1.0, 2.0, 4.0, 0.5, 0.25])
def test_mp_density_mass(q):
    lo, hi = marchenko_pastur_bounds(q, 0.7)
    assert (lo, hi) == pytest.approx((0.7 * (1 - q**-0.5) ** 2, 0.7 * (1 + q**-0.5) ** 2))
    mass = integrate.quad(lambda t: float(marchenko_pastur_density(t, q, 0.7)), lo, hi,
                          limit=200)[0]  # fmt: skip
    assert mass == pytest.approx(min(1.0, q), abs=1e-6)  # Q < 1: the rest is the mass at 0
    grid = np.linspace(lo, hi, 7)[1:-1]
    np.testing.assert_allclose(marchenko_pastur_density(grid, q, 0.7),
                               [_mp(x, q, 0.7) for x in grid])  # fmt: skip


def test_glorot_random_matrix_follows_mp():
    m, n = 512, 2048
    generator = torch.Generator().manual_seed(0)
    layer = nn.Linear(n, m, bias=False)
    with torch.no_grad():
        layer.weight.normal_(0.0, math.sqrt(2.0 / (m + n)), generator=generator)
    spectrum = layer_spectrum(layer)
    assert spectrum.ratio == 4.0 and len(spectrum.eigenvalues) == m
    s2 = n * np.var(layer.weight.detach().double().numpy())
    assert spectrum.variance == pytest.approx(s2)
    lo, hi = marchenko_pastur_bounds(4.0, s2)

    def cdf(x):
        return integrate.quad(lambda t: _mp(t, 4.0, s2), lo, min(max(x, lo), hi), limit=200)[0]

    distance = stats.kstest(spectrum.eigenvalues, np.vectorize(cdf)).statistic
    assert distance < 0.03


@pytest.mark.parametrize("alpha", [2.0, 3.0, 4.5])
def test_power_law_alpha_on_known_samples(alpha):
    rng = np.random.default_rng(1)
    body = rng.uniform(0.1, 1.0, 3000)  # not a power law: xmin should land near 1
    tail = (1 - rng.random(3000)) ** (-1 / (alpha - 1))  # p(x) ~ x^-alpha, x >= 1
    fit = power_law_fit(np.concatenate([body, tail]))
    assert fit["alpha"] == pytest.approx(alpha, abs=0.15)
    assert fit["xmin"] == pytest.approx(1.0, abs=0.3)
    tail_fit = power_law_fit(tail)
    # the MLE for the chosen xmin, written out
    x = np.sort(tail)
    chosen = x[x >= tail_fit["xmin"]]
    mle = 1 + len(chosen) / np.sum(np.log(chosen / tail_fit["xmin"]))
    assert tail_fit["alpha"] == pytest.approx(mle, rel=1e-10)
    ks = np.max(
        np.abs(1 - (chosen / chosen[0]) ** (1 - mle) - np.arange(len(chosen)) / len(chosen))
    )
    assert tail_fit["D"] == pytest.approx(ks, rel=1e-10)
    assert tail_fit["num_pl_spikes"] == len(chosen)


def _metrics_by_hand(matrices, larger_side, scale=1.0):
    singular = np.concatenate([np.linalg.svd(w, compute_uv=False) for w in matrices])
    evals = np.sort(singular**2 * scale)
    total, top = evals.sum(), evals.max()
    rank = np.count_nonzero(np.sqrt(evals) > np.sqrt(top) * larger_side * np.finfo(float).eps)
    p = evals / total + 1e-10
    return {"lambda_max": top, "norm": total, "log_norm": np.log10(total),
            "log_spectral_norm": np.log10(top), "stable_rank": total / top,
            "matrix_rank": rank, "entropy": -np.sum(p * np.log(p)) / np.log(rank + 1e-10)}  # fmt: skip


@pytest.mark.parametrize("conv", ["reshape", "slices"])
def test_layer_metrics_equal_svd_by_hand(conv):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(6, 10, 3), nn.Flatten(), nn.Linear(40, 12))
    table = weight_spectra(model, conv=conv).set_index("layer")
    weight = model[0].weight.detach().double().numpy()  # (10, 6, 3, 3)
    if conv == "reshape":
        matrices, scale, shape = [weight.reshape(10, -1)], 1.0, (10, 54)
    else:
        matrices = [weight[:, :, i, j] for i in range(3) for j in range(3)]
        scale, shape = 0.5, (10, 6)
    expected = _metrics_by_hand(matrices, max(shape), scale)
    row = table.loc["0"]
    assert (row.rows, row.columns) == shape
    for key, value in expected.items():
        assert row[key] == pytest.approx(value, rel=1e-9), key
    dense = _metrics_by_hand([model[2].weight.detach().double().numpy()], 40)
    for key, value in dense.items():
        assert table.loc["2", key] == pytest.approx(value, rel=1e-9), key
    alpha = table.loc["0", "alpha"]
    assert table.loc["0", "alpha_weighted"] == pytest.approx(alpha * expected["log_spectral_norm"])


def test_degenerate_weights_are_defined():
    zero = nn.Linear(4, 3, bias=False)
    nn.init.zeros_(zero.weight)
    metrics = heavy_tail_metrics(layer_spectrum(zero).eigenvalues, 4)
    assert metrics["lambda_max"] == 0.0 and metrics["matrix_rank"] == 0
    assert metrics["stable_rank"] == 0.0 and math.isnan(metrics["alpha"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch: initialising an empty tensor
        empty = nn.Linear(4, 0)
    assert len(layer_spectrum(empty).eigenvalues) == 0
    assert heavy_tail_metrics([], 4)["num_evals"] == 0
    with pytest.raises(OptionError, match="conv="):
        layer_spectrum(nn.Conv2d(1, 2, 3), conv="fft")
    with pytest.raises(OptionError, match="no weight matrix"):
        layer_spectrum(nn.LSTM(2, 2))


def test_small_sample_fit_is_bias_corrected_with_xmin_by_ks():
    x = np.sort(np.random.default_rng(4).pareto(2.0, 15) + 1.0)
    best = None
    for i in range(len(x) - 1):
        tail = x[i:]
        if len(tail) < 8:
            continue
        alpha = 1 + (len(tail) - 1) / np.sum(np.log(tail / tail[0]))
        ks = np.max(np.abs(1 - (tail / tail[0]) ** (1 - alpha) - np.arange(len(tail)) / len(tail)))
        if best is None or ks < best[0]:
            best = (ks, alpha, tail[0], len(tail))
    fit = power_law_fit(x)
    assert (fit["D"], fit["alpha"], fit["xmin"], fit["num_pl_spikes"]) == pytest.approx(best)
