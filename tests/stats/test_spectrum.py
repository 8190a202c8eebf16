"""Spectrum statistics on covariances with known eigenvalues, against closed forms and numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from layerscope.errors import UnknownNameError
from layerscope.stats import (
    CovarianceResult,
    StreamingCovariance,
    compute_statistics,
    effective_rank,
    embed,
    intrinsic_dimension,
    list_statistics,
    log_determinant,
    participation_ratio,
    register_statistic,
    saturation,
)
from layerscope.stats import spectrum as spectrum_module


def covariance_with_eigenvalues(eigenvalues, seed=0) -> CovarianceResult:
    """Q diag(lambda) Q^T with a random orthogonal Q: the eigenvalues are known exactly."""
    d = len(eigenvalues)
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    matrix = q @ np.diag(np.asarray(eigenvalues, dtype=np.float64)) @ q.T
    matrix = (matrix + matrix.T) / 2
    return CovarianceResult(
        count=1000,
        mean=torch.zeros(d, dtype=torch.float64),
        covariance=torch.from_numpy(matrix),
        num_features=d,
    )


def reference_intrinsic_dimension(eigenvalues, delta):
    """Straight from the definition, with exact fractions where the inputs are exact."""
    values = sorted(eigenvalues, reverse=True)
    total = sum(values)
    for k in range(1, len(values) + 1):
        if sum(values[:k]) >= delta * total - 1e-12 * total:
            return k
    return len(values)


@pytest.mark.parametrize(
    ("eigenvalues", "delta", "expected"),
    [
        ([10.0, 1.0, 0.5, 0.1], 0.99, 3),  # 11.5 / 11.6 = 0.991
        ([10.0, 1.0, 0.5, 0.1], 0.995, 4),
        ([10.0, 1.0, 0.5, 0.1], 0.9, 2),
        ([5.0, 0.0, 0.0, 0.0], 0.99, 1),
        ([1.0] * 8, 0.5, 4),  # tie exactly at the threshold: 4/8 == 0.5
        ([1.0] * 10, 0.3, 3),  # 0.1 + 0.1 + 0.1 != 0.3 in float64
        ([0.5, 0.3, 0.2], 0.8, 2),
        ([3.0, 2.0, 1.0], 1.0, 3),
        ([1.0, 1.0, 1.0, 1.0], 0.75, 3),
    ],
)
def test_intrinsic_dimension_known_eigenvalues(eigenvalues, delta, expected):
    assert reference_intrinsic_dimension(eigenvalues, delta) == expected
    assert intrinsic_dimension(eigenvalues, delta) == expected
    assert intrinsic_dimension(list(reversed(eigenvalues)), delta) == expected
    stats = compute_statistics(covariance_with_eigenvalues(eigenvalues), delta=delta)
    assert stats["intrinsic_dimension"] == expected
    assert stats["saturation"] == pytest.approx(expected / len(eigenvalues))


def test_intrinsic_dimension_is_at_least_one_unlike_delve():
    # Delve 0.1.50 counts eigenvalues strictly below the threshold: 0 for a rank-1 layer.
    assert intrinsic_dimension([1.0, 0.0, 0.0], 0.99) == 1
    assert saturation([1.0, 0.0, 0.0], 0.99) == pytest.approx(1 / 3)


def test_delta_is_validated():
    with pytest.raises(ValueError, match="delta"):
        intrinsic_dimension([1.0, 2.0], 0.0)
    with pytest.raises(ValueError, match="delta"):
        compute_statistics(covariance_with_eigenvalues([1.0]), delta=1.5)


def test_scalar_statistics_against_closed_forms():
    eigenvalues = np.array([4.0, 2.0, 1.0, 0.5, 0.25])
    stats = compute_statistics(covariance_with_eigenvalues(eigenvalues, seed=3))
    total = eigenvalues.sum()
    p = eigenvalues / total
    assert stats["trace"] == pytest.approx(total, rel=1e-12)
    assert stats["diagonal_trace"] == pytest.approx(total, rel=1e-12)
    assert stats["log_determinant"] == pytest.approx(np.log(eigenvalues).sum(), rel=1e-10)
    assert stats["participation_ratio"] == pytest.approx(total**2 / np.sum(eigenvalues**2))
    assert stats["effective_rank"] == pytest.approx(np.exp(-np.sum(p * np.log(p))))
    assert stats["intrinsic_dimension"] == 5
    assert stats.flags == frozenset()


def test_statistics_on_sampled_data_match_numpy():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(5000, 6)) @ np.diag([5, 3, 1, 0.3, 0.1, 0.01])
    cov = StreamingCovariance(6)
    cov.update(torch.from_numpy(x))
    stats = compute_statistics(cov.compute(), delta=0.95)
    eigenvalues = np.sort(np.linalg.eigvalsh(np.cov(x.T, ddof=0)))[::-1]
    assert stats["intrinsic_dimension"] == reference_intrinsic_dimension(list(eigenvalues), 0.95)
    sign, logdet = np.linalg.slogdet(np.cov(x.T, ddof=0))
    assert sign > 0 and stats["log_determinant"] == pytest.approx(logdet, rel=1e-9)


def test_pure_functions_on_simple_spectra():
    assert participation_ratio([2.0, 2.0, 2.0, 2.0]) == pytest.approx(4.0)
    assert effective_rank([1.0, 1.0, 1.0, 1.0]) == pytest.approx(4.0)
    assert effective_rank([1.0, 0.0]) == pytest.approx(1.0)
    assert log_determinant([2.0, 3.0]) == pytest.approx(math.log(6.0))
    assert log_determinant([1.0, 1e-30]) == -math.inf  # below the rank tolerance
    # numpy and torch inputs are accepted alike
    assert intrinsic_dimension(np.array([3.0, 1.0]), 0.7) == intrinsic_dimension(
        torch.tensor([3.0, 1.0]), 0.7
    )


def test_zero_variance_is_defined_and_flagged():
    cov = StreamingCovariance(3)
    cov.update(torch.ones(10, 3))  # a dead layer: constant output
    stats = compute_statistics(cov.compute())
    assert stats["saturation"] == 0.0
    assert stats["intrinsic_dimension"] == 0.0
    assert stats["participation_ratio"] == 0.0
    assert stats["effective_rank"] == 0.0
    assert stats["log_determinant"] == -math.inf
    assert {"zero_variance", "singular"} <= stats.flags
    assert not any(isinstance(v, float) and math.isnan(v) for v in stats.values.values())


def test_fewer_than_two_samples_gives_no_values_and_a_reason():
    cov = StreamingCovariance(3)
    cov.update(torch.ones(1, 3))
    stats = compute_statistics(cov.compute())
    assert stats.values == {}
    assert "at least 2 samples" in stats.reason


def test_rejected_batches_are_flagged():
    cov = StreamingCovariance(2)
    cov.update(torch.randn(10, 2))
    cov.update(torch.full((3, 2), float("nan")))
    with pytest.warns(RuntimeWarning):
        result = cov.compute()
    assert "rejected_batches" in compute_statistics(result).flags


def test_registry_adds_user_statistics_and_rejects_duplicates():
    name = "test_largest_eigenvalue"

    @register_statistic(name)
    def largest(spectrum):
        return float(spectrum.eigenvalues[0])

    try:
        stats = compute_statistics(covariance_with_eigenvalues([3.0, 1.0]), [name, "saturation"])
        assert stats[name] == pytest.approx(3.0)
        with pytest.raises(ValueError, match="already registered"):
            register_statistic(name)(largest)
    finally:
        spectrum_module.STATISTICS.remove(name)


def test_unknown_statistic_suggests_close_names():
    with pytest.raises(UnknownNameError, match="Did you mean 'saturation'"):
        compute_statistics(covariance_with_eigenvalues([1.0, 1.0]), ["saturaton"])


def test_one_eigendecomposition_feeds_all_statistics(monkeypatch):
    calls = []
    original = torch.linalg.eigvalsh

    def counting(matrix):
        calls.append(matrix.shape)
        return original(matrix)

    monkeypatch.setattr(torch.linalg, "eigvalsh", counting)
    compute_statistics(
        covariance_with_eigenvalues([3.0, 2.0, 1.0]), list_statistics(scalar_only=True)
    )
    assert len(calls) == 1


def test_non_scalar_extras():
    result = covariance_with_eigenvalues([9.0, 4.0, 1.0], seed=5)
    stats = compute_statistics(result, ["eigenvalues", "covariance", "top_eigenvectors"])
    np.testing.assert_allclose(stats["eigenvalues"], [9.0, 4.0, 1.0], rtol=1e-12)
    assert torch.equal(stats["covariance"], result.covariance)
    vectors = stats["top_eigenvectors"].numpy()
    matrix = result.covariance.numpy()
    np.testing.assert_allclose(matrix @ vectors[:, 0], 9.0 * vectors[:, 0], atol=1e-10)
    np.testing.assert_allclose(matrix @ vectors[:, 1], 4.0 * vectors[:, 1], atol=1e-10)


def test_embed_projects_on_eigenvectors_not_covariance_rows():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(400, 4)) @ rng.normal(size=(4, 4)) + 2.0
    cov = StreamingCovariance(4)
    cov.update(torch.from_numpy(x))
    z = embed(torch.from_numpy(x), cov.compute()).numpy()
    values, vectors = np.linalg.eigh(np.cov(x.T, ddof=0))
    expected = (x - x.mean(0)) @ vectors[:, ::-1][:, :2]
    # Eigenvectors are defined up to sign.
    np.testing.assert_allclose(np.abs(z), np.abs(expected), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(z.var(axis=0), values[::-1][:2], rtol=1e-8)
