"""CCA, SVCCA, PWCCA and CKA against independent numpy implementations of the papers' formulas.

The references below are written from the equations, by a different route than the library:
CCA by whitening covariances (S_xx^-1/2 S_xy S_yy^-1/2, Raghu et al. 2017 eq. 1) where the library
uses orthonormal bases; CKA with explicit n x n Gram and centring matrices (Kornblith et al. 2019
eqs. 3-4) where the library works in feature space; the unbiased HSIC as printed in Nguyen et al.
2021 eq. 3 (Song et al. 2012) with explicit zero-diagonal Grams.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import pearsonr

from layerscope.similarity import (
    DegenerateInputError,
    FewSamplesWarning,
    SimilarityInputError,
    TooFewSamplesError,
    activation_matrix,
    cca,
    cka,
    pwcca,
    svcca,
)


# ------------------------------------------------------------------ independent references
def _inverse_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return vectors @ np.diag(values**-0.5) @ vectors.T


def reference_cca(x: np.ndarray, y: np.ndarray):
    """Canonical correlations from covariances: svd(S_xx^-1/2 S_xy S_yy^-1/2)."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    wx, wy = _inverse_sqrt(xc.T @ xc), _inverse_sqrt(yc.T @ yc)
    u, rho, vt = np.linalg.svd(wx @ (xc.T @ yc) @ wy, full_matrices=False)
    return rho, u, vt.T, xc, yc, wx, wy


def reference_svcca(x, y, variance=0.99):
    def reduce(a):
        ac = a - a.mean(0)
        u, s, _ = np.linalg.svd(ac, full_matrices=False)
        share = np.cumsum(s**2) / np.sum(s**2)
        k = int(np.searchsorted(share, variance - 1e-12)) + 1
        return u[:, :k] * s[:k]

    return reference_cca(reduce(x), reduce(y))[0]


def reference_pwcca(x, y, side="x"):
    """Morcos et al. 2018: alpha_i ~ sum_k |<h_i, x_k>| with h_i the whitened canonical variates."""
    rho, u, v, xc, yc, wx, wy = reference_cca(x, y)
    data, rotation, whitening = (xc, u, wx) if side == "x" else (yc, v, wy)
    variates = data @ whitening @ rotation  # (n, c)
    variates /= np.linalg.norm(variates, axis=0)
    alpha = np.abs(variates.T @ data).sum(axis=1)
    return float((alpha / alpha.sum()) @ rho)


def reference_cka(x, y):
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, gram_y = x @ x.T, y @ y.T

    def hsic(a, b):
        return np.trace(a @ h @ b @ h) / (n - 1) ** 2

    return hsic(k, gram_y) / np.sqrt(hsic(k, k) * hsic(gram_y, gram_y))


def reference_hsic1(k, gram_y):
    n = k.shape[0]
    k, gram_y = k.copy(), gram_y.copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(gram_y, 0.0)
    one = np.ones(n)
    return (
        np.trace(k @ gram_y)
        + (one @ k @ one) * (one @ gram_y @ one) / ((n - 1) * (n - 2))
        - 2.0 / (n - 2) * (one @ k @ gram_y @ one)
    ) / (n * (n - 3))


def reference_unbiased_cka(x, y):
    k, gram_y = x @ x.T, y @ y.T  # uncentred on purpose: HSIC_1 does not need centring
    return reference_hsic1(k, gram_y) / np.sqrt(
        reference_hsic1(k, k) * reference_hsic1(gram_y, gram_y)
    )


def related_pair(n=300, d1=6, d2=4, shared=3, noise=0.5, offset=0.0, seed=0):
    """x and y sharing a `shared`-dimensional signal; mixed, noisy, optionally uncentred."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(n, shared))
    x = np.hstack([signal, rng.normal(size=(n, d1 - shared))]) @ rng.normal(size=(d1, d1))
    y = signal @ rng.normal(size=(shared, d2)) + noise * rng.normal(size=(n, d2))
    return x + offset * rng.normal(size=d1), y - offset * rng.normal(size=d2)


SHAPES = [(6, 4), (4, 6), (5, 5)]  # wider first, wider second, equal
IDS = ["wider-first", "wider-second", "equal"]


# ------------------------------------------------------------------------- reference match
@pytest.mark.parametrize(("d1", "d2"), SHAPES, ids=IDS)
@pytest.mark.parametrize("offset", [0.0, 1e3], ids=["centred", "uncentred"])
def test_cca_matches_whitened_covariance_reference(d1, d2, offset):
    x, y = related_pair(d1=d1, d2=d2, offset=offset)
    result = cca(x, y)
    rho = reference_cca(x, y)[0]
    np.testing.assert_allclose(result.correlations, rho, atol=1e-10)
    assert result.mean == pytest.approx(rho.mean(), abs=1e-10)
    assert result.similarity == result.mean and float(result) == result.similarity
    assert (result.dims_x, result.dims_y, result.num_samples) == (d1, d2, 300)


@pytest.mark.parametrize(("d1", "d2"), SHAPES, ids=IDS)
@pytest.mark.parametrize("offset", [0.0, 1e3], ids=["centred", "uncentred"])
def test_svcca_matches_reference(d1, d2, offset):
    rng = np.random.default_rng(1)
    x, y = related_pair(d1=d1, d2=d2, offset=offset)
    # Low-variance directions that the 99% step must drop on both sides.
    x = np.hstack([x, 1e-3 * rng.normal(size=(300, 2))])
    y = np.hstack([y, 1e-3 * rng.normal(size=(300, 2))])
    result = svcca(x, y)
    expected = reference_svcca(x, y)
    np.testing.assert_allclose(result.correlations, expected, atol=1e-9)
    assert result.similarity == pytest.approx(expected.mean(), abs=1e-9)
    assert result.dims_x < d1 + 2 and result.dims_y < d2 + 2


@pytest.mark.parametrize(("d1", "d2"), SHAPES, ids=IDS)
@pytest.mark.parametrize("offset", [0.0, 1e3], ids=["centred", "uncentred"])
@pytest.mark.parametrize("side", ["x", "y"])
def test_pwcca_matches_reference_for_both_sides_and_widths(d1, d2, offset, side):
    x, y = related_pair(d1=d1, d2=d2, offset=offset)
    result = pwcca(x, y, weights_from=side)
    assert result.similarity == pytest.approx(reference_pwcca(x, y, side), abs=1e-9)
    assert result.weights.sum() == pytest.approx(1.0) and (result.weights >= 0).all()
    assert result.weights_from == side
    assert result.mean == pytest.approx(reference_cca(x, y)[0].mean(), abs=1e-10)


def test_pwcca_smaller_side_and_asymmetry():
    x, y = related_pair(d1=6, d2=4)
    assert pwcca(x, y, weights_from="smaller").weights_from == "y"
    assert pwcca(y, x, weights_from="smaller").weights_from == "x"
    assert pwcca(x, y).similarity != pytest.approx(pwcca(y, x).similarity, abs=1e-6)
    assert pwcca(x, y).similarity == pytest.approx(pwcca(y, x, weights_from="y").similarity)


@pytest.mark.parametrize(("n", "d1", "d2"), [(200, 6, 4), (40, 70, 55)], ids=["features", "gram"])
@pytest.mark.parametrize("offset", [0.0, 1e3], ids=["centred", "uncentred"])
def test_cka_matches_gram_reference(n, d1, d2, offset):
    x, y = related_pair(n=n, d1=d1, d2=d2, shared=3, offset=offset)
    assert cka(x, y, unbiased=False) == pytest.approx(reference_cka(x, y), abs=1e-9)


@pytest.mark.parametrize(("n", "d1", "d2"), [(200, 6, 4), (40, 70, 55)], ids=["features", "gram"])
@pytest.mark.parametrize("offset", [0.0, 30.0], ids=["centred", "uncentred"])
def test_unbiased_cka_matches_song_estimator(n, d1, d2, offset):
    x, y = related_pair(n=n, d1=d1, d2=d2, shared=3, offset=offset)
    assert cka(x, y, unbiased=True) == pytest.approx(reference_unbiased_cka(x, y), abs=1e-8)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(5, 40),
    d1=st.integers(1, 50),
    d2=st.integers(1, 50),
    seed=st.integers(0, 2**16),
)
def test_cka_both_routes_agree_with_reference_for_any_shape(n, d1, d2, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d1)) + 2.0
    y = x[:, :1] @ rng.normal(size=(1, d2)) + rng.normal(size=(n, d2))
    assert cka(x, y, unbiased=False) == pytest.approx(reference_cka(x, y), abs=1e-9)
    assert cka(x, y, unbiased=True) == pytest.approx(reference_unbiased_cka(x, y), abs=1e-7)


# ------------------------------------------------------------------ invariances, identities
MEASURES = {
    "cca": lambda x, y: cca(x, y).similarity,
    "svcca": lambda x, y: svcca(x, y).similarity,
    "pwcca": lambda x, y: pwcca(x, y).similarity,
    "cka": cka,
    "unbiased_cka": lambda x, y: cka(x, y, unbiased=True),
}


@pytest.mark.parametrize("name", MEASURES)
def test_self_similarity_is_one(name):
    x, _ = related_pair(offset=5.0)
    assert MEASURES[name](x, x) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("unbiased", [False, True])
def test_cka_invariant_to_orthogonal_maps_and_isotropic_scaling_only(unbiased):
    rng = np.random.default_rng(3)
    x, y = related_pair(d1=6, d2=4)
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    base = cka(x, y, unbiased=unbiased)
    assert cka(x, 7.5 * y @ q, unbiased=unbiased) == pytest.approx(base, abs=1e-12)
    assert cka(0.01 * x, y, unbiased=unbiased) == pytest.approx(base, abs=1e-12)
    # A general invertible map changes CKA: the invariance tests above can fail.
    stretch = np.diag([10.0, 1.0, 1.0, 0.1])
    assert abs(cka(x, y @ stretch, unbiased=unbiased) - base) > 1e-3


def test_cca_invariant_to_invertible_linear_maps_and_translation():
    rng = np.random.default_rng(4)
    x, y = related_pair(d1=6, d2=4)
    a = rng.normal(size=(6, 6)) + 3 * np.eye(6)
    b = np.diag([100.0, 1.0, 0.01, 5.0]) @ rng.normal(size=(4, 4))
    base = cca(x, y).correlations
    np.testing.assert_allclose(cca(x @ a + 40.0, y - 3.0).correlations, base, atol=1e-10)
    # b spreads y's directions over 1e4 (condition number of y @ b: 3e5). Whitening through the
    # covariance products rounds to about cond^2 * eps of that (docs/similarity.md), not 1e-10.
    scaled = cca(x @ a + 40.0, y @ b - 3.0).correlations
    bound = np.linalg.cond(y @ b) ** 2 * np.finfo(np.float64).eps
    np.testing.assert_allclose(scaled, base, atol=bound)
    np.testing.assert_allclose(cca(y, x).correlations, base, atol=1e-12)  # symmetric


def test_dimension_one_closed_forms():
    rng = np.random.default_rng(5)
    x = rng.normal(size=500) + 4.0
    y = -0.7 * x + rng.normal(size=500)
    r = pearsonr(x, y).statistic
    assert cca(x, y).similarity == pytest.approx(abs(r), abs=1e-12)
    assert svcca(x, y).similarity == pytest.approx(abs(r), abs=1e-12)
    assert pwcca(x, y).similarity == pytest.approx(abs(r), abs=1e-12)
    assert cka(x, y, unbiased=False) == pytest.approx(
        r**2, abs=1e-12
    )  # cos^2 of the centred vectors


def test_mean_averages_every_coefficient_not_the_leading_98_percent():
    """google/svcca reports the mean of the leading coefficients holding 98% of their sum."""
    rng = np.random.default_rng(6)
    shared = rng.normal(size=(20000, 1))
    x = np.hstack([shared, rng.normal(size=(20000, 1))])
    y = np.hstack([shared, rng.normal(size=(20000, 1))])
    result = cca(x, y)
    assert result.correlations[0] == pytest.approx(1.0, abs=1e-12)
    assert result.correlations[1] < 0.03
    assert result.mean == pytest.approx(np.mean(result.correlations))
    assert result.mean < 0.52  # the truncated "mean" would be 1.0


def test_float32_precision_and_torch_inputs_agree_with_float64():
    x, y = related_pair(n=2000, d1=20, d2=12, shared=5)
    xt, yt = torch.from_numpy(x).float(), torch.from_numpy(y).float()
    assert cca(xt, yt).mean == pytest.approx(cca(x, y).mean, abs=1e-5)
    for name, function in MEASURES.items():
        low = (
            function(torch.from_numpy(x), yt) if name != "cka" else cka(xt, yt, precision="float32")
        )
        assert low == pytest.approx(function(x, y), abs=1e-4), name


@pytest.mark.parametrize("padded", [False, True], ids=["full-rank", "dead-and-duplicated"])
def test_float32_arithmetic_agrees_with_float64_in_the_cca_family(padded):
    # precision="float32" runs the d x d decompositions in float32 as well; their rounding is
    # that of the float32 products (measured: differences to float64 up to 3e-5 here, as large
    # with float64 decompositions of the float32 products).
    x, y = related_pair(n=2000, d1=20, d2=12, shared=5)
    if padded:  # a combination of neurons, a dead one and a constant one: eigh's route
        x = np.hstack([x, 2 * x[:, :1] - x[:, 3:4], np.zeros((2000, 1)), np.full((2000, 1), 3.0)])
    for function in (cca, svcca, pwcca):
        exact, low = function(x, y), function(x, y, precision="float32")
        assert (low.dims_x, low.dims_y) == (exact.dims_x, exact.dims_y), function.__name__
        np.testing.assert_allclose(low.correlations, exact.correlations, atol=1e-4)
        assert low.similarity == pytest.approx(exact.similarity, abs=1e-4), function.__name__


def test_float32_arithmetic_keeps_the_digits_of_offset_float64_inputs():
    # Centring happens before the narrowing to float32: with a 1e6 offset, rounding first would
    # leave about 0.06 of noise on unit-variance features.
    x, y = related_pair(n=2000, d1=20, d2=12, shared=5)
    shifted_x, shifted_y = x + 1e6, y - 3e5
    low_precision = {
        "cca": lambda a, b: cca(a, b, precision="float32").similarity,
        "svcca": lambda a, b: svcca(a, b, precision="float32").similarity,
        "pwcca": lambda a, b: pwcca(a, b, precision="float32").similarity,
        "biased_cka": lambda a, b: cka(a, b, unbiased=False, precision="float32"),
        "unbiased_cka": lambda a, b: cka(a, b, precision="float32"),
    }
    exact = {**MEASURES, "biased_cka": lambda a, b: cka(a, b, unbiased=False)}
    for name, function in low_precision.items():
        low = function(shifted_x, shifted_y)
        assert low == pytest.approx(exact[name](x, y), abs=1e-4), name


# ---------------------------------------------------------------------------- robustness
def test_rank_deficient_and_dead_neurons_change_nothing_in_cca():
    rng = np.random.default_rng(7)
    x, y = related_pair(d1=6, d2=4)
    padded = np.hstack([x, 2 * x[:, :2] - x[:, 3:4], np.zeros((300, 2)), np.full((300, 1), 3.0)])
    base, padded_result = cca(x, y), cca(padded, y)
    assert padded_result.dims_x == 6
    np.testing.assert_allclose(padded_result.correlations, base.correlations, atol=1e-9)
    for function in (svcca, pwcca):
        assert np.isfinite(function(padded, y).similarity)
    assert np.isfinite(cka(padded, y, unbiased=False)) and np.isfinite(
        cka(padded, y, unbiased=True)
    )
    # float32 activations: a neuron that is constant up to float32 rounding is dropped too.
    near_constant = (3.0 + 1e-9 * rng.normal(size=(300, 1))).astype(np.float32)
    x32 = np.hstack([x.astype(np.float32), near_constant])
    assert cca(x32, y).dims_x == 6


def test_near_constant_neurons_give_finite_values_everywhere():
    rng = np.random.default_rng(8)
    x, y = related_pair(d1=6, d2=4)
    tiny = 5.0 + 1e-7 * rng.normal(size=(300, 2))  # above float64 rounding: a real direction
    wide = np.hstack([x, tiny])
    for name, function in MEASURES.items():
        value = function(wide, y)
        assert np.isfinite(value) and -0.1 <= value <= 1.0 + 1e-12, name


def test_rtol_is_a_documented_knob():
    rng = np.random.default_rng(9)
    x, y = related_pair(d1=6, d2=4)
    weak = np.hstack([x, 1e-6 * rng.normal(size=(300, 1))])
    assert cca(weak, y).dims_x == 7
    assert cca(weak, y, rtol=1e-5).dims_x == 6


def test_more_neurons_than_samples_is_an_error_with_the_fix():
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=(50, 40)), rng.normal(size=(50, 30))
    for function in (cca, svcca, pwcca):
        with pytest.raises(TooFewSamplesError, match=r"cka\(\)") as info:
            function(x, y)
        assert "samples" in str(info.value)
    assert np.isfinite(cka(x, y, unbiased=False)) and cka(x, y, unbiased=False) == pytest.approx(
        reference_cka(x, y)
    )


def test_few_samples_per_direction_warns_with_the_fix():
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(100, 20)), rng.normal(size=(100, 10))
    with pytest.warns(FewSamplesWarning, match="at least 201 samples"):
        cca(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cca(rng.normal(size=(1000, 20)), rng.normal(size=(1000, 10)))


def test_constant_representation_is_a_clear_error():
    x, _ = related_pair()
    for function in (cca, svcca, pwcca, cka):
        with pytest.raises(DegenerateInputError, match=r"constant|variance"):
            function(x, np.ones((300, 3)))


# ------------------------------------------------------------------- conv and input errors
def test_conv_activations_positions_as_samples_or_pooled():
    rng = np.random.default_rng(12)
    a = torch.from_numpy(rng.normal(size=(20, 3, 5, 5)))
    b = torch.from_numpy(rng.normal(size=(20, 4, 5, 5))) + a[:, :1]
    positions = lambda t: t.permute(0, 2, 3, 1).reshape(-1, t.shape[1]).numpy()  # noqa: E731
    assert cka(a, b, spatial="positions", unbiased=False) == pytest.approx(
        reference_cka(positions(a), positions(b)), abs=1e-10
    )
    np.testing.assert_allclose(
        cca(a, b, spatial="positions").correlations,
        reference_cca(positions(a), positions(b))[0],
        atol=1e-10,
    )
    pooled = lambda t: t.mean(dim=(2, 3)).numpy()  # noqa: E731
    assert cka(a, b, spatial="pool", unbiased=False) == pytest.approx(
        reference_cka(pooled(a), pooled(b))
    )
    flat = lambda t: t.reshape(20, -1).numpy()  # noqa: E731
    assert cka(a, b, spatial="flatten", unbiased=False) == pytest.approx(
        reference_cka(flat(a), flat(b))
    )
    with pytest.raises(SimilarityInputError, match="spatial='positions'"):
        cka(a, b)
    with pytest.raises(SimilarityInputError, match="spatial='pool'"):
        cka(a, b[:, :, :4], spatial="positions")  # different grids: positions differ


def test_activation_matrix_shapes():
    assert activation_matrix(np.arange(5.0)).shape == (5, 1)
    assert activation_matrix(torch.zeros(2, 3, 4), "positions").shape == (8, 3)
    with pytest.raises(TypeError, match="numeric"):
        activation_matrix(np.array(["a", "b"]))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda x: cca(x, x[:-1]), SimilarityInputError, "same samples"),
        (lambda x: cka(x, np.where(x > 2, np.nan, x)), SimilarityInputError, "NaN"),
        (lambda x: cca(x, x, precision="float16"), SimilarityInputError, "precision"),
        (lambda x: svcca(x, x, variance=1.5), SimilarityInputError, "variance"),
        (lambda x: svcca(x, x, dims=50), SimilarityInputError, "dims=50"),
        (lambda x: svcca(x, x, dims=0), SimilarityInputError, "positive"),
        (lambda x: pwcca(x, x, weights_from="z"), SimilarityInputError, "weights_from"),
        (lambda x: cka(x[:3], x[:3], unbiased=True), TooFewSamplesError, "at least 4"),
        (lambda x: cka(x, [[object()]] * 300), TypeError, "numeric"),
    ],
)
def test_bad_inputs_raise_typed_errors(call, error, match):
    x, _ = related_pair()
    with pytest.raises(error, match=match):
        call(x)


def test_svcca_fixed_dims():
    x, y = related_pair(d1=6, d2=4)
    result = svcca(x, y, dims=(3, 2))
    assert (result.dims_x, result.dims_y, result.correlations.size) == (3, 2, 2)


def test_pwcca_reference_tells_the_unwhitened_variant_apart():
    """Without S_xx^-1/2 (google/svcca's compute_pwcca) the weights differ on correlated neurons,
    so the reference comparison above would catch that mistake."""
    x, y = related_pair(d1=6, d2=4)
    rho, u, _, xc, _, _, _ = reference_cca(x, y)
    unwhitened = xc @ u  # the canonical directions applied to raw neurons, no whitening
    q, _ = np.linalg.qr(unwhitened)
    alpha = np.abs(q.T @ xc).sum(axis=1)
    assert abs((alpha / alpha.sum()) @ rho - pwcca(x, y).similarity) > 1e-3


def test_decompositions_leave_torch_thread_count_as_it_was():
    # The d x d part runs on one thread; the caller's setting is restored, after an error too.
    rng = np.random.default_rng(11)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x, y = related_pair(d1=6, d2=4)
        one_thread = [float(f(x, y)) for f in (cca, svcca, pwcca)]
        assert torch.get_num_threads() == 2
        with pytest.raises(TooFewSamplesError):
            cca(rng.normal(size=(50, 40)), rng.normal(size=(50, 30)))
        assert torch.get_num_threads() == 2
        torch.set_num_threads(1)
        assert [float(f(x, y)) for f in (cca, svcca, pwcca)] == pytest.approx(one_thread)
    finally:
        torch.set_num_threads(before)


def test_pwcca_weights_ignore_dead_and_constant_neurons():
    # A dead or constant neuron is zero once centred, so it adds nothing to any weight
    # sum_k |<h_i, x_k>|: PWCCA equals the reference on the neurons that vary.
    x, y = related_pair(d1=6, d2=4)
    padded = np.hstack([np.zeros((300, 1)), x[:, :3], np.full((300, 1), 3.0), x[:, 3:]])
    for side, wide, narrow in (("x", (padded, y), (x, y)), ("y", (y, padded), (y, x))):
        result = pwcca(*wide, weights_from=side)
        assert result.similarity == pytest.approx(reference_pwcca(*narrow, side), abs=1e-9)
