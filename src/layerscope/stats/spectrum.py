"""Layer statistics from the eigenvalues of a covariance (SPEC C2).

One eigendecomposition per layer and phase feeds every statistic. The pure functions take
eigenvalues (any order, torch or numpy) and are what the registered statistics call.

- intrinsic dimension k(delta): the smallest k >= 1 whose top-k eigenvalues reach the fraction
  delta of the total variance (dissertation 7, the dimension of the eigenspace E_l^k). Delve 0.1.50
  counts the eigenvalues *below* the threshold, one less than this, and can return 0.
- saturation s = k(delta) / d (dissertation 8.1; Richter et al. 2021, eq. 1), delta = 0.99 by default.
- trace of the covariance, and the trace of its diagonalised form (sum of eigenvalues clipped at
  0, Delve's "dtrc"); they differ only by negative rounding mass.
- log-determinant, the sum of log eigenvalues (the determinant itself under- and overflows).
- participation ratio (sum lambda)^2 / sum lambda^2, and the effective rank of Roy & Vetterli
  (2007), exp of the Shannon entropy of p_i = lambda_i / sum lambda (applied to the covariance,
  whose singular values are its eigenvalues).

Degenerate input is defined, never NaN: zero total variance gives saturation and intrinsic
dimension 0, participation ratio and effective rank 0, and the flag ``"zero_variance"``; fewer than
two samples gives no values and a reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

from layerscope.errors import OptionError
from layerscope.registry import Registry
from layerscope.stats.covariance import CovarianceResult

__all__ = [
    "DEFAULT_DELTA",
    "DEFAULT_STATISTICS",
    "STATISTICS",
    "Spectrum",
    "SpectrumStatistics",
    "StatisticSpec",
    "check_recordable",
    "compute_statistics",
    "effective_rank",
    "embed",
    "get_statistic",
    "intrinsic_dimension",
    "list_statistics",
    "log_determinant",
    "participation_ratio",
    "register_statistic",
    "saturation",
]

#: Fraction of variance for k(delta) and saturation (dissertation 8.1 standardises on 99%).
DEFAULT_DELTA = 0.99

#: Relative tolerance when comparing a cumulative eigenvalue sum with delta * total. Float64 sums
#: of equal eigenvalues land a few ulps either side of an exact threshold; without it, four equal
#: eigenvalues and delta = 0.75 could give k = 4 instead of 3.
THRESHOLD_RTOL = 1e-12


def _as_float64_numpy(eigenvalues) -> np.ndarray:
    if isinstance(eigenvalues, torch.Tensor):
        eigenvalues = eigenvalues.detach().to("cpu", torch.float64).numpy()
    return np.asarray(eigenvalues, dtype=np.float64).ravel()


def _descending_clipped(eigenvalues) -> np.ndarray:
    """Eigenvalues in descending order with negative rounding noise clipped to 0."""
    values = _as_float64_numpy(eigenvalues)
    if not np.all(np.isfinite(values)):
        raise OptionError("eigenvalues contain NaN or inf; the covariance is not finite")
    return np.clip(np.sort(values)[::-1], 0.0, None)


def intrinsic_dimension(eigenvalues, delta: float = DEFAULT_DELTA) -> int:
    """Smallest k >= 1 whose top-k eigenvalues explain at least ``delta`` of the variance.

    Returns 0 only when the total variance is 0.

    Example:
        >>> intrinsic_dimension([4.0, 3.0, 2.0, 1.0], delta=0.7)   # 4 + 3 = 7 of 10
        2
        >>> intrinsic_dimension([1.0, 1.0, 1.0, 1.0], delta=0.75)  # a tie at the threshold
        3
        >>> intrinsic_dimension([0.0, 0.0], delta=0.99)
        0
    """
    if not 0.0 < delta <= 1.0:
        raise OptionError(f"delta must be in (0, 1], got {delta!r}")
    values = _descending_clipped(eigenvalues)
    total = values.sum()
    if total <= 0.0:
        return 0
    cumulative = np.cumsum(values)
    reached = cumulative >= delta * total * (1.0 - THRESHOLD_RTOL)
    return int(np.argmax(reached)) + 1


def saturation(eigenvalues, delta: float = DEFAULT_DELTA) -> float:
    """k(delta) / d: the share of a layer's dimensions its data really uses (in [0, 1]).

    Example:
        >>> saturation([4.0, 3.0, 2.0, 1.0], delta=0.7)
        0.5
    """
    values = _as_float64_numpy(eigenvalues)
    if values.size == 0:
        raise OptionError("saturation of an empty spectrum is undefined")
    return intrinsic_dimension(values, delta) / values.size


def participation_ratio(eigenvalues) -> float:
    """(sum lambda)^2 / sum lambda^2: between 1 (one direction) and d (isotropic); 0 if no variance.

    Example:
        >>> participation_ratio([1.0, 1.0, 1.0])
        3.0
        >>> participation_ratio([1.0, 0.0, 0.0])
        1.0
    """
    values = _descending_clipped(eigenvalues)
    squares = float(np.sum(values**2))
    if squares <= 0.0:
        return 0.0
    return float(values.sum() ** 2 / squares)


def effective_rank(eigenvalues) -> float:
    """exp(H(p)) with p_i = lambda_i / sum lambda (Roy & Vetterli 2007); 0 if no variance.

    Example:
        >>> round(effective_rank([2.0, 2.0, 0.0]), 12)
        2.0
    """
    values = _descending_clipped(eigenvalues)
    total = values.sum()
    if total <= 0.0:
        return 0.0
    p = values[values > 0.0] / total
    return float(math.exp(-np.sum(p * np.log(p))))


def log_determinant(eigenvalues) -> float:
    """Sum of log eigenvalues; ``-inf`` when the covariance is singular.

    Eigenvalues at or below ``d * eps * lambda_max`` (the rank tolerance of ``numpy.linalg.
    matrix_rank``) count as zero, so rounding noise does not produce a finite but meaningless value.

    Example:
        >>> round(log_determinant([math.e, 1.0]), 12)
        1.0
        >>> log_determinant([1.0, 0.0])
        -inf
    """
    values = _descending_clipped(eigenvalues)
    if values.size == 0 or values[0] <= 0.0:
        return -math.inf
    tolerance = values.size * np.finfo(np.float64).eps * values[0]
    if values[-1] <= tolerance:
        return -math.inf
    return float(np.sum(np.log(values)))


@dataclass(frozen=True)
class Spectrum:
    """One eigendecomposition of a layer's covariance, read by every statistic.

    Attributes:
        eigenvalues: (d,) float64 numpy array, descending, negatives clipped to 0.
        covariance: (d, d) float64 tensor the eigenvalues come from.
        count: number of samples behind the covariance.
        delta: variance fraction for threshold statistics (intrinsic dimension, saturation).
        eigenvectors: (d, d) float64 tensor, column i belongs to ``eigenvalues[i]``; only when a
            requested statistic needs them, else ``None``.
    """

    eigenvalues: np.ndarray
    covariance: torch.Tensor
    count: int
    delta: float = DEFAULT_DELTA
    eigenvectors: torch.Tensor | None = None

    @property
    def num_features(self) -> int:
        return int(self.eigenvalues.size)

    @property
    def total_variance(self) -> float:
        return float(self.eigenvalues.sum())

    @classmethod
    def from_covariance(
        cls,
        covariance: torch.Tensor,
        count: int,
        *,
        delta: float = DEFAULT_DELTA,
        eigenvectors: bool = False,
    ) -> Spectrum:
        """Eigendecompose a symmetric covariance in float64 (``eigvalsh`` unless vectors needed)."""
        cov = covariance.detach().to(torch.float64)
        if eigenvectors:
            values, vectors = torch.linalg.eigh(cov)
            values, vectors = values.flip(0), vectors.flip(1)
        else:
            values, vectors = torch.linalg.eigvalsh(cov).flip(0), None
        values_np = np.clip(values.cpu().numpy(), 0.0, None)
        return cls(values_np, cov, int(count), float(delta), vectors)


@dataclass(frozen=True)
class StatisticSpec:
    """A registered statistic: a function of a :class:`Spectrum`; calling the spec calls it."""

    name: str
    function: Callable[[Spectrum], object]
    scalar: bool = True
    needs_eigenvectors: bool = False
    description: str = ""

    def __call__(self, spectrum: Spectrum) -> object:
        return self.function(spectrum)


#: Spectrum statistics by name (see :func:`register_statistic`).
STATISTICS: Registry[StatisticSpec] = Registry("statistic", "layerscope.statistics")


def register_statistic(
    name: str, *, scalar: bool = True, needs_eigenvectors: bool = False, override: bool = False
) -> Callable[[Callable[[Spectrum], object]], Callable[[Spectrum], object]]:
    """Register a statistic computed from a :class:`Spectrum` under ``name``.

    Scalar statistics return a float and are written as records; non-scalar ones (matrices,
    vectors) are returned to Python only. A duplicate name is an error.

    Example:
        >>> @register_statistic("top_eigenvalue_share_doc")
        ... def top_share(spectrum):
        ...     return float(spectrum.eigenvalues[0] / max(spectrum.total_variance, 1e-300))
        >>> "top_eigenvalue_share_doc" in list_statistics()
        True
        >>> _ = STATISTICS.remove("top_eigenvalue_share_doc")  # keep the doctest side-effect free
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise OptionError(f"statistic names must be identifiers, got {name!r}")

    def decorator(function: Callable[[Spectrum], object]) -> Callable[[Spectrum], object]:
        doc = (function.__doc__ or "").strip().splitlines()
        spec = StatisticSpec(name, function, scalar, needs_eigenvectors, doc[0] if doc else "")
        STATISTICS.add(name, spec, override=override)
        return function

    return decorator


def list_statistics(*, scalar_only: bool = False) -> list[str]:
    """Names of the registered statistics, sorted.

    Example:
        >>> "saturation" in list_statistics()
        True
    """
    return [n for n in STATISTICS.list() if STATISTICS.get(n).scalar or not scalar_only]


def get_statistic(name: str) -> StatisticSpec:
    """The registered statistic ``name``; an unknown name suggests the closest ones."""
    return STATISTICS.get(name)


def check_recordable(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` as a tuple, after checking each is a registered scalar statistic.

    Example:
        >>> check_recordable(["saturation"])
        ('saturation',)
        >>> check_recordable(["covariance"])
        Traceback (most recent call last):
        ...
        layerscope.errors.OptionError: statistic 'covariance' is not a scalar and cannot be recorded; choose from `layerscope list statistics` (compute non-scalar ones from a covariance with layerscope.stats.compute_statistics)
    """
    names = (names,) if isinstance(names, str) else tuple(names)
    for name in names:
        if not get_statistic(name).scalar:
            raise OptionError(
                f"statistic {name!r} is not a scalar and cannot be recorded; choose from "
                f"`layerscope list statistics` (compute non-scalar ones from a covariance with "
                f"layerscope.stats.compute_statistics)"
            )
    return names


# ---------------------------------------------------------------------- built-in statistics
@register_statistic("intrinsic_dimension")
def _intrinsic_dimension(spectrum: Spectrum) -> float:
    """Smallest k whose top-k eigenvalues explain delta of the variance."""
    return float(intrinsic_dimension(spectrum.eigenvalues, spectrum.delta))


@register_statistic("saturation")
def _saturation(spectrum: Spectrum) -> float:
    """Intrinsic dimension divided by the number of features."""
    return saturation(spectrum.eigenvalues, spectrum.delta)


@register_statistic("trace")
def _trace(spectrum: Spectrum) -> float:
    """Trace of the covariance (total variance)."""
    return float(torch.diagonal(spectrum.covariance).sum())


@register_statistic("diagonal_trace")
def _diagonal_trace(spectrum: Spectrum) -> float:
    """Trace of the diagonalised covariance: eigenvalues clipped at 0, summed (Delve's dtrc)."""
    return spectrum.total_variance


@register_statistic("log_determinant")
def _log_determinant(spectrum: Spectrum) -> float:
    """Log-determinant of the covariance (-inf when singular)."""
    return log_determinant(spectrum.eigenvalues)


@register_statistic("participation_ratio")
def _participation_ratio(spectrum: Spectrum) -> float:
    """(sum lambda)^2 / sum lambda^2."""
    return participation_ratio(spectrum.eigenvalues)


@register_statistic("effective_rank")
def _effective_rank(spectrum: Spectrum) -> float:
    """exp of the entropy of the normalised eigenvalues (Roy & Vetterli 2007)."""
    return effective_rank(spectrum.eigenvalues)


@register_statistic("eigenvalues", scalar=False)
def _eigenvalues(spectrum: Spectrum) -> np.ndarray:
    """All eigenvalues, descending."""
    return spectrum.eigenvalues.copy()


@register_statistic("covariance", scalar=False)
def _covariance(spectrum: Spectrum) -> torch.Tensor:
    """The covariance matrix itself."""
    return spectrum.covariance.clone()


@register_statistic("top_eigenvectors", scalar=False, needs_eigenvectors=True)
def _top_eigenvectors(spectrum: Spectrum) -> torch.Tensor:
    """(d, 2) eigenvectors of the two largest eigenvalues: the axes of :func:`embed`."""
    assert spectrum.eigenvectors is not None
    return spectrum.eigenvectors[:, :2].clone()


#: Scalar statistics computed when none are named.
DEFAULT_STATISTICS: tuple[str, ...] = (
    "saturation",
    "intrinsic_dimension",
    "trace",
    "diagonal_trace",
    "log_determinant",
    "participation_ratio",
    "effective_rank",
)


@dataclass(frozen=True)
class SpectrumStatistics:
    """Statistics of one covariance.

    Attributes:
        values: name -> value; empty when the statistics are undefined (see ``reason``).
        count: samples behind the covariance.
        num_features: d.
        flags: conditions a reader should know, e.g. ``"zero_variance"`` (a dead layer),
            ``"singular"`` (log-determinant is -inf), ``"rejected_batches"``.
        reason: why ``values`` is empty, else ``None``.
    """

    values: dict[str, object]
    count: int
    num_features: int
    flags: frozenset[str] = field(default_factory=frozenset)
    reason: str | None = None

    def __getitem__(self, name: str) -> object:
        return self.values[name]


def compute_statistics(
    covariance: CovarianceResult,
    statistics: Iterable[str] | None = None,
    *,
    delta: float = DEFAULT_DELTA,
) -> SpectrumStatistics:
    """Compute the named statistics of a covariance from one eigendecomposition.

    Args:
        covariance: the result of :meth:`StreamingCovariance.compute`.
        statistics: names from :func:`list_statistics`; default :data:`DEFAULT_STATISTICS`.
        delta: variance fraction for the intrinsic dimension and saturation.

    Example:
        >>> import torch
        >>> from layerscope.stats import StreamingCovariance
        >>> cov = StreamingCovariance(4)
        >>> cov.update(torch.randn(500, 2) @ torch.randn(2, 4))   # rank-2 data in 4 features
        >>> stats = compute_statistics(cov.compute(), ["saturation", "intrinsic_dimension"])
        >>> stats["intrinsic_dimension"], stats["saturation"]
        (2.0, 0.5)
    """
    names = list(DEFAULT_STATISTICS if statistics is None else statistics)
    specs = [get_statistic(name) for name in names]
    if not 0.0 < delta <= 1.0:
        raise OptionError(f"delta must be in (0, 1], got {delta!r}")
    flags = {"rejected_batches"} if covariance.rejected_batches else set()
    if covariance.covariance is None:
        return SpectrumStatistics(
            {}, covariance.count, covariance.num_features, frozenset(flags), covariance.reason
        )
    spectrum = Spectrum.from_covariance(
        covariance.covariance,
        covariance.count,
        delta=delta,
        eigenvectors=any(s.needs_eigenvectors for s in specs),
    )
    if spectrum.total_variance <= 0.0:
        flags.add("zero_variance")
    values = {spec.name: spec.function(spectrum) for spec in specs}
    if values.get("log_determinant") == -math.inf:
        flags.add("singular")
    return SpectrumStatistics(values, covariance.count, covariance.num_features, frozenset(flags))


def embed(
    samples: torch.Tensor, covariance: CovarianceResult, num_components: int = 2
) -> torch.Tensor:
    """Project samples, centred on the accumulated mean, onto the top eigendirections.

    Uses the *eigenvectors* of the covariance (Delve projected onto rows of the covariance
    matrix instead). Returns (n, num_components) float64.

    Example:
        >>> from layerscope.stats import StreamingCovariance
        >>> x = torch.randn(200, 1) * torch.tensor([[3.0, 0.0, 0.0]]) + torch.randn(200, 3) * 0.01
        >>> cov = StreamingCovariance(3); cov.update(x)
        >>> z = embed(x, cov.compute())
        >>> z.shape, bool(z[:, 0].abs().mean() > 100 * z[:, 1].abs().mean())
        (torch.Size([200, 2]), True)
    """
    if covariance.covariance is None or covariance.mean is None:
        raise OptionError(f"cannot embed: {covariance.reason}")
    d = covariance.num_features
    if samples.shape[-1] != d:
        raise OptionError(f"samples have {samples.shape[-1]} features, the covariance {d}")
    if not 1 <= num_components <= d:
        raise OptionError(f"num_components must be in [1, {d}], got {num_components}")
    _, vectors = torch.linalg.eigh(covariance.covariance)
    top = vectors.flip(1)[:, :num_components]  # (d, k), largest eigenvalue first
    centred = samples.detach().reshape(-1, d).to(top.device, torch.float64) - covariance.mean
    return centred @ top
