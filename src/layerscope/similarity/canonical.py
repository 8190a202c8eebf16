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

Computation. All three measures work on the products of the centred inputs, S_xx = Xc^T Xc,
S_yy and S_xy, formed once (the data is read for nothing else but centring): CCA and PWCCA
scale each neuron to unit variance and whiten by the Cholesky factor of the correlation matrix
(by its eigendecomposition when that matrix is singular within rounding); SVCCA takes the
principal directions from the eigendecomposition of S_xx. The cost is the three products plus
decompositions of d x d matrices; the rounding is about cond(R)^2 * eps (R: the neurons'
correlation matrix) instead of the cond(R) * eps of orthonormal bases of the data, far below
what float32 activations carry unless the neurons are nearly collinear.

Robustness. A neuron whose centred sum of squares is at most ``(rtol * ||x||_F)^2``
(Frobenius norm of the *raw* input; default ``rtol``: the machine epsilon of the input dtype,
or of ``precision`` if coarser) is indistinguishable from the rounding of the input itself and
is dropped; a direction that the remaining neurons span only within the rounding of their
correlation matrix (d * eps of it: duplicated neurons, a neuron that is a combination of
others) is dropped too. For SVCCA a principal direction is kept when its variance s^2 is above
both. Constant, dead and duplicated neurons therefore cost nothing and never produce NaN.
CCA-type measures need many more samples than kept directions: when r_x + r_y > n - 1,
``r_x + r_y - (n - 1)`` correlations equal 1 by counting alone and
:class:`~layerscope.errors.TooFewSamplesError` is raised; when max(r_x, r_y) / (n - 1) exceeds
:data:`SAMPLE_RATIO_WARNING`, the mean squared canonical correlation of *independent* data
(about max(r_x, r_y) / (n - 1)) is already large and :class:`~layerscope.errors.FewSamplesWarning`
says so.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
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
from layerscope.similarity.inputs import DTYPES, Precision, Spatial, centred, pair
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
class _Products:
    """The centred products of one pair: S_xx = Xc^T Xc, S_yy, S_xy (compute dtype), and n."""

    xx: torch.Tensor
    yy: torch.Tensor
    xy: torch.Tensor
    n: int
    tolerance_x: float  # squared singular-value threshold (rtol * ||x||_F)^2
    tolerance_y: float
    eps: float  # machine epsilon of the dtype the products were formed in


def _products(x, y, eps_x, eps_y, rtol, dtype) -> _Products:
    """Centre both inputs (one new matrix each) and form the three products; the rounding
    residue of the centring (r, tiny) is removed exactly: (X - 1 r^T)^T (Y - 1 s^T) =
    X^T Y - n r s^T for column-centred X and Y."""
    n = x.shape[0]
    tolerance_x = ((eps_x if rtol is None else rtol) * float(torch.linalg.vector_norm(x))) ** 2
    tolerance_y = ((eps_y if rtol is None else rtol) * float(torch.linalg.vector_norm(y))) ** 2
    xc, rx = centred(x, dtype, "x")
    yc, ry = centred(y, dtype, "y")
    # The d x d work after the products runs in the products' dtype, its thresholds at their
    # epsilon: forming S = Xc^T Xc in float32 already perturbs S by about eps_32 ||S||, the
    # rounding of a float32 eigh or Cholesky of S, so float64 there bought no accuracy while it
    # was about half of a float32 SVCCA's time (docs/performance.md, "Similarity").
    xx = torch.addr(xc.T @ xc, rx, rx, alpha=-n)
    yy = torch.addr(yc.T @ yc, ry, ry, alpha=-n)
    xy = torch.addr(xc.T @ yc, rx, ry, alpha=-n)
    return _Products(xx, yy, xy, n, tolerance_x, tolerance_y, torch.finfo(dtype).eps)


#: Up to this many features per side, the d x d decompositions run on one thread (see
#: :func:`_small_linalg`).
ONE_THREAD_MAX_FEATURES = 1024


@contextlib.contextmanager
def _small_linalg(products: _Products) -> Iterator[None]:
    """Run the d x d part (Cholesky, eigh, triangular solves, SVD) on one CPU thread.

    LAPACK's decompositions of a few hundred rows synchronise their threads at every panel;
    when any thread is descheduled (a busy machine, another process on the same cores) the
    others wait, so on a 2-core machine under load a 512 x 512 Cholesky took 33 ms at 2 threads
    against 6 ms at 1, an eigh 304 against 59 ms, while the (n, d) products scale. Torch's thread
    count is restored afterwards; larger matrices keep every thread.
    """
    threads = torch.get_num_threads()
    width = max(products.xx.shape[0], products.yy.shape[0])
    if threads == 1 or products.xx.device.type != "cpu" or width > ONE_THREAD_MAX_FEATURES:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass
class _Whitening:
    """W^T of a whitening W (d_alive, r) of the correlation matrix R = D^-1/2 S D^-1/2 of the
    neurons that vary (``alive``): ``apply(M) = W^T M``, so that ``W^T R W = I_r``."""

    alive: torch.Tensor  # (d_alive,) indices of neurons above the rank threshold
    scale: torch.Tensor  # (d_alive,) 1 / sqrt(S_kk)
    cholesky: torch.Tensor | None  # L with R = L L^T, or None when ``vectors`` is used
    vectors: torch.Tensor | None  # (d_alive, r): V_r diag(lambda_r)^-1/2 of R's eigh
    complete: bool = False  # every neuron alive: S's rows and columns are taken as they are

    @property
    def rank(self) -> int:
        return int(self.alive.numel() if self.vectors is None else self.vectors.shape[1])

    def apply(self, matrix: torch.Tensor) -> torch.Tensor:
        if self.vectors is not None:
            return self.vectors.T @ matrix
        return torch.linalg.solve_triangular(self.cholesky, matrix, upper=False)

    def normalised_rows(self, gram: torch.Tensor, columns=None) -> torch.Tensor:
        """D^-1/2 S[alive, columns] (all columns if None)."""
        rows = gram if self.complete else gram[self.alive]
        return self.scale[:, None] * (rows if columns is None else rows[:, columns])

    @property
    def columns(self) -> torch.Tensor | None:
        """The index of the neurons that vary, None when all do (no copy needed)."""
        return None if self.complete else self.alive

    def whitened_rows(self, gram: torch.Tensor) -> torch.Tensor:
        """W^T D^-1/2 S[alive, :], (r, d), for S the Gram matrix this whitening came from.

        On the Cholesky route W^T = L^-1 and, on the columns of the neurons that vary,
        D^-1/2 S D^-1/2 = R = L L^T, so the block is L^T D^1/2 without a solve (and without
        the solve's rounding); only the dropped neurons' columns are solved for.
        """
        if self.vectors is None and self.complete:
            return self.cholesky.T / self.scale[None, :]
        rows = self.normalised_rows(gram)
        if self.vectors is not None:
            return self.vectors.T @ rows
        whitened = torch.empty_like(rows)
        whitened[:, self.alive] = self.cholesky.T / self.scale[None, :]
        dropped = torch.ones(rows.shape[1], dtype=torch.bool, device=rows.device)
        dropped[self.alive] = False
        if bool(dropped.any()):
            whitened[:, dropped] = self.apply(rows[:, dropped])
        return whitened


def _whitening(gram: torch.Tensor, tolerance: float, eps: float, name: str) -> _Whitening:
    """Whiten the neurons whose variance is above the rank threshold.

    A neuron with ``S_kk <= (rtol ||x||_F)^2`` (dead, constant, constant up to the input's
    rounding) is left out. The others are scaled to unit variance (CCA is invariant to that) and
    R = L L^T is factored by Cholesky; if R is singular within its rounding (a pivot at most
    d * eps: duplicated neurons, one neuron a combination of others), its eigendecomposition
    keeps the eigenvalues above d * eps * lambda_max instead. No kept direction is ever divided
    by less than that, so nothing becomes NaN.
    """
    diagonal = gram.diagonal()
    alive = torch.nonzero(diagonal > tolerance).flatten()
    if alive.numel() == 0:
        raise DegenerateInputError(
            f"{name} has no variance above the rank threshold ({int(gram.shape[0])} features, "
            f"every sample equal up to rounding); similarity with a constant representation is "
            f"undefined. Exclude this layer or pass other samples"
        )
    complete = alive.numel() == gram.shape[0]
    scale = diagonal[alive].rsqrt()
    kept = gram if complete else gram[alive][:, alive]  # indexing copies; most layers keep all
    correlation = scale[:, None] * kept * scale[None, :]
    floor = alive.numel() * eps
    factor, info = torch.linalg.cholesky_ex(correlation)
    if int(info) == 0 and float(factor.diagonal().min()) ** 2 > floor:
        return _Whitening(alive, scale, factor, None, complete)
    values, vectors = torch.linalg.eigh(correlation)
    keep = values > floor * float(values[-1])
    return _Whitening(alive, scale, None, vectors[:, keep] * values[keep].rsqrt(), complete)


def _whitened_cross(products: _Products, wx: _Whitening, wy: _Whitening) -> torch.Tensor:
    """W_x^T D_x^-1/2 S_xy D_y^-1/2 W_y, (r_x, r_y): its singular values are the canonical
    correlations."""
    cross = wx.normalised_rows(products.xy, wy.columns) * wy.scale[None, :]
    return wy.apply(wx.apply(cross).T).T


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
    products = _products(x, y, eps_x, eps_y, rtol, DTYPES[precision])
    with _small_linalg(products):
        wx = _whitening(products.xx, products.tolerance_x, products.eps, "x")
        wy = _whitening(products.yy, products.tolerance_y, products.eps, "y")
        _check_sample_size(products.n, wx.rank, wy.rank, "cca")
        rho = torch.linalg.svdvals(_whitened_cross(products, wx, wy))
    return _result("cca", rho, wx.rank, wy.rank, products.n)


def _keep_top(
    gram: torch.Tensor, tolerance: float, eps: float, variance: float, dims: int | None, name: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The top principal directions of Xc (eigenvectors of S = Xc^T Xc, (d, k)) and their
    variances (k,): those above the rank threshold (lambda = s^2 > (rtol ||x||_F)^2 and above
    eigh's rounding, d * eps * lambda_max), then the first ``dims`` or those explaining
    ``variance``."""
    values, vectors = torch.linalg.eigh(gram)
    values, vectors = values.flip(0), vectors.flip(1)  # descending
    floor = max(tolerance, gram.shape[0] * eps * float(values[0]))
    rank = int((values > floor).sum())
    if rank == 0:
        raise DegenerateInputError(
            f"{name} has no variance above the rank threshold ({int(gram.shape[0])} features, "
            f"every sample equal up to rounding); similarity with a constant representation is "
            f"undefined. Exclude this layer or pass other samples"
        )
    if dims is None:
        k = intrinsic_dimension(_numpy(values[:rank]), variance)
    elif dims > rank:
        raise SimilarityInputError(
            f"svcca: dims={dims} for {name}, but {name} has only {rank} directions above the "
            f"rank threshold; pass dims <= {rank} or use variance=..."
        )
    else:
        k = dims
    return vectors[:, :k], values[:k]


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
    products = _products(x, y, eps_x, eps_y, rtol, DTYPES[precision])
    with _small_linalg(products):
        vx, lx = _keep_top(products.xx, products.tolerance_x, products.eps, variance, dims_x, "x")
        vy, ly = _keep_top(products.yy, products.tolerance_y, products.eps, variance, dims_y, "y")
        _check_sample_size(products.n, lx.numel(), ly.numel(), "svcca")
        # The reduced matrices Xc V_x have the diagonal covariance diag(lambda_x): whitening is
        # a division.
        cross = (vx.T @ products.xy @ vy) * lx.rsqrt()[:, None] * ly.rsqrt()[None, :]
        rho = torch.linalg.svdvals(cross)
    return _result("svcca", rho, lx.numel(), ly.numel(), products.n)


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
    products = _products(x, y, eps_x, eps_y, rtol, DTYPES[precision])
    with _small_linalg(products):
        wx = _whitening(products.xx, products.tolerance_x, products.eps, "x")
        wy = _whitening(products.yy, products.tolerance_y, products.eps, "y")
        dims_x, dims_y = wx.rank, wy.rank
        _check_sample_size(products.n, dims_x, dims_y, "pwcca")
        u, rho, vh = torch.linalg.svd(_whitened_cross(products, wx, wy), full_matrices=False)
        side = weights_from if weights_from != "smaller" else ("x" if dims_x <= dims_y else "y")
        # <h_i, x_k> for every variate i and neuron k: h_i = Xc D^-1/2 W u_i, so this is
        # u_i^T W^T D^-1/2 S[:, k], (c, d), without forming the (n, c) variates.
        if side == "x":
            projections = u.T @ wx.whitened_rows(products.xx)
        else:
            projections = vh @ wy.whitened_rows(products.yy)
        alpha = projections.abs().sum(dim=1)
    return _result("pwcca", rho, dims_x, dims_y, products.n, alpha / alpha.sum(), side)
