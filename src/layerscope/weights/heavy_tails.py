"""Heavy-tail metrics of an empirical spectral density, and the Marchenko-Pastur law.

The metrics are those that weightwatcher reports (Martin & Mahoney, "Implicit
self-regularization in deep neural networks", 2018; "Heavy-tailed universality predicts trends
in test accuracies", 2021), computed from the eigenvalues ``λ`` of ``W Wᵀ`` (the smaller side):

- ``alpha``: exponent of a power law ``p(λ) ∝ λ^-alpha`` fitted to the tail ``λ >= xmin`` by
  maximum likelihood, ``alpha = 1 + n / sum log(λ_i / xmin)``, with ``xmin`` the candidate
  (every eigenvalue above 1e-5 but the largest) whose fit has the smallest Kolmogorov-Smirnov
  distance ``D`` between the tail's empirical CDF and ``1 - (λ / xmin)^(1 - alpha)`` (Clauset,
  Shalizi & Newman 2009); with fewer than 20 eigenvalues the bias-corrected estimator
  ``1 + (n - 1) / sum log(λ_i / xmin)`` over tails of at least 8, xmin again by the smallest D
  (weightwatcher 0.7.7 computes a small-sample objective too, then picks by D, as here);
  ``sigma = (alpha - 1) / sqrt(n)``;
- ``num_pl_spikes``: eigenvalues ``>= xmin``;
- ``lambda_max`` (= ``spectral_norm``), ``log_spectral_norm = log10 lambda_max``,
  ``norm = sum λ`` (the squared Frobenius norm), ``log_norm = log10 norm``,
  ``alpha_weighted = alpha * log10 lambda_max``, ``log_alpha_norm = log10 sum λ^alpha``,
  ``stable_rank = norm / lambda_max``;
- ``matrix_rank``: singular values above ``max(s) * N * eps`` (numpy's rule; N the larger side);
- ``entropy``: ``-sum p log p / log(rank)`` with ``p = λ / sum λ`` (both offset by 1e-10, as
  weightwatcher), 1 for a flat spectrum.

Marchenko-Pastur (003 section 3.3): for a (m, n) matrix of i.i.d. entries of variance ``s^2 / n``
and ``Q = n / m``, the eigenvalues of ``W Wᵀ`` have the density
``rho(λ) = Q / (2 pi s^2 λ) sqrt((λ+ - λ)(λ - λ-))`` on ``λ± = s^2 (1 ± Q^-1/2)^2``; for Q < 1 a
point mass ``1 - Q`` sits at 0 and the continuous part holds ``Q``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "EVALS_THRESHOLD",
    "heavy_tail_metrics",
    "marchenko_pastur_bounds",
    "marchenko_pastur_density",
    "power_law_fit",
]

#: Eigenvalues at or below this are left out of the power-law fit (weightwatcher's EVALS_THRESH).
EVALS_THRESHOLD = 1e-5
_SMALL_N = 20  # below this many candidates: the small-sample fit
_EPSILON = 1e-10


def _tail_ks(data: np.ndarray, alphas: np.ndarray, starts: np.ndarray, chunk: int = 256):
    """KS distance of each candidate tail ``data[i:]`` to its power law, vectorised in chunks of
    candidates (N^2 work, chunk * N memory)."""
    n_total = len(data)
    distances = np.ones(len(starts))
    for lo in range(0, len(starts), chunk):
        idx = starts[lo : lo + chunk]  # (c,)
        j = np.arange(n_total)[None, :]  # (1, N)
        inside = j >= idx[:, None]  # (c, N)
        n = (n_total - idx)[:, None].astype(np.float64)
        ratio = data[None, :] / data[idx][:, None]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            fitted = 1.0 - ratio ** (1.0 - alphas[lo : lo + chunk][:, None])
        empirical = (j - idx[:, None]) / n
        gap = np.where(inside, np.abs(fitted - empirical), -np.inf)
        distances[lo : lo + chunk] = gap.max(axis=1)
    return distances


def power_law_fit(eigenvalues, threshold: float = EVALS_THRESHOLD) -> dict[str, float]:
    """Power-law fit of the eigenvalues above ``threshold``: alpha, xmin, D, sigma, and the
    number of eigenvalues ``>= xmin`` (all of them, not only those above the threshold).

    Returns NaN values (and ``num_pl_spikes`` 0) when fewer than 2 eigenvalues pass.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> samples = (1 - rng.random(4000)) ** (-1 / 2.5)    # p(x) ~ x^-3.5 for x >= 1
        >>> round(power_law_fit(samples)["alpha"], 1)
        3.5
    """
    values = np.sort(np.asarray(eigenvalues, dtype=np.float64))
    data = values[values > threshold]
    nan = {"alpha": math.nan, "xmin": math.nan, "D": math.nan, "sigma": math.nan}
    if len(data) < 2:
        return {**nan, "num_pl_spikes": 0}
    if len(data) < _SMALL_N:
        alpha, xmin, distance, sigma = _fit_small(data)
    else:
        alpha, xmin, distance, sigma = _fit_standard(data)
    return {"alpha": alpha, "xmin": xmin, "D": distance, "sigma": sigma,
            "num_pl_spikes": int((values >= xmin).sum())}  # fmt: skip


def _tail_sums(data: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    logs = np.log(data)
    starts = np.arange(len(data) - 1)
    n = (len(data) - starts).astype(np.float64)
    suffix = np.cumsum(logs[::-1])[::-1][:-1]  # sum of logs from i on, i < N - 1
    return starts, n, suffix - n * logs[:-1]


def _fit_standard(data: np.ndarray) -> tuple[float, float, float, float]:
    starts, n, log_ratio_sums = _tail_sums(data)
    with np.errstate(divide="ignore", invalid="ignore"):
        alphas = 1.0 + n / log_ratio_sums
    distances = np.ones(len(starts))
    valid = alphas > 1
    distances[valid] = _tail_ks(data, alphas[valid], starts[valid])
    best = int(np.argmin(distances))
    sigma = (alphas[best] - 1.0) / math.sqrt(n[best])
    return float(alphas[best]), float(data[best]), float(distances[best]), float(sigma)


def _fit_small(data: np.ndarray) -> tuple[float, float, float, float]:
    """Bias-corrected fit for small samples: tails of >= 8, xmin by the smallest D."""
    starts, n, log_ratio_sums = _tail_sums(data)
    usable = (n >= 8) & (log_ratio_sums > 1e-12)
    alphas = np.zeros(len(starts))
    alphas[usable] = 1.0 + (n[usable] - 1.0) / log_ratio_sums[usable]
    fitted = usable & (alphas > 1.0)
    distances = np.ones(len(starts))
    if fitted.any():
        distances[fitted] = _tail_ks(data, alphas[fitted], starts[fitted])
        best = int(np.argmin(distances))
    else:
        best = 0
        whole = float(np.log(data).sum() - len(data) * np.log(data[0]))
        if whole <= 1e-12:
            return 1.0, float(data[0]), 1.0, 0.0
        alphas[0] = 1.0 + (len(data) - 1.0) / whole
        distances[0] = _tail_ks(data, alphas[:1], starts[:1])[0]
    sigma = (alphas[best] - 1.0) / math.sqrt(len(data) - best)
    return float(alphas[best]), float(data[best]), float(distances[best]), float(sigma)


def heavy_tail_metrics(eigenvalues, larger_side: int) -> dict[str, float]:
    """Every metric of the module docstring from one layer's eigenvalues (of W Wᵀ, all its
    matrices together) and the larger side N of its matrices.

    An all-zero spectrum gives zeros (and NaN alpha), never an error.

    Example:
        >>> metrics = heavy_tail_metrics([4.0, 1.0, 1.0], larger_side=3)
        >>> metrics["lambda_max"], metrics["stable_rank"], metrics["matrix_rank"]
        (4.0, 1.5, 3)
    """
    evals = np.sort(np.asarray(eigenvalues, dtype=np.float64))
    evals = np.clip(evals, 0.0, None)
    fit = power_law_fit(evals)
    total = float(evals.sum()) if len(evals) else 0.0
    lambda_max = float(evals.max()) if len(evals) else 0.0
    singular = np.sqrt(evals)
    tolerance = (singular.max() if len(singular) else 0.0) * larger_side * np.finfo(np.float64).eps
    rank = int(np.count_nonzero(singular > tolerance))
    metrics = {**fit, "lambda_max": lambda_max, "spectral_norm": lambda_max, "norm": total,
               "stable_rank": total / lambda_max if lambda_max > 0 else 0.0,
               "matrix_rank": rank, "num_evals": len(evals)}  # fmt: skip
    with np.errstate(divide="ignore"):
        metrics["log_norm"] = float(np.log10(total)) if total > 0 else -math.inf
        metrics["log_spectral_norm"] = float(np.log10(lambda_max)) if lambda_max > 0 else -math.inf
    metrics["alpha_weighted"] = fit["alpha"] * metrics["log_spectral_norm"]
    metrics["log_alpha_norm"] = (float(np.log10(np.sum(evals ** fit["alpha"])))
                                 if total > 0 and not math.isnan(fit["alpha"]) else math.nan)  # fmt: skip
    if total > 0:
        p = evals / total + _EPSILON
        metrics["entropy"] = float(-np.sum(p * np.log(p)) / np.log(rank + _EPSILON))
    else:
        metrics["entropy"] = math.nan
    return metrics


def marchenko_pastur_bounds(ratio: float, variance: float) -> tuple[float, float]:
    """``(λ-, λ+) = s^2 (1 ∓ Q^-1/2)^2`` for aspect ratio ``Q = n / m`` and scale ``s^2``.

    Example:
        >>> marchenko_pastur_bounds(4.0, 1.0)
        (0.25, 2.25)
    """
    if not ratio > 0 or not variance > 0:
        raise ValueError(f"Q and s^2 must be > 0, got Q={ratio}, s^2={variance}")
    root = 1.0 / math.sqrt(ratio)
    return variance * (1.0 - root) ** 2, variance * (1.0 + root) ** 2


def marchenko_pastur_density(x, ratio: float, variance: float) -> np.ndarray:
    """The continuous part of the MP density at ``x`` (0 outside the bulk); for Q < 1 it
    integrates to Q and the rest, ``1 - Q``, is the point mass at 0.

    Example:
        >>> from scipy.integrate import quad
        >>> lo, hi = marchenko_pastur_bounds(2.0, 1.0)
        >>> round(quad(lambda t: marchenko_pastur_density(t, 2.0, 1.0), lo, hi)[0], 6)
        1.0
    """
    lo, hi = marchenko_pastur_bounds(ratio, variance)
    x = np.asarray(x, dtype=np.float64)
    inside = (x > lo) & (x < hi) & (x > 0)
    safe = np.where(inside, x, 1.0)
    root = np.sqrt(np.clip((hi - safe) * (safe - lo), 0.0, None))
    return np.where(inside, ratio / (2.0 * math.pi * variance * safe) * root, 0.0)
