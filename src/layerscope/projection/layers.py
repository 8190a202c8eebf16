"""PCA layers: pass-through while training, projection onto the top eigendirections in evaluation
(SPEC C5; dissertation 6.1.6, eq. 12).

In training mode a PCA layer returns its input unchanged and folds it into a
:class:`~layerscope.stats.StreamingCovariance` (a convolution's positions are samples, 6.1.6). On
the first forward pass in evaluation mode it eigendecomposes that covariance once, keeps the k
eigenvectors that explain the fraction ``delta`` of the variance (k by the rule of
:func:`~layerscope.stats.intrinsic_dimension`) as the rows of P (k x d), and projects while
keeping the shape::

    y = mu + (x - mu) P^T P      centred (default): Delve's form, with the mean actually updated
    y = x P^T P                  centered=False: eq. 12 exactly

A convolutional PCA layer applies the same map as a 1x1 convolution (weight P^T P, bias
``mu - P^T P mu``). Switching back to training (``train()``) forgets the covariance and the
decomposition (6.1.6: the covariance is reset whenever the model goes back to training). Setting
``delta`` after fitting re-selects k from the eigenvalues already computed; new samples (more
``update`` calls) make the next evaluation pass decompose again.

The random baseline (dissertation 7.3.1) keeps the same k but projects onto k random orthonormal
directions: the first k columns of the QR factorisation of a seeded d x d Gaussian, which are
the QR factorisation of its first k columns. Those subspaces are nested as k grows, like PCA's.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from layerscope.errors import OptionError, OptionTypeError, ProjectionError
from layerscope.stats.covariance import DEFAULT_MAX_FEATURES, CovarianceResult, StreamingCovariance
from layerscope.stats.spectrum import DEFAULT_DELTA, Spectrum, intrinsic_dimension

__all__ = ["BASELINES", "ConvPCA", "LinearPCA", "eigendecompose", "random_directions"]

#: What a PCA layer projects onto: its top eigendirections, or as many random orthonormal ones.
BASELINES: tuple[str, ...] = ("pca", "random")


def check_delta(delta: object, where: str = "delta") -> float:
    """``delta`` as a float after checking it lies in (0, 1]."""
    if isinstance(delta, bool) or not isinstance(delta, (int, float)):
        raise OptionTypeError(f"{where} must be a number in (0, 1], got {delta!r}")
    if not 0.0 < float(delta) <= 1.0:
        raise OptionError(
            f"{where} must be in (0, 1] (the fraction of variance the kept directions explain), "
            f"got {delta!r}; e.g. 0.99"
        )
    return float(delta)


def eigendecompose(covariance: CovarianceResult) -> Spectrum:
    """The one eigendecomposition of a PCA layer: eigenvalues descending, eigenvectors as columns.

    Example:
        >>> cov = StreamingCovariance(2); cov.update(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        >>> eigendecompose(cov.compute()).eigenvalues.tolist()
        [1.0, 0.0]
    """
    return Spectrum.from_covariance(covariance.covariance, covariance.count, eigenvectors=True)


def random_directions(num_features: int, seed: int) -> torch.Tensor:
    """(d, d) float64 orthonormal columns: the QR factorisation of a seeded d x d Gaussian.

    Column signs are fixed so that R has a positive diagonal, which makes the factorisation
    unique; then ``Q[:, :k]`` is the QR factorisation of the Gaussian's first k columns.

    Example:
        >>> q = random_directions(4, seed=0)
        >>> torch.allclose(q.T @ q, torch.eye(4, dtype=torch.float64))
        True
        >>> torch.equal(q, random_directions(4, seed=0))
        True
    """
    generator = torch.Generator().manual_seed(int(seed))
    gaussian = torch.randn(num_features, num_features, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)
    signs = torch.sign(torch.diagonal(r))
    signs[signs == 0] = 1.0
    return q * signs


class _PCALayer(nn.Module):
    """What LinearPCA and ConvPCA share; they differ in the feature axis and how they apply P^T P."""

    #: Axis of the input that holds the features.
    feature_dim: int = -1

    def __init__(
        self,
        num_features: int,
        delta: float = DEFAULT_DELTA,
        *,
        centered: bool = True,
        max_features: int = DEFAULT_MAX_FEATURES,
        name: str | None = None,
    ) -> None:
        super().__init__()
        # StreamingCovariance checks num_features and max_features (the Tracker's width guard).
        self.covariance = StreamingCovariance(num_features, max_features=max_features, name=name)
        self.num_features = num_features
        self.name = name
        self.centered = bool(centered)
        self._delta = check_delta(delta)
        self._baseline, self._seed = "pca", 0
        d, f64 = num_features, torch.float64
        # Fitted state (valid once `is_fitted`): saved and loaded with state_dict.
        self.register_buffer("mean_", torch.zeros(d, dtype=f64))  # (d,)
        self.register_buffer("eigenvalues_", torch.zeros(d, dtype=f64))  # (d,), descending
        self.register_buffer("eigenvectors_", torch.zeros(d, d, dtype=f64))  # (d, d), columns
        self._fitted = False
        self._updates = 0  # batches folded in; the decomposition belongs to `_decomposed_at`
        self._decomposed_at = -1
        self._random: dict[int, torch.Tensor] = {}  # seed -> (d, d) orthonormal columns
        self._operator: tuple[tuple, torch.Tensor, torch.Tensor | None] | None = None

    # ------------------------------------------------------------------ options
    @property
    def delta(self) -> float:
        """Fraction of variance the kept directions explain; setting it re-selects k only."""
        return self._delta

    @delta.setter
    def delta(self, value: float) -> None:
        self._delta = check_delta(value)
        self._operator = None

    @property
    def baseline(self) -> str:
        """``"pca"`` (the top eigendirections) or ``"random"`` (k random orthonormal ones)."""
        return self._baseline

    @property
    def seed(self) -> int:
        """Seed of the random directions (used by the ``"random"`` baseline)."""
        return self._seed

    def set_baseline(self, baseline: str, seed: int = 0) -> _PCALayer:
        """Project onto the top eigendirections (``"pca"``) or onto as many random orthonormal
        directions drawn with ``seed`` (``"random"``); returns self."""
        if baseline not in BASELINES:
            raise OptionError(f"baseline must be one of {BASELINES}, got {baseline!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise OptionTypeError(f"seed must be an int, got {seed!r}")
        self._baseline, self._seed = baseline, seed
        self._operator = None
        return self

    # ------------------------------------------------------------------ fitting
    def update(self, x: torch.Tensor) -> None:
        """Fold a batch into the covariance, in any mode (features along :attr:`feature_dim`)."""
        self.covariance.update(x, feature_dim=self.feature_dim)
        self._updates += 1

    def reset(self) -> None:
        """Forget the accumulated covariance and the decomposition."""
        self.covariance.reset()
        self._fitted, self._updates, self._decomposed_at = False, 0, -1
        self._operator = None

    def decompose(self) -> _PCALayer:
        """Eigendecompose the accumulated covariance now (the first evaluation pass does it
        otherwise); returns self."""
        result = self.covariance.compute()
        if result.covariance is None:
            raise ProjectionError(
                f"{self._label()} cannot project yet: {result.reason}. Run training batches "
                f"through it (model.train()) or call .update(x) before evaluating"
            )
        spectrum = eigendecompose(result)
        device = self.mean_.device
        self.mean_.copy_(result.mean.to(device))
        self.eigenvalues_.copy_(torch.from_numpy(spectrum.eigenvalues.copy()).to(device))
        self.eigenvectors_.copy_(spectrum.eigenvectors.to(device))
        self._fitted, self._decomposed_at, self._operator = True, self._updates, None
        return self

    @property
    def is_fitted(self) -> bool:
        """Whether a decomposition is available."""
        return self._fitted

    def _check_fitted(self) -> None:
        """Decompose what was accumulated if that has not happened yet (or new samples came)."""
        stale = not self._fitted or self._decomposed_at != self._updates
        if stale and self.covariance.count.item() >= 2:
            self.decompose()
        if not self._fitted:
            raise ProjectionError(
                f"{self._label()} is not fitted: run training batches through it, then switch "
                f"it to evaluation (or call .decompose())"
            )

    @property
    def k_(self) -> int:
        """Kept directions: the smallest k whose top-k eigenvalues explain ``delta`` of the
        variance (0 when the layer has no variance)."""
        self._check_fitted()
        return intrinsic_dimension(self.eigenvalues_, self._delta)

    @property
    def directions_(self) -> torch.Tensor:
        """(d, d) float64 orthonormal columns of the current baseline, the kept ones first."""
        self._check_fitted()
        if self._baseline == "pca":
            return self.eigenvectors_
        if self._seed not in self._random:
            self._random[self._seed] = random_directions(self.num_features, self._seed)
        return self._random[self._seed].to(self.eigenvectors_.device)

    @property
    def components_(self) -> torch.Tensor:
        """(k, d) float64: P, the rows spanning the subspace the layer projects onto."""
        return self.directions_[:, : self.k_].T

    def projection_matrix(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(d, d) P^T P and the (d,) bias ``mu - P^T P mu`` (None when not centred), float64."""
        kept = self.components_  # (k, d)
        matrix = kept.T @ kept
        bias = self.mean_ - matrix @ self.mean_ if self.centered else None
        return matrix, bias

    # ------------------------------------------------------------------ forward
    def train(self, mode: bool = True) -> _PCALayer:
        if mode and not self.training:
            self.reset()  # back to training: a new covariance (dissertation 6.1.6)
        return super().train(mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.update(x)
            return x
        if not self._fitted or self._decomposed_at != self._updates:
            self.decompose()  # the first evaluation pass after training batches
        return self._project(x, *self._cached_operator(x))

    def _cached_operator(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        key = (self._delta, self._baseline, self._seed, self._decomposed_at, x.dtype, x.device)
        if self._operator is None or self._operator[0] != key:
            matrix, bias = self.projection_matrix()
            bias = None if bias is None else bias.to(x.device, x.dtype)
            self._operator = (key, matrix.to(x.device, x.dtype), bias)
        return self._operator[1], self._operator[2]

    def _project(self, x, matrix, bias) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_width(self, x: torch.Tensor) -> None:
        if x.dim() < 2 or x.shape[self.feature_dim] != self.num_features:
            raise OptionError(
                f"{self._label()} projects {self.num_features} features along dimension "
                f"{self.feature_dim}, got shape {tuple(x.shape)}"
            )

    # ------------------------------------------------------------------ state
    def get_extra_state(self) -> dict[str, Any]:
        return {
            "delta": self._delta, "baseline": self._baseline, "seed": self._seed,
            "centered": self.centered, "fitted": self._fitted,
            "covariance": self.covariance.state_dict(),
        }  # fmt: skip

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self._delta = check_delta(state["delta"])
        self.set_baseline(state["baseline"], state["seed"])
        self.centered = bool(state["centered"])
        self.covariance.load_state_dict(state["covariance"])
        self._fitted = bool(state["fitted"])
        self._updates, self._decomposed_at = 0, 0 if self._fitted else -1
        self._operator = None

    def _label(self) -> str:
        name = f" {self.name!r}" if self.name else ""
        return f"{type(self).__name__}{name}"

    def extra_repr(self) -> str:
        return (f"{self.num_features}, delta={self._delta}, baseline={self._baseline!r}, "
                f"centered={self.centered}")  # fmt: skip


class LinearPCA(_PCALayer):
    """A PCA layer for outputs that end in their features: (n, d), (N, T, d), ...

    Args:
        num_features: d.
        delta: fraction of variance the kept directions explain, in (0, 1].
        centered: project around the accumulated mean (default) or through 0 (eq. 12).
        max_features: width guard of the covariance (8 d^2 bytes).
        name: used in messages.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> layer = LinearPCA(3, delta=0.9)
        >>> x = torch.randn(500, 1) @ torch.tensor([[1.0, 2.0, 0.0]]) + 0.01 * torch.randn(500, 3)
        >>> _ = layer(x)                        # training mode: pass-through, accumulating
        >>> _ = layer.eval()
        >>> y = layer(x)                        # evaluation: projected onto one direction
        >>> layer.k_, y.shape, bool((y - x).abs().max() < 0.1)
        (1, torch.Size([500, 3]), True)
    """

    feature_dim = -1

    def _project(self, x, matrix, bias) -> torch.Tensor:
        self._check_width(x)
        return F.linear(x, matrix, bias)  # x P^T P (+ bias); P^T P is symmetric


class ConvPCA(_PCALayer):
    """A PCA layer for (N, C, *spatial) feature maps: every position is a sample, and the
    projection is a 1x1 convolution with weight P^T P and bias ``mu - P^T P mu``.

    Args:
        channels: C.
        delta, centered, max_features, name: as for :class:`LinearPCA`.

    Example:
        >>> layer = ConvPCA(4, delta=1.0)
        >>> x = torch.randn(8, 4, 5, 5)
        >>> _ = layer(x); _ = layer.eval()
        >>> layer.k_, torch.allclose(layer(x), x, atol=1e-5)
        (4, True)
    """

    feature_dim = 1

    def __init__(
        self,
        channels: int,
        delta: float = DEFAULT_DELTA,
        *,
        centered: bool = True,
        max_features: int = DEFAULT_MAX_FEATURES,
        name: str | None = None,
    ) -> None:
        super().__init__(channels, delta, centered=centered, max_features=max_features, name=name)

    def _project(self, x, matrix, bias) -> torch.Tensor:
        self._check_width(x)
        spatial = x.dim() - 2
        if spatial == 0:
            return F.linear(x, matrix, bias)
        convolution = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}.get(spatial)
        if convolution is None:
            raise OptionError(
                f"{self._label()} takes (N, C), (N, C, L), (N, C, H, W) or (N, C, D, H, W) "
                f"feature maps, got shape {tuple(x.shape)}"
            )
        weight = matrix.reshape(*matrix.shape, *([1] * spatial))  # (C, C, 1, ...): a 1x1 kernel
        return convolution(x, weight, bias)
