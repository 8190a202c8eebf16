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
The d x d part is in :mod:`layerscope.similarity.whitening`. Over many pairs
(:func:`pairwise`, a layers x layers matrix) each input's centring, its own product and its
whitening are shared by its pairs, which then cost the cross product S_xy and a small SVD.

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
import dataclasses
import functools
import inspect
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from layerscope.errors import (
    FewSamplesWarning,
    SimilarityInputError,
    TooFewSamplesError,
)
from layerscope.similarity.inputs import DTYPES, Precision, Spatial, centred, pair
from layerscope.similarity.whitening import Whitening, keep_top, whitened_cross, whitening
from layerscope.stats.spectrum import DEFAULT_DELTA

__all__ = ["SAMPLE_RATIO_WARNING", "CCAResult", "cca", "pairwise", "pwcca", "svcca"]

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


@dataclass
class _Side:
    """One input centred (one new matrix), its Gram matrix S = Xc^T Xc and rank threshold, and
    what is derived from S alone (its whitening, its top directions) once asked for: all that
    the pairs an input is in share (:func:`pairwise` computes each once per input)."""

    centred: torch.Tensor
    residual: torch.Tensor
    gram: torch.Tensor
    tolerance: float  # squared singular-value threshold (rtol * ||x||_F)^2
    derived: dict = field(default_factory=dict)

    def once(self, key, make):
        """``make()``, computed on the first call for ``key`` and kept."""
        if key not in self.derived:
            self.derived[key] = make()
        return self.derived[key]


def _side(x, eps, rtol, dtype, name) -> _Side:
    """Centre ``x`` and form its Gram matrix; the rounding residue of the centring (r, tiny) is
    removed exactly: (X - 1 r^T)^T (Y - 1 s^T) = X^T Y - n r s^T for column-centred X and Y."""
    tolerance = ((eps if rtol is None else rtol) * float(torch.linalg.vector_norm(x))) ** 2
    xc, residual = centred(x, dtype, name)
    # The d x d work after the products runs in the products' dtype, its thresholds at their
    # epsilon: forming S = Xc^T Xc in float32 already perturbs S by about eps_32 ||S||, the
    # rounding of a float32 eigh or Cholesky of S, so float64 there bought no accuracy while it
    # was about half of a float32 SVCCA's time (docs/performance.md, "Similarity").
    gram = torch.addr(xc.T @ xc, residual, residual, alpha=-x.shape[0])
    return _Side(xc, residual, gram, tolerance)


def _prepare(x, y, spatial, precision, rtol, sides=None, keys=(None, None)):
    """The two inputs' sides (from ``sides`` by ``keys`` when given there) and the pair's
    products; the cross product X_c^T Y_c is the only (n, d) work a prepared pair costs."""
    x, y, (eps_x, eps_y) = pair(x, y, spatial, precision, min_samples=2)
    dtype = DTYPES[precision]
    found = []
    for key, tensor, eps, name in ((keys[0], x, eps_x, "x"), (keys[1], y, eps_y, "y")):
        side = None if sides is None else sides.get(key)
        if side is None:
            side = _side(tensor, eps, rtol, dtype, name)
            if sides is not None:
                sides[key] = side
        found.append(side)
    sx, sy = found
    n = x.shape[0]
    xy = torch.addr(sx.centred.T @ sy.centred, sx.residual, sy.residual, alpha=-n)
    eps = torch.finfo(dtype).eps
    products = _Products(sx.gram, sy.gram, xy, n, sx.tolerance, sy.tolerance, eps)
    return sx, sy, products


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
            stacklevel=4,  # the caller of cca(), svcca() or pwcca(), or of next(pairwise(...))
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
    return _cca(x, y, spatial, rtol, precision)


def _cca(x, y, spatial, rtol, precision, sides=None, keys=(None, None)) -> CCAResult:
    sx, sy, products = _prepare(x, y, spatial, precision, rtol, sides, keys)
    with _small_linalg(products):
        wx, wy = _whitenings(sx, sy, products)
        _check_sample_size(products.n, wx.rank, wy.rank, "cca")
        rho = torch.linalg.svdvals(whitened_cross(products.xy, wx, wy))
    return _result("cca", rho, wx.rank, wy.rank, products.n)


def _whitenings(sx: _Side, sy: _Side, products: _Products) -> tuple[Whitening, Whitening]:
    """Each side's whitening, computed once per side."""
    eps = products.eps
    wx = sx.once("whitening", lambda: whitening(sx.gram, sx.tolerance, eps, "x"))
    wy = sy.once("whitening", lambda: whitening(sy.gram, sy.tolerance, eps, "y"))
    return wx, wy


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
    return _svcca(x, y, variance, _svcca_dims(variance, dims), spatial, rtol, precision)


def _svcca_dims(variance, dims) -> tuple[int | None, int | None]:
    """Check svcca's ``variance`` and ``dims``; the dims for each side."""
    if not 0.0 < variance <= 1.0:
        raise SimilarityInputError(f"svcca: variance must be in (0, 1], got {variance!r}")
    dims_x, dims_y = (dims, dims) if dims is None or isinstance(dims, int) else dims
    for value in (dims_x, dims_y):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise SimilarityInputError(f"svcca: dims must be positive ints, got {dims!r}")
    return dims_x, dims_y


def _svcca(x, y, variance, dims, spatial, rtol, precision, sides=None, keys=(None, None)):
    sx, sy, products = _prepare(x, y, spatial, precision, rtol, sides, keys)
    eps = products.eps
    with _small_linalg(products):
        vx, lx = sx.once(("top", variance, dims[0]), lambda: keep_top(
            sx.gram, sx.tolerance, eps, variance, dims[0], "x"))  # fmt: skip
        vy, ly = sy.once(("top", variance, dims[1]), lambda: keep_top(
            sy.gram, sy.tolerance, eps, variance, dims[1], "y"))  # fmt: skip
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
    _check_weights_from(weights_from)
    return _pwcca(x, y, weights_from, spatial, rtol, precision)


def _check_weights_from(weights_from) -> None:
    if weights_from not in ("x", "y", "smaller"):
        raise SimilarityInputError(
            f"pwcca: weights_from must be 'x', 'y' or 'smaller', got {weights_from!r}"
        )


def _pwcca(x, y, weights_from, spatial, rtol, precision, sides=None, keys=(None, None)):
    sx, sy, products = _prepare(x, y, spatial, precision, rtol, sides, keys)
    with _small_linalg(products):
        wx, wy = _whitenings(sx, sy, products)
        dims_x, dims_y = wx.rank, wy.rank
        _check_sample_size(products.n, dims_x, dims_y, "pwcca")
        u, rho, vh = torch.linalg.svd(whitened_cross(products.xy, wx, wy), full_matrices=False)
        side = weights_from if weights_from != "smaller" else ("x" if dims_x <= dims_y else "y")
        # <h_i, x_k> for every variate i and neuron k: h_i = Xc D^-1/2 W u_i, so this is
        # u_i^T W^T D^-1/2 S[:, k], (c, d), without forming the (n, c) variates.
        if side == "x":
            projections = u.T @ sx.once("rows", lambda: wx.whitened_rows(sx.gram))
        else:
            projections = vh @ sy.once("rows", lambda: wy.whitened_rows(sy.gram))
        alpha = projections.abs().sum(dim=1)
    return _result("pwcca", rho, dims_x, dims_y, products.n, alpha / alpha.sum(), side)


def pairwise(
    method: Literal["cca", "svcca", "pwcca"],
    xs: Sequence,
    ys: Sequence | None = None,
    **options,
) -> Iterator[tuple[int, int, CCAResult | SimilarityInputError]]:
    """``method`` for every pair (xs[i], ys[j]), row by row, with each input's share of the work
    done once: centring, its own product X_c^T X_c and its whitening (or its top directions).
    Each pair then costs its cross product and a small SVD instead of a whole call: on a
    layers x layers matrix a fifth to a half of the time of calling the measure pair by pair
    (docs/performance.md, "Similarity").

    Args:
        method: ``"cca"``, ``"svcca"`` or ``"pwcca"``.
        xs, ys: inputs as the measure takes them, the same samples in every one; ``ys`` None
            compares ``xs`` with itself (each input prepared once for both roles; CCA and
            SVCCA, symmetric, compute each pair once and mirror it).
        options: the measure's keyword arguments (``spatial``, ``rtol``, ``precision``,
            ``variance``, ``dims``, ``weights_from``), checked before any work.

    Yields ``(i, j, result)``, ``result`` being what the measure returns, or the
    :class:`~layerscope.errors.SimilarityInputError` it raised for that pair (a layer without
    variance, too few samples), so one pair does not end the others. Memory: the prepared
    ``ys`` (each centred in the compute dtype) and one prepared x at a time.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> xs = [torch.randn(300, 4, generator=g, dtype=torch.float64) for _ in range(2)]
        >>> values = {(i, j): r.similarity for i, j, r in pairwise("cca", xs)}
        >>> round(values[0, 0], 6), round(values[0, 1], 6) == round(cca(xs[0], xs[1]).similarity, 6)
        (1.0, True)
    """
    public = {"cca": cca, "svcca": svcca, "pwcca": pwcca}.get(method)
    if public is None:
        raise SimilarityInputError(
            f"pairwise: method must be 'cca', 'svcca' or 'pwcca', got {method!r}"
        )
    parameters = inspect.signature(public).parameters.values()
    given = {p.name: p.default for p in parameters if p.kind is p.KEYWORD_ONLY}
    if unknown := sorted(set(options) - set(given)):
        raise SimilarityInputError(f"{method}: unknown options {unknown}")
    given.update(options)  # the measure's own defaults, then what was passed
    common = {key: given[key] for key in ("spatial", "rtol", "precision")}
    dims = (None, None)
    if method == "cca":
        core = functools.partial(_cca, **common)
    elif method == "svcca":
        dims = _svcca_dims(given["variance"], given["dims"])
        core = functools.partial(_svcca, variance=given["variance"], dims=dims, **common)
    else:
        _check_weights_from(given["weights_from"])
        core = functools.partial(_pwcca, weights_from=given["weights_from"], **common)
    same = ys is None
    ys = xs if same else ys
    # CCA, and SVCCA with the same dims on both sides, are symmetric: (j, i) is (i, j).
    symmetric = method == "cca" or (method == "svcca" and dims[0] == dims[1])
    mirrored: dict = {}
    sides: dict = {}
    for i, x in enumerate(xs):
        for j, y in enumerate(ys):
            if (i, j) in mirrored:
                yield i, j, mirrored.pop((i, j))
                continue
            keys = (("y", i) if same else ("x", i), ("y", j))
            try:
                result = core(x, y, sides=sides, keys=keys)
            except SimilarityInputError as error:
                result = error
            if same and symmetric and j > i:
                mirrored[j, i] = result if isinstance(result, Exception) else dataclasses.replace(
                    result, dims_x=result.dims_y, dims_y=result.dims_x)  # fmt: skip
            yield i, j, result
        if not same:
            sides.pop(("x", i), None)
