"""Representation similarity between two activation matrices: CCA, SVCCA, PWCCA, CKA (SPEC C9).

Section and equation numbers below are those of the papers' arXiv versions (see
docs/similarity.md for a caveat on checking them).

Inputs are activation matrices ``x`` (n, d1) and ``y`` (n, d2) whose rows are the same n samples
(torch or numpy; float64 inside unless ``precision="float32"``). Both are **centred explicitly**
(column means subtracted) before anything else, so every measure here gives the same value on
uncentred data, whatever order the inputs come in.

Definitions followed (published implementations disagree on the details; these are the papers'):

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
- **Linear CKA** (Kornblith et al. 2019, sec. 3, eqs. 1-4): CKA = HSIC(K, L) /
  sqrt(HSIC(K, K) HSIC(L, L)) with K = X X^T, L = Y Y^T and HSIC(K, L) = tr(K H L H) / (n-1)^2.
  For centred data HSIC numerators reduce to ||Y^T X||_F^2 (eq. 1), computed in feature space
  (d1 x d2) unless n x n Gram matrices are cheaper.
- **Unbiased CKA** (Nguyen et al. 2021, sec. 3.1, eqs. 2-3, with the estimator of Song et al.
  2012): the same ratio with HSIC_1, the unbiased estimator, in numerator *and* denominators:
  HSIC_1(K, L) = [tr(K~ L~) + 1^T K~ 1 1^T L~ 1 / ((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1] / (n(n-3)),
  K~ and L~ being K and L with zeroed diagonals. :class:`MinibatchCKA` averages HSIC_1 over
  minibatches (eq. 2) in bounded memory.

Robustness. CCA-family measures drop singular directions of the centred input whose singular
value is at most ``rtol * ||x||_F`` (Frobenius norm of the *raw* input): with the default ``rtol``,
the machine epsilon of the input dtype (or of ``precision`` if coarser), such a direction is
indistinguishable from the rounding error of the input itself. Constant, dead and duplicated
neurons therefore cost nothing and never produce NaN. CCA-type measures need many more samples
than kept directions: when r_x + r_y > n - 1, ``r_x + r_y - (n - 1)`` correlations equal 1 by
counting alone and :class:`TooFewSamplesError` is raised; when max(r_x, r_y) / (n - 1) exceeds
:data:`SAMPLE_RATIO_WARNING`, the mean squared canonical correlation of *independent* data
(about max(r_x, r_y) / (n - 1)) is already large and :class:`FewSamplesWarning` says so. CKA is
defined for any n >= 2 (n >= 4 unbiased) and any width.

Feature maps: pass ``spatial="positions"`` (every position of every image is a sample,
(N, C, H, W) -> (N*H*W, C)), ``"pool"`` (average over positions first, -> (N, C)) or
``"flatten"`` (-> (N, C*H*W), as Kornblith et al. do for CKA). N-d inputs are channels-first.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from layerscope.errors import StateMismatchError
from layerscope.stats.base import StreamingStatistic
from layerscope.stats.spectrum import DEFAULT_DELTA, intrinsic_dimension

__all__ = [
    "SAMPLE_RATIO_WARNING",
    "CCAResult",
    "DegenerateInputError",
    "FewSamplesWarning",
    "MinibatchCKA",
    "SimilarityInputError",
    "TooFewSamplesError",
    "UndefinedSimilarityWarning",
    "activation_matrix",
    "cca",
    "cka",
    "pwcca",
    "svcca",
]

Spatial = Literal["positions", "pool", "flatten"]
Precision = Literal["float64", "float32"]
WeightsFrom = Literal["x", "y", "smaller"]

#: Warn when max(r_x, r_y) / (n - 1), the mean squared canonical correlation that independent
#: random data would already reach, exceeds this (about n < 10 kept directions per sample).
SAMPLE_RATIO_WARNING = 0.1

_DTYPES = {"float64": torch.float64, "float32": torch.float32}


class SimilarityInputError(ValueError):
    """Activation matrices that cannot be compared (shape, sample count, NaN, option)."""


class TooFewSamplesError(SimilarityInputError):
    """Too few samples for a CCA-type measure: correlations of 1 would follow from counting."""


class DegenerateInputError(SimilarityInputError):
    """A representation with no variance (or no estimable variance): similarity is undefined."""


class FewSamplesWarning(UserWarning):
    """Few samples per kept direction: CCA-type values are inflated even for unrelated data."""


class UndefinedSimilarityWarning(UserWarning):
    """Some entries of a similarity matrix are undefined (NaN): a representation had no variance."""


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


# ---------------------------------------------------------------------------------- inputs
def _to_tensor(name: str, value) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
    else:
        try:
            array = np.asarray(value)
        except Exception as error:  # pragma: no cover - exotic objects
            raise TypeError(
                f"{name} must be a torch.Tensor or numpy array, got {value!r}"
            ) from error
        if array.dtype == object or not np.issubdtype(array.dtype, np.number):
            raise TypeError(
                f"{name} must be a numeric torch.Tensor or numpy array, got dtype {array.dtype}"
            )
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise TypeError(f"{name} must hold real numbers, got dtype {tensor.dtype}")
    return tensor


def activation_matrix(x, spatial: Spatial | None = None, *, name: str = "x") -> torch.Tensor:
    """A layer output as a 2-D (samples, features) matrix; N-d inputs are channels-first.

    ``(n,)`` is one neuron, (n, 1). ``(N, C, *positions)`` needs ``spatial``: ``"positions"``
    (every position is a sample, -> (N * positions, C)), ``"pool"`` (mean over positions,
    -> (N, C)) or ``"flatten"`` (-> (N, C * positions)).

    Example:
        >>> x = torch.randn(8, 3, 4, 4)
        >>> activation_matrix(x, "positions").shape, activation_matrix(x, "pool").shape
        (torch.Size([128, 3]), torch.Size([8, 3]))
        >>> activation_matrix(x, "flatten").shape
        torch.Size([8, 48])
    """
    x = _to_tensor(name, x)
    if x.dim() == 1:
        return x.unsqueeze(1)
    if x.dim() == 2:
        return x
    if x.dim() == 0:
        raise SimilarityInputError(f"{name} is a scalar; pass a (samples, features) matrix")
    if spatial == "positions":
        return x.movedim(1, -1).reshape(-1, x.shape[1])
    if spatial == "pool":
        return x.mean(dim=tuple(range(2, x.dim())))
    if spatial == "flatten":
        return x.reshape(x.shape[0], -1)
    raise SimilarityInputError(
        f"{name} has shape {tuple(x.shape)}; similarity measures take (samples, features) "
        f"matrices. For a channels-first feature map choose spatial='positions' (every position "
        f"is a sample), 'pool' (average over positions) or 'flatten' (one long vector per "
        f"sample); got spatial={spatial!r}"
    )


def _pair(x, y, spatial, precision: str, min_samples: int):
    """Validated 2-D tensors on one device in the compute dtype, plus the inputs' epsilons."""
    if precision not in _DTYPES:
        raise SimilarityInputError(f"precision must be 'float64' or 'float32', got {precision!r}")
    x = activation_matrix(x, spatial, name="x")
    y = activation_matrix(y, spatial, name="y")
    if x.shape[0] != y.shape[0]:
        raise SimilarityInputError(
            f"x has {x.shape[0]} samples (rows) and y has {y.shape[0]}; both must hold the same "
            f"samples in the same order (for feature maps of different sizes use spatial='pool')"
        )
    n = x.shape[0]
    if n < min_samples:
        raise TooFewSamplesError(f"this measure needs at least {min_samples} samples, got {n}")
    if x.shape[1] == 0 or y.shape[1] == 0:
        raise SimilarityInputError(f"x and y need at least one feature, got {x.shape}, {y.shape}")
    dtype = _DTYPES[precision]
    eps = [_epsilon(t.dtype, dtype) for t in (x, y)]
    y = y.to(x.device)
    for name, t in (("x", x), ("y", y)):
        if not torch.isfinite(t).all():
            raise SimilarityInputError(f"{name} contains NaN or inf; remove those samples first")
    return x.to(dtype), y.to(dtype), eps


def _epsilon(input_dtype: torch.dtype, compute_dtype: torch.dtype) -> float:
    compute = torch.finfo(compute_dtype).eps
    if input_dtype.is_floating_point:
        return max(torch.finfo(input_dtype).eps, compute)
    return compute  # integers are exact


def _centre(x: torch.Tensor) -> torch.Tensor:
    """Subtract column means; a second pass removes what rounding left of a large offset."""
    centred = x - x.mean(dim=0)
    return centred - centred.mean(dim=0)


# ------------------------------------------------------------------------------- CCA family
@dataclass
class _Basis:
    """Thin SVD of a centred matrix above the rank threshold: X_c ~= q @ diag(s) @ vh."""

    q: torch.Tensor  # (n, r), orthonormal columns
    s: torch.Tensor  # (r,), descending
    vh: torch.Tensor  # (r, d)


def _basis(raw: torch.Tensor, eps: float, rtol: float | None, name: str) -> _Basis:
    centred = _centre(raw)
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
    x, y, (eps_x, eps_y) = _pair(x, y, spatial, precision, min_samples=2)
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
    x, y, (eps_x, eps_y) = _pair(x, y, spatial, precision, min_samples=2)
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
    x, y, (eps_x, eps_y) = _pair(x, y, spatial, precision, min_samples=2)
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


# ------------------------------------------------------------------------------------- CKA
class _Kernel:
    """One representation on one set of n samples, ready for HSIC with others.

    Holds the centred features (n, d) and the kernel quantities every HSIC needs: the diagonal
    of K = X X^T, and for the unbiased estimator K~ 1 and 1^T K~ 1 (K~: K with zero diagonal),
    all O(n d). The n x n Gram matrix is formed only when it is no larger than the features
    (n <= d), where it is also the cheaper route.
    """

    def __init__(self, raw: torch.Tensor, unbiased: bool) -> None:
        self.x = _centre(raw)  # HSIC and HSIC_1 are translation invariant; centring is for accuracy
        self.n, self.d = self.x.shape
        self.unbiased = unbiased
        self.diagonal = (self.x * self.x).sum(dim=1)  # (n,) K_ii
        if unbiased:
            column_sums = self.x.sum(dim=0)  # ~0 after centring; kept so the formula is exact
            self.row_sums = self.x @ column_sums - self.diagonal  # (n,) K~ 1
            self.total = column_sums @ column_sums - self.diagonal.sum()  # 1^T K~ 1
        self._gram: torch.Tensor | None = None

    def gram(self) -> torch.Tensor:
        if self._gram is None:
            self._gram = self.x @ self.x.T  # (n, n)
        return self._gram

    def hsic(self, other: _Kernel) -> torch.Tensor:
        """HSIC_0 (biased, Kornblith eq. 3) or HSIC_1 (unbiased, Nguyen eq. 3), a 0-d tensor."""
        n = self.n
        if n <= max(self.d, other.d):
            trace = (self.gram() * other.gram()).sum()  # tr(K L), Gram route
        else:
            trace = torch.linalg.matrix_norm(self.x.T @ other.x) ** 2  # ||X^T Y||_F^2, eq. 1
        if not self.unbiased:
            return trace / (n - 1) ** 2
        trace = trace - self.diagonal @ other.diagonal  # tr(K~ L~)
        return (
            trace
            + self.total * other.total / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * (self.row_sums @ other.row_sums)
        ) / (n * (n - 3))


def _cka_ratio(cross: float, self_x: float, self_y: float) -> float | None:
    if not (self_x > 0.0 and self_y > 0.0):
        return None
    return cross / math.sqrt(self_x * self_y)


def cka(
    x,
    y,
    *,
    unbiased: bool = False,
    spatial: Spatial | None = None,
    precision: Precision = "float64",
) -> float:
    """Linear CKA between ``x`` (n, d1) and ``y`` (n, d2) (Kornblith et al. 2019).

    ``unbiased=True`` uses the unbiased HSIC estimator in numerator and denominators (Nguyen et
    al. 2021; needs n >= 4; can be slightly negative for unrelated data). No n x n matrix is built
    unless n <= max(d1, d2). Invariant to orthogonal maps and isotropic scaling (not to general
    invertible maps), and to translation.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(1000, 8, generator=g, dtype=torch.float64)
        >>> q, _ = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=torch.float64))
        >>> round(cka(x, 3.0 * x @ q + 5.0), 12)   # rotated, scaled, shifted: the same
        1.0
        >>> 0.0 <= cka(x, torch.randn(1000, 4, generator=g, dtype=torch.float64)) < 0.05
        True
    """
    x, y, _ = _pair(x, y, spatial, precision, min_samples=4 if unbiased else 2)
    kx, ky = _Kernel(x, unbiased), _Kernel(y, unbiased)
    value = _cka_ratio(float(kx.hsic(ky)), float(kx.hsic(kx)), float(ky.hsic(ky)))
    if value is None:
        raise DegenerateInputError(
            "cka: x or y has no (estimable) variance after centring, so CKA is undefined; "
            "exclude constant representations"
            + (" or use more samples with unbiased=True" if unbiased else "")
        )
    return value


# ---------------------------------------------------------------------------- minibatch CKA
class MinibatchCKA(StreamingStatistic):
    """Linear CKA over a stream of minibatches, in memory that does not grow with the data.

    Nguyen et al. 2021, sec. 3.1, eq. 2: for minibatches i = 1..k,
    CKA = mean_i HSIC(K_i, L_i) / sqrt(mean_i HSIC(K_i, K_i) * mean_i HSIC(L_i, L_i)), with the
    unbiased HSIC_1 (eq. 3; default), whose expectation does not depend on the batch size, so
    the value converges to the full-data CKA as data grows. ``unbiased=False`` averages the
    biased HSIC_0 instead, whose value *does* depend on the batch size.

    One accumulator compares ``num_x`` representations with ``num_y`` (a layer x layer grid):
    every batch brings ``num_x`` matrices and ``num_y`` matrices over the same samples, each
    is centred on its batch mean, and each layer's kernel quantities are computed once per batch
    (the n x n Gram matrix only when n <= width; else feature-space products).

    Args:
        num_x, num_y: how many representations on each side.
        unbiased: HSIC_1 (default) or HSIC_0.
        spatial: how N-d (channels-first) batches become matrices, as in
            :func:`activation_matrix`; ``None`` accepts only (n, d) batches.
        precision: ``"float64"`` (default) or ``"float32"`` per-batch arithmetic; the running
            sums are float64 either way.
        device: where the state lives; ``None`` follows the first batch.

    State (all reductions ``"sum"``): ``cross`` (num_x, num_y), ``self_x`` (num_x,),
    ``self_y`` (num_y,), ``batches``, ``samples``, ``skipped_batches`` (batches with fewer than
    4 samples, or 2 for HSIC_0, which the estimator cannot use).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(4096, 16, generator=g, dtype=torch.float64)
        >>> y = x @ torch.randn(16, 8, generator=g, dtype=torch.float64)
        >>> acc = MinibatchCKA()
        >>> for start in range(0, 4096, 256):
        ...     acc.update(x[start:start + 256], y[start:start + 256])
        >>> abs(float(acc.compute()) - cka(x, y, unbiased=True)) < 0.02
        True
    """

    def __init__(
        self,
        num_x: int = 1,
        num_y: int = 1,
        *,
        unbiased: bool = True,
        spatial: Spatial | None = None,
        precision: Precision = "float64",
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("num_x", num_x), ("num_y", num_y)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SimilarityInputError(
                    f"MinibatchCKA: {name} must be an int >= 1, got {value!r}"
                )
        if precision not in _DTYPES:
            raise SimilarityInputError(
                f"precision must be 'float64' or 'float32', got {precision!r}"
            )
        if spatial not in (None, "positions", "pool", "flatten"):
            raise SimilarityInputError(
                f"spatial must be None, 'positions', 'pool' or 'flatten', got {spatial!r}"
            )
        self.num_x, self.num_y = num_x, num_y
        self.unbiased, self.spatial, self.precision = unbiased, spatial, precision
        self._follow_input_device = device is None
        state_device = torch.device("cpu") if device is None else torch.device(device)
        f64 = dict(dtype=torch.float64, device=state_device)
        i64 = dict(dtype=torch.int64, device=state_device)
        self.add_state("cross", torch.zeros((num_x, num_y), **f64), "sum")
        self.add_state("self_x", torch.zeros(num_x, **f64), "sum")
        self.add_state("self_y", torch.zeros(num_y, **f64), "sum")
        self.add_state("batches", torch.zeros((), **i64), "sum")
        self.add_state("samples", torch.zeros((), **i64), "sum")
        self.add_state("skipped_batches", torch.zeros((), **i64), "sum")

    @property
    def min_samples(self) -> int:
        """Smallest batch the HSIC estimator can use (4 unbiased, 2 biased)."""
        return 4 if self.unbiased else 2

    def _matrices(self, value, count: int, side: str) -> list[torch.Tensor]:
        items = [value] if isinstance(value, (torch.Tensor, np.ndarray)) else list(value)
        if len(items) != count:
            raise SimilarityInputError(
                f"MinibatchCKA.update: expected {count} representation(s) for {side}, got "
                f"{len(items)}"
            )
        return [
            activation_matrix(t, self.spatial, name=f"{side}[{i}]") for i, t in enumerate(items)
        ]

    def update(self, x, y) -> None:
        """Fold in one minibatch: ``x`` is one (n, d) tensor or a sequence of ``num_x`` of them
        (all over the same n samples), ``y`` likewise with ``num_y``.
        """
        xs = self._matrices(x, self.num_x, "x")
        ys = self._matrices(y, self.num_y, "y")
        rows = {t.shape[0] for t in xs + ys}
        if len(rows) != 1:
            raise SimilarityInputError(
                f"MinibatchCKA.update: the representations of one batch have different sample "
                f"counts {sorted(rows)}; with spatial='positions', layers of different spatial "
                f"size cannot be compared (use spatial='pool' or 'flatten')"
            )
        n = rows.pop()
        device = xs[0].device
        if self._follow_input_device and self.device != device:
            self.to(device)
        if n < self.min_samples:
            self.skipped_batches += 1
            return
        dtype = _DTYPES[self.precision]
        kernels: dict[tuple, _Kernel] = {}

        def kernel(t: torch.Tensor, name: str) -> _Kernel:
            # The same data on both sides (a model against itself) is done once. Keyed on the
            # memory and layout, not id(): activation_matrix returns a new (detached) tensor
            # object for every input, also for the same tensor given twice.
            key = (t.device, t.data_ptr(), tuple(t.shape), t.stride(), t.dtype)
            if key not in kernels:
                if not torch.isfinite(t).all():
                    raise SimilarityInputError(
                        f"MinibatchCKA.update: {name} contains NaN or inf; the model diverged "
                        f"or the input holds invalid values"
                    )
                kernels[key] = _Kernel(t.to(device=device, dtype=dtype), self.unbiased)
            return kernels[key]

        kx = [kernel(t, f"x[{i}]") for i, t in enumerate(xs)]
        ky = [kernel(t, f"y[{j}]") for j, t in enumerate(ys)]
        state = dict(dtype=torch.float64, device=self.device)
        cross = torch.stack([torch.stack([a.hsic(b) for b in ky]) for a in kx])
        self.cross += cross.to(**state)
        self.self_x += torch.stack([a.hsic(a) for a in kx]).to(**state)
        self.self_y += torch.stack([b.hsic(b) for b in ky]).to(**state)
        self.batches += 1
        self.samples += n

    def _check_compatible(self, other: MinibatchCKA) -> None:
        if not isinstance(other, MinibatchCKA):
            raise TypeError(f"can only merge a MinibatchCKA, got {type(other).__name__}")
        mine = (self.num_x, self.num_y, self.unbiased)
        theirs = (other.num_x, other.num_y, other.unbiased)
        if mine != theirs:
            raise StateMismatchError(
                f"cannot merge MinibatchCKA with (num_x, num_y, unbiased) = {theirs} into {mine}"
            )

    def merge(self, other: MinibatchCKA) -> MinibatchCKA:
        """Add another accumulator's batches; equal to updating with them."""
        self._check_compatible(other)
        for name in self.reductions:
            setattr(self, name, getattr(self, name) + getattr(other, name).to(self.device))
        return self

    def sync(self, group=None) -> MinibatchCKA:
        """Sum the state of all processes of ``group`` (torch.distributed); a no-op without one."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            for name in self.reductions:
                dist.all_reduce(getattr(self, name), group=group)
        return self

    def compute(self) -> torch.Tensor:
        """CKA as a (num_x, num_y) float64 CPU tensor (``float()`` of a 1 x 1 one is the value).

        Entries whose representation had no variance are NaN, with an
        :class:`UndefinedSimilarityWarning`; skipped small batches are reported by a warning.
        """
        batches = int(self.batches)
        skipped = int(self.skipped_batches)
        if skipped:
            warnings.warn(
                f"MinibatchCKA: {skipped} batch(es) with fewer than {self.min_samples} samples "
                f"were skipped (the HSIC estimator needs at least {self.min_samples})",
                UserWarning,
                stacklevel=2,
            )
        if batches == 0:
            raise TooFewSamplesError(
                f"MinibatchCKA.compute: no batch of at least {self.min_samples} samples was "
                f"folded in ({skipped} skipped); call update() with larger batches"
            )
        cross, self_x, self_y = (getattr(self, n).to("cpu") for n in ("cross", "self_x", "self_y"))
        defined = (self_x > 0)[:, None] & (self_y > 0)[None, :]
        values = torch.full_like(cross, float("nan"))
        denominator = (self_x[:, None] * self_y[None, :])[defined]
        values[defined] = cross[defined] / denominator.sqrt()
        if not bool(defined.all()):
            rows = (self_x <= 0).nonzero()[:, 0].tolist()
            cols = (self_y <= 0).nonzero()[:, 0].tolist()
            warnings.warn(
                f"MinibatchCKA: CKA is undefined (NaN) for x {rows} and y {cols} (indices): "
                f"those representations had no variance (e.g. a dead layer)",
                UndefinedSimilarityWarning,
                stacklevel=2,
            )
        return values

    def __repr__(self) -> str:
        return (
            f"MinibatchCKA(num_x={self.num_x}, num_y={self.num_y}, unbiased={self.unbiased}, "
            f"batches={int(self.batches)}, samples={int(self.samples)})"
        )
