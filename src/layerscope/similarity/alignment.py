"""Linear CKA between two activation matrices, and over a stream of minibatches (SPEC C9).

- **Linear CKA** (Kornblith et al. 2019, sec. 3, eqs. 1-4): CKA = HSIC(K, L) /
  sqrt(HSIC(K, K) HSIC(L, L)) with K = X X^T, L = Y Y^T and HSIC(K, L) = tr(K H L H) / (n-1)^2.
  For centred data HSIC numerators reduce to ||Y^T X||_F^2 (eq. 1), computed in feature space
  (d1 x d2) unless n x n Gram matrices are cheaper.
- **Unbiased CKA** (Nguyen et al. 2021, sec. 3.1, eqs. 2-3, with the estimator of Song et al.
  2012): the same ratio with HSIC_1, the unbiased estimator, in numerator *and* denominators:
  HSIC_1(K, L) = [tr(K~ L~) + 1^T K~ 1 1^T L~ 1 / ((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1] / (n(n-3)),
  K~ and L~ being K and L with zeroed diagonals. :class:`MinibatchCKA` averages HSIC_1 over
  minibatches (eq. 2) in bounded memory.

The default everywhere in layerscope is the **unbiased** estimator (``unbiased=True``): it is the
one whose minibatch average converges to the full-data value whatever the batch size, so
:func:`cka`, :class:`MinibatchCKA` and :func:`~layerscope.similarity.layer_similarity` give the
same number on the same data; ``unbiased=False`` gives Kornblith et al.'s biased estimator.
CKA is defined for any n >= 4 (n >= 2 biased) and any width.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from layerscope.errors import (
    DegenerateInputError,
    SimilarityInputError,
    TooFewSamplesError,
    UndefinedSimilarityWarning,
)
from layerscope.similarity.inputs import (
    DTYPES,
    Precision,
    Spatial,
    activation_matrix,
    centred,
    pair,
)
from layerscope.stats.base import StreamingStatistic

__all__ = ["MinibatchCKA", "cka"]


class _Kernel:
    """One representation on one set of n samples, ready for HSIC with others.

    Holds the centred features (n, d) and the kernel quantities every HSIC needs: the diagonal
    of K = X X^T, and for the unbiased estimator K~ 1 and 1^T K~ 1 (K~: K with zero diagonal),
    all O(n d). The n x n Gram matrix is formed only when it is no larger than the features
    (n <= d), where it is also the cheaper route.
    """

    def __init__(self, raw: torch.Tensor, unbiased: bool, dtype: torch.dtype, name: str) -> None:
        # HSIC and HSIC_1 are translation invariant; centring is for accuracy. One new matrix:
        # the centred features in the compute dtype; ``residual`` is what rounding left of the
        # column means (tiny), removed from the biased estimator's products exactly.
        self.x, self.residual = centred(raw, dtype, name, residual=not unbiased)
        self.n, self.d = self.x.shape
        self.unbiased = unbiased
        if unbiased:
            self.diagonal = torch.linalg.vector_norm(self.x, dim=1).square()  # (n,) K_ii
            column_sums = self.x.sum(dim=0)  # ~0 after centring; kept so the formula is exact
            self.row_sums = self.x @ column_sums - self.diagonal  # (n,) K~ 1
            self.total = column_sums @ column_sums - self.diagonal.sum()  # 1^T K~ 1
        self._gram: torch.Tensor | None = None

    def gram(self) -> torch.Tensor:
        if self._gram is None:
            if not self.unbiased:  # the Gram route of HSIC_0 needs exactly centred features
                self.x -= self.residual
                self.residual = torch.zeros_like(self.residual)
            self._gram = self.x @ self.x.T  # (n, n)
        return self._gram

    def hsic(self, other: _Kernel) -> torch.Tensor:
        """HSIC_0 (biased, Kornblith eq. 3) or HSIC_1 (unbiased, Nguyen eq. 3), a 0-d tensor."""
        n = self.n
        if n <= max(self.d, other.d):
            trace = (self.gram() * other.gram()).sum()  # tr(K L), Gram route
        else:
            product = self.x.T @ other.x  # ||X^T Y||_F^2, eq. 1
            if not self.unbiased:  # (X - 1 r^T)^T (Y - 1 s^T) = X^T Y - n r s^T
                product = torch.addr(product, self.residual, other.residual, alpha=-n)
            trace = torch.linalg.matrix_norm(product) ** 2
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
    unbiased: bool = True,
    spatial: Spatial | None = None,
    precision: Precision = "float64",
) -> float:
    """Linear CKA between ``x`` (n, d1) and ``y`` (n, d2) (Kornblith et al. 2019).

    By default with the unbiased HSIC estimator in numerator and denominators (Nguyen et al.
    2021; needs n >= 4; can be slightly negative for unrelated data), as everywhere in
    layerscope (module docstring); ``unbiased=False`` is Kornblith et al.'s biased estimator.
    No n x n matrix is built unless n <= max(d1, d2). Invariant to orthogonal maps and isotropic
    scaling (not to general invertible maps), and to translation.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(1000, 8, generator=g, dtype=torch.float64)
        >>> q, _ = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=torch.float64))
        >>> round(cka(x, 3.0 * x @ q + 5.0), 12)   # rotated, scaled, shifted: the same
        1.0
        >>> abs(cka(x, torch.randn(1000, 4, generator=g, dtype=torch.float64))) < 0.05
        True
    """
    x, y, _ = pair(x, y, spatial, precision, min_samples=4 if unbiased else 2)
    dtype = DTYPES[precision]
    kx, ky = _Kernel(x, unbiased, dtype, "x"), _Kernel(y, unbiased, dtype, "y")
    value = _cka_ratio(float(kx.hsic(ky)), float(kx.hsic(kx)), float(ky.hsic(ky)))
    if value is None:
        raise DegenerateInputError(
            "cka: x or y has no (estimable) variance after centring, so CKA is undefined; "
            "exclude constant representations"
            + (" or use more samples with unbiased=True" if unbiased else "")
        )
    return value


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
        if precision not in DTYPES:
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
        dtype = DTYPES[self.precision]
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
                kernels[key] = _Kernel(t.to(device=device), self.unbiased, dtype, name)
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

    def merge_key(self) -> dict[str, object]:
        """Accumulators merge when they compare as many representations with one estimator."""
        return {"num_x": self.num_x, "num_y": self.num_y, "unbiased": self.unbiased}

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
