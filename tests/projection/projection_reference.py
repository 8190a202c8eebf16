"""Independent float64 references for the projection tests (numpy only, no layerscope)."""

from __future__ import annotations

import numpy as np


def numpy_k(eigenvalues: np.ndarray, delta: float) -> int:
    """The smallest k whose top-k eigenvalues reach delta of the total, written independently."""
    values = np.clip(np.sort(eigenvalues)[::-1], 0, None)
    total = values.sum()
    if total == 0:
        return 0
    share = np.cumsum(values) / total
    return int(np.nonzero(share >= delta - 1e-12)[0][0]) + 1


def numpy_projection(samples: np.ndarray, fit: np.ndarray, delta: float, centered=True):
    """mu + (x - mu) P^T P (or x P^T P) from numpy's eigendecomposition of the fit samples;
    returns the projected samples and k."""
    mean = fit.mean(axis=0)
    covariance = np.cov(fit, rowvar=False, bias=True)
    values, vectors = np.linalg.eigh(covariance)
    order = np.argsort(values)[::-1]
    k = numpy_k(values, delta)
    kept = vectors[:, order[:k]]  # (d, k)
    projector = kept @ kept.T
    if not centered:
        return samples @ projector, k
    return mean + (samples - mean) @ projector, k
