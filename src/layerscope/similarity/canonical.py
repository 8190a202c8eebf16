"""Canonical correlation between two activation matrices: CCA, SVCCA, PWCCA (SPEC C9).

Section and equation numbers below are those of the papers' arXiv versions (see
docs/similarity.md for a caveat on checking them). Definitions followed (published
implementations disagree on the details; these are the papers'):

- **CCA** (Raghu et al. 2017, sec. 2; Kornblith et al. 2019, sec. 4 and Table 1). The
  canonical correlations rho_1 >= ... >= rho_c, c = min(r_x, r_y), are the singular values of
  ``Q_x^T Q_y``, where Q_x (n, r_x) and Q_y are orthonormal bases of the column spaces of the
  centred X and Y (Björck & Golub 1973): this equals the singular values of
  ``S_xx^-1/2 S_xy S_yy^-1/2`` whenever the covariances are invertible, without inverting them.
  The summary is the mean of **all** c coefficients, rho_bar = (1/c) sum rho_i
  (= ||Q_y^T Q_x||_* / c, Kornblith et al. 2019, Table 1). google/svcca's ``"mean"`` averages only
  the leading coefficients that hold 98% of their sum; this one does not.
- **SVCCA** (Raghu et al. 2017, sec. 2, steps 1-2): keep on each side the top singular directions
  of the centred matrix that explain ``variance`` (default 0.99) of its variance, variance meaning
  squared singular values (the k(delta) of :func:`layerscope.stats.intrinsic_dimension`); then CCA
  between the reduced matrices, summarised by the plain mean.
- **PWCCA** (Morcos et al. 2018, projection weighting): rho_PW = sum_i alpha_i rho_i with
  alpha_i = a_i / sum_j a_j and a_i = sum_k |<h_i, x_k>|, where h_i is the i-th canonical
  variate of X (unit norm, ``h_i = X_c S_xx^-1/2 u_i``, whitening included) and x_k the k-th
  centred neuron of X. The weights come from ``x`` (the paper's L1) unless ``weights_from``
  says otherwise; PWCCA is therefore not symmetric. google/svcca's ``compute_pwcca`` drops the
  whitening factor S_xx^-1/2, adds the means back before orthonormalising (so uncentred data
  changes its answer) and raises IndexError when the first input has more neurons.

Robustness. These measures drop singular directions of the centred input whose singular value is
at most ``rtol * ||x||_F`` (Frobenius norm of the *raw* input): with the default ``rtol``, the
machine epsilon of the input dtype (or of ``precision`` if coarser), such a direction is
indistinguishable from the rounding error of the input itself. Constant, dead and duplicated
neurons therefore cost nothing and never produce NaN. CCA-type measures need many more samples
than kept directions: when r_x + r_y > n - 1, ``r_x + r_y - (n - 1)`` correlations equal 1 by
counting alone and :class:`~layerscope.errors.TooFewSamplesError` is raised; when
max(r_x, r_y) / (n - 1) exceeds :data:`SAMPLE_RATIO_WARNING`, the mean squared canonical
correlation of *independent* data (about max(r_x, r_y) / (n - 1)) is already large and
:class:`~layerscope.errors.FewSamplesWarning` says so.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from layerscope.errors import (
    DegenerateInputError,
    FewSamplesWarning,
    SimilarityInputError,
    TooFewSamplesError,
)
from layerscope.similarity.inputs import Precision, Spatial, centre, pair
from layerscope.stats.spectrum import DEFAULT_DELTA, intrinsic_dimension

__all__ = ["SAMPLE_RATIO_WARNING", "CCAResult", "cca", "pwcca", "svcca"]

WeightsFrom = Literal["x", "y", "smaller"]

#: Warn when max(r_x, r_y) / (n - 1), the mean squared canonical correlation that independent
#: random data would already reach, exceeds this (about n < 10 kept directions per sample).
SAMPLE_RATIO_WARNING = 0.1


@dataclass(frozen=True, eq=False)
class CCAResult:
    """What :func:`cca`, :func:`svcca` and :func:`pwcca` return; ``float(result)`` is the value.

    Attributes:
        method: ``"cca"``, ``"svcca"`` or ``"pwcca"``.
        similarity: the headline value in [0, 1]: the mean of ``correlations`` for CCA and SVCCA,
            the projection-weighted mean for PWCCA.
        correlations: (c,) canonical correlations, descending, in [0, 1], float64 numpy.
        mean: their plain mean (Raghu et al.'s rho_bar), also reported for PWCCA.
        weights: (c,) PWCCA weights alpha_i summing to 1, else ``None``.
        dims_x: directions of ``x`` used (rank above the threshold; for SVCCA, kept by the SVD).
        dims_y: the same for ``y``.
        num_samples: n.
        weights_from: which side's neurons gave the PWCCA weights (``"x"`` / ``"y"``), else None.
    """

    method: str
    similarity: float
    correlations: np.ndarray
    mean: float
    weights: np.ndarray | None
    dims_x: int
    dims_y: int
    num_samples: int
    weights_from: str | None = None

    def __float__(self) -> float:
        return self.similarity


@dataclass
class _Basis:
    """Thin SVD of a centred matrix above the rank threshold: X_c ~= q @ diag(s) @ vh."""

    q: torch.Tensor  # (n, r), orthonormal columns
    s: torch.Tensor  # (r,), descending
    vh: torch.Tensor  # (r, d)


def _basis(raw: torch.Tensor, eps: float, rtol: float | None, name: str) -> _Basis:
    centred = centre(raw)
    tall = centred.shape[0] >= centred.shape[1]
    if tall:
        # Householder QR, then the SVD of the small (d, d) R: as accurate as the SVD of the
        # tall matrix (both backward stable) and about 25% faster on CPU, more on GPU.
        q, r = torch.linalg.qr(centred)  # (n, d), (d, d)
        u, s, vh = torch.linalg.svd(r)
    else:
        q, s, vh = torch.linalg.svd(centred, full_matrices=False)
    tolerance = (eps if rtol is None else rtol) * float(torch.linalg.vector_norm(raw))
    keep = s > tolerance
    if not bool(keep.any()):
        raise DegenerateInputError(
            f"{name} has no variance above the rank threshold ({int(raw.shape[1])} features, "
            f"every sample equal up to rounding); similarity with a constant representation is "
            f"undefined. Exclude this layer or pass other samples"
        )
    # Left singular vectors of the centred matrix, kept ones only: (n, r).
    q = q @ u[:, keep] if tall else q[:, keep]
    return _Basis(q, s[keep], vh[keep])


def _check_sample_size(n: int, dims_x: int, dims_y: int, method: str) -> None:
    if dims_x + dims_y > n - 1:
        forced = dims_x + dims_y - (n - 1)
        raise TooFewSamplesError(
            f"{method}: x keeps {dims_x} directions and y keeps {dims_y}, but the {n} samples "
            f"span only {n - 1} centred dimensions, so at least {forced} canonical correlations "
            f"would be exactly 1 whatever the data. Use at least {4 * (dims_x + dims_y)} samples "
            f"(for feature maps spatial='positions' gives N*H*W samples), reduce the dimensions "
            f"first (svcca(..., variance=0.99) or dims=...), or use cka(), which is defined "
            f"for any number of samples"
        )
    ratio = max(dims_x, dims_y) / (n - 1)
    if ratio > SAMPLE_RATIO_WARNING:
        warnings.warn(
            f"{method}: {n} samples for {max(dims_x, dims_y)} directions; independent random data "
            f"would already reach a mean squared canonical correlation of about {ratio:.2f}. "
            f"Use at least {math.ceil(max(dims_x, dims_y) / SAMPLE_RATIO_WARNING) + 1} samples "
            f"for values you can compare",
            FewSamplesWarning,
            stacklevel=3,
        )


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


def _result(method, rho, dims_x, dims_y, n, weights=None, weights_from=None) -> CCAResult:
    correlations = _numpy(rho.clamp(0.0, 1.0))
    mean = float(correlations.mean())
    if weights is None:
        similarity = mean
    else:
        weights = _numpy(weights)
        similarity = float(np.clip(weights @ correlations, 0.0, 1.0))
    return CCAResult(
        method, similarity, correlations, mean, weights, dims_x, dims_y, n, weights_from
    )


def cca(
    x,
    y,
    *,
    spatial: Spatial | None = None,
    rtol: float | None = None,
    precision: Precision = "float64",
) -> CCAResult:
    """All canonical correlations between ``x`` (n, d1) and ``y`` (n, d2), and their mean.

    Symmetric, and invariant to any invertible linear map of either input (and to translation).
    See the module docstring for the definition, the rank threshold ``rtol`` and the sample-size
    rules.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(500, 3, generator=g, dtype=torch.float64)
        >>> y = torch.cat([x[:, :2] @ torch.randn(2, 2, generator=g, dtype=torch.float64),
        ...                torch.randn(500, 2, generator=g, dtype=torch.float64)], dim=1)
        >>> result = cca(x, y)
        >>> [round(r, 2) for r in result.correlations[:2].tolist()]   # the shared plane
        [1.0, 1.0]
        >>> result.dims_x, result.dims_y
        (3, 4)
    """
    x, y, (eps_x, eps_y) = pair(x, y, spatial, precision, min_samples=2)
    bx = _basis(x, eps_x, rtol, "x")
    by = _basis(y, eps_y, rtol, "y")
    n = x.shape[0]
    _check_sample_size(n, bx.q.shape[1], by.q.shape[1], "cca")
    rho = torch.linalg.svdvals(bx.q.T @ by.q)
    return _result("cca", rho, bx.q.shape[1], by.q.shape[1], n)


def _keep_top(basis: _Basis, variance: float, dims: int | None, name: str) -> _Basis:
    if dims is None:
        k = intrinsic_dimension(_numpy(basis.s) ** 2, variance)
    else:
        rank = basis.s.numel()
        if dims > rank:
            raise SimilarityInputError(
                f"svcca: dims={dims} for {name}, but {name} has only {rank} directions above the "
                f"rank threshold; pass dims <= {rank} or use variance=..."
            )
        k = dims
    return _Basis(basis.q[:, :k], basis.s[:k], basis.vh[:k])


def svcca(
    x,
    y,
    *,
    variance: float = DEFAULT_DELTA,
    dims: int | tuple[int, int] | None = None,
    spatial: Spatial | None = None,
    rtol: float | None = None,
    precision: Precision = "float64",
) -> CCAResult:
    """SVCCA: CCA between the top singular directions explaining ``variance`` of each input.

    Args:
        variance: fraction of the variance (squared singular values of the centred matrix) the
            kept directions must explain on each side; 0.99 as in Raghu et al. 2017.
        dims: keep exactly this many directions instead (an int for both sides or a pair),
            as the google/svcca tutorials do with 20 or 50.
        spatial, rtol, precision: as in :func:`cca`.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> signal = torch.randn(2000, 2, generator=g, dtype=torch.float64)
        >>> noise = 1e-3 * torch.randn(2000, 6, generator=g, dtype=torch.float64)
        >>> x = torch.cat([signal, noise[:, :3]], dim=1)
        >>> y = torch.cat([signal @ torch.randn(2, 2, generator=g, dtype=torch.float64),
        ...                noise[:, 3:]], dim=1)
        >>> result = svcca(x, y)        # the noise directions hold < 1% of the variance
        >>> result.dims_x, result.dims_y, round(result.similarity, 4)
        (2, 2, 1.0)
    """
    if not 0.0 < variance <= 1.0:
        raise SimilarityInputError(f"svcca: variance must be in (0, 1], got {variance!r}")
    dims_x, dims_y = (dims, dims) if dims is None or isinstance(dims, int) else dims
    for value in (dims_x, dims_y):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise SimilarityInputError(f"svcca: dims must be positive ints, got {dims!r}")
    x, y, (eps_x, eps_y) = pair(x, y, spatial, precision, min_samples=2)
    bx = _keep_top(_basis(x, eps_x, rtol, "x"), variance, dims_x, "x")
    by = _keep_top(_basis(y, eps_y, rtol, "y"), variance, dims_y, "y")
    n = x.shape[0]
    _check_sample_size(n, bx.q.shape[1], by.q.shape[1], "svcca")
    rho = torch.linalg.svdvals(bx.q.T @ by.q)
    return _result("svcca", rho, bx.q.shape[1], by.q.shape[1], n)


def pwcca(
    x,
    y,
    *,
    weights_from: WeightsFrom = "x",
    spatial: Spatial | None = None,
    rtol: float | None = None,
    precision: Precision = "float64",
) -> CCAResult:
    """Projection-weighted CCA (Morcos et al. 2018): correlations weighted by how much of the
    neurons of one side each canonical variate accounts for.

    Args:
        weights_from: ``"x"`` (default, the paper's L1), ``"y"``, or ``"smaller"``: the side
            keeping fewer directions (ties: ``x``), which is google/svcca's choice.
        spatial, rtol, precision: as in :func:`cca`.

    Example:
        >>> g = torch.Generator().manual_seed(1)
        >>> shared = torch.randn(3000, 1, generator=g, dtype=torch.float64)
        >>> x = torch.cat([10 * shared, torch.randn(3000, 1, generator=g, dtype=torch.float64)], 1)
        >>> y = torch.cat([shared, torch.randn(3000, 1, generator=g, dtype=torch.float64)], 1)
        >>> result = pwcca(x, y)   # the shared direction carries most of x's neurons
        >>> round(result.mean, 1), result.similarity > 0.85
        (0.5, True)
    """
    if weights_from not in ("x", "y", "smaller"):
        raise SimilarityInputError(
            f"pwcca: weights_from must be 'x', 'y' or 'smaller', got {weights_from!r}"
        )
    x, y, (eps_x, eps_y) = pair(x, y, spatial, precision, min_samples=2)
    bx = _basis(x, eps_x, rtol, "x")
    by = _basis(y, eps_y, rtol, "y")
    n = x.shape[0]
    dims_x, dims_y = bx.q.shape[1], by.q.shape[1]
    _check_sample_size(n, dims_x, dims_y, "pwcca")
    u, rho, vh = torch.linalg.svd(bx.q.T @ by.q, full_matrices=False)  # u (r_x, c), vh (c, r_y)
    side = weights_from if weights_from != "smaller" else ("x" if dims_x <= dims_y else "y")
    # <h_i, x_k> for all i, k: with h_i = Q_x u_i and Q_x^T X_c = diag(s) V^T this is
    # u_i^T diag(s) V^T, (c, d), without forming the (n, c) variates.
    rotation, basis = (u, bx) if side == "x" else (vh.T, by)
    projections = rotation.T @ (basis.s[:, None] * basis.vh)
    alpha = projections.abs().sum(dim=1)
    return _result("pwcca", rho, dims_x, dims_y, n, alpha / alpha.sum(), side)
