"""Streaming covariance of layer outputs in constant memory (SPEC C1).

The dissertation (Richter 2022, section 6.1.3, eq. 10-11) accumulates the running sum of squares
``sum_b A_b^T A_b`` and the running sum, and subtracts the outer product of the mean at the end.
That one-pass formula cancels catastrophically when the mean is large against the spread (with a
mean offset of 1e6 and unit variance it keeps no correct digit in float64). Here every batch is
centred on its own mean first and batches are combined with the pairwise update of Chan, Golub &
LeVeque (1979)::

    n    = n_a + n_b
    d    = mean_b - mean_a
    mean = mean_a + d * n_b / n
    M    = M_a + M_b + (d d^T) * n_a * n_b / n        # M: co-moment, sum of centred outer products

The covariance is ``M / (n - ddof)``, with ``ddof = 0`` by default as in eq. 11 (saturation and
intrinsic dimension do not depend on the scale).
"""

from __future__ import annotations

import math
import threading
import warnings
from dataclasses import dataclass
from typing import Literal

import torch

from layerscope.errors import (
    LayerTooWideError,
    NonFiniteBatchWarning,
    OptionError,
    OptionTypeError,
    fix,
    toml_lines,
)
from layerscope.stats.base import StreamingStatistic
from layerscope.stats.moments import chan_merge
from layerscope.stats.samples import shifted_copy

__all__ = ["DEFAULT_MAX_FEATURES", "CovarianceResult", "StreamingCovariance"]

Precision = Literal["float64", "mixed"]

#: Default width guard: an 8192 x 8192 float64 covariance takes 512 MiB (and as much again for a
#: batch's Gram matrix while updating).
DEFAULT_MAX_FEATURES = 8192


@dataclass(frozen=True)
class CovarianceResult:
    """What :meth:`StreamingCovariance.compute` returns; all tensors are float64.

    Attributes:
        count: number of samples folded in.
        mean: (d,) mean of the samples, or ``None`` when ``count == 0``.
        covariance: (d, d) covariance ``M / (count - ddof)``, or ``None`` when there are too few
            samples; then ``reason`` says why.
        num_features: d.
        rejected_batches: batches refused because they held NaN or inf.
        reason: why ``covariance`` is missing, else ``None``.
    """

    count: int
    mean: torch.Tensor | None
    covariance: torch.Tensor | None
    num_features: int
    rejected_batches: int = 0
    reason: str | None = None


class _Workspace(threading.local):
    """One reusable flat buffer per (device, dtype) and thread.

    Allocating a fresh (n, d) float64 matrix per batch costs more than the Gram product itself on
    CPU (first-touch page faults), and hooks run one at a time, so all accumulators of a thread
    share one buffer that grows to the largest batch seen.
    """

    def __init__(self) -> None:
        self.buffers: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def get(self, numel: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        if device.type != "cpu":  # the CUDA caching allocator already reuses memory
            return torch.empty(numel, dtype=dtype, device=device)
        key = (device, dtype)
        buffer = self.buffers.get(key)
        if buffer is None or buffer.numel() < numel:
            buffer = torch.empty(numel, dtype=dtype, device=device)
            self.buffers[key] = buffer
        return buffer[:numel]


_WORKSPACE = _Workspace()


def release_workspaces() -> None:
    """Free the scratch buffers that covariance updates reuse in this thread."""
    _WORKSPACE.buffers.clear()


def too_wide_fix(name: str | None, width: int) -> str:
    """How to get past the width limit for layer ``name`` of ``width`` output features, in the
    syntax of where the user is (:func:`layerscope.errors.fix`): leave it out or raise the limit.

    Example:
        >>> too_wide_fix("fc", 10)
        "exclude it (Tracker(..., exclude=['fc'])) or raise the limit (Tracker(..., max_features=10))."
    """
    if name is None:  # a StreamingCovariance of the user's own
        return f"raise the limit if the memory is there (max_features={width})."
    return fix(
        python=f"exclude it (Tracker(..., exclude=[{name!r}])) or raise the limit "
        f"(Tracker(..., max_features={width})).",
        config=f"exclude it, {toml_lines('tracker.exclude', [name])}\nor raise the limit, "
        f"{toml_lines('tracker.max_features', width)}",
    )


def format_bytes(num_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if num_bytes < 1024 or unit == "TiB":
            return f"{num_bytes:.1f} {unit}" if unit != "B" else f"{int(num_bytes)} B"
        num_bytes /= 1024
    raise AssertionError("unreachable")


def _shift(x: torch.Tensor, features_first: bool, dtype: torch.dtype) -> torch.Tensor:
    """A cheap stand-in for the batch mean, broadcastable against ``x``: the float64 mean of the
    batch's first samples (at least 64 rows or positions: whole leading samples of a
    (C, N, H, W) view), rounded to ``dtype``. The closer it is to the mean, the smaller the
    shifted sums and the rounding they carry into the co-moment."""
    d = x.shape[0] if features_first else x.shape[-1]
    if features_first:
        positions = math.prod(x.shape[2:])
        head = x[:, : -(-_SHIFT_SAMPLES // positions)]  # ceil(64 / positions) leading samples
        shift = head.reshape(d, -1).mean(dim=1, dtype=torch.float64)
        return shift.to(dtype).view((d,) + (1,) * (x.dim() - 1))
    head = x.reshape(-1, d)[:_SHIFT_SAMPLES]
    return head.mean(dim=0, dtype=torch.float64).to(dtype)


_SHIFT_SAMPLES = 64


def _gram(samples: torch.Tensor) -> torch.Tensor:
    """``samples.T @ samples`` of (n, d) samples (any strides), in their dtype.

    In float32 a long sum of products loses digits in proportion to its length (one layer of
    d = 8 channels over n = 65536 positions: 1e-5 relative), so the samples are cut into blocks
    of ``max(512, d)`` rows whose Gram matrices are formed by one batched product and added by
    torch's pairwise sum (about 5e-8), at no extra cost. The blocks' products take at most as
    much memory as the samples.

    On CPU only the lower block triangle is multiplied, in two or four block rows, and mirrored
    (3/4 or 5/8 of the full product's work; see ``_HALF_BLOCKS``). SciPy's ``syrk`` would
    compute exactly half the entries, but its OpenBLAS thread pool fought torch's inside a
    training step; these are torch's own products in torch's own pool.
    """
    n, d = samples.shape
    if samples.device.type != "cpu" or d < _HALF_MIN_FEATURES or 2 * n < d:
        return _full_gram(samples)
    blocked = _in_sample_blocks(samples)
    gram = torch.empty(d, d, dtype=samples.dtype, device=samples.device)
    blocks = _HALF_BLOCKS if d >= _HALF_FOUR_BLOCKS_MIN_FEATURES else 2
    width = max(_HALF_MIN_WIDTH, -(-d // blocks))
    for start in range(0, d, width):
        stop = min(start + width, d)
        left, right = samples[:, start:stop], samples[:, :stop]
        if blocked:
            gram[start:stop, :stop] = _block_gram(left, right)
        else:
            torch.mm(left.T, right, out=gram[start:stop, :stop])
    for start in range(width, d, width):  # after the products: interleaved, they ran slower
        stop = min(start + width, d)
        gram[:start, start:stop] = gram[start:stop, :start].T
    return gram


def _in_sample_blocks(samples: torch.Tensor) -> bool:
    """Whether the product over these (n, d) samples is summed over blocks of sample rows."""
    return samples.dtype != torch.float64 and samples.shape[0] > _BLOCK_ROWS * 2


def _full_gram(samples: torch.Tensor) -> torch.Tensor:
    """``samples.T @ samples`` as one full product (blocked over sample rows in float32)."""
    return _block_gram(samples, samples) if _in_sample_blocks(samples) else samples.T @ samples


def _block_gram(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """``left.T @ right`` of (n, a) and (n, b) samples, summed over blocks of sample rows."""
    n = left.shape[0]
    rows = max(_BLOCK_ROWS, left.shape[1], right.shape[1])
    blocks = n // rows
    end = blocks * rows
    head_left = left[:end].unflatten(0, (blocks, rows))  # views, no copies
    head_right = right[:end].unflatten(0, (blocks, rows))
    product = torch.bmm(head_left.transpose(1, 2), head_right).sum(dim=0)
    if end < n:
        product += left[end:].T @ right[end:]
    return product


_BLOCK_ROWS = 512
# The lower block triangle of the Gram matrix in four block rows (5/8 of the full product's
# work) from 256 features, in two (3/4) from 64, of at least 16 columns each; the full product
# below 64 features or with fewer samples than half the features. Measured on CPU
# (benchmarks/gram.py, float32, against one full product), on two machines of the same
# description whose MKL differs (docs/performance.md, "Tracking overhead"): on the first, four
# block rows were 20-33% faster for d = 64 to 512 and n >= 1024 (2 threads; 22-34% at 1), two
# block rows 11-14% faster at d = 32; on the second (AMX), four block rows were 16-59% SLOWER at
# d = 32 to 128 (two runs, two interleavings) and 12-26% faster from d = 256 with n >= 2 d, and
# two block rows were 0.99-1.11x at d = 64, 0.93-1.06x at d = 128 and 1.25x at d = 32. Two block
# rows at d = 64 to 128 were not measured on the first machine, where four were the faster.
_HALF_BLOCKS = 4
_HALF_FOUR_BLOCKS_MIN_FEATURES = 256
_HALF_MIN_WIDTH = 16
_HALF_MIN_FEATURES = 64

# Where reading the finiteness flag back costs nothing, so the fold is done in place.
_IN_PLACE_DEVICE_TYPES = frozenset({"cpu"})


class StreamingCovariance(StreamingStatistic):
    """Covariance of a stream of (n, d) sample matrices, numerically stable, in float64.

    Args:
        num_features: d, the width of every sample row.
        precision: ``"float64"`` (default here) shifts and multiplies each batch in float64.
            ``"mixed"`` (the Tracker's default) writes the shifted batch in float32, forms its
            Gram matrix in float32 and accumulates in float64: about 2x faster on CPU, with a
            relative error of about 1e-7 (float32 rounding of the shifted values and of the
            Gram sums). The shift comes from the batch itself, so a large mean offset or a
            mean that jumps between batches costs no digits.
        device: where the state lives. ``None`` (default) follows the first batch's device.
        max_samples: if set, a batch with more rows is reduced to ``max_samples`` rows drawn
            uniformly without replacement (seeded by ``seed``).
        max_features: width guard; a larger ``num_features`` is refused before any allocation.
        name: used in messages (e.g. the layer name).
        seed: seed of the sample cap's random generator.

    State (see :attr:`reductions`): the moments ``count``, ``mean`` and ``comoment`` (reduction
    ``"chan"``: the pairwise formula of :mod:`layerscope.stats.moments`, also across processes
    in :meth:`sync`), and ``rejected_batches`` (sum). ``merge`` and ``sync`` are the base class's.

    Example:
        >>> import torch
        >>> cov = StreamingCovariance(num_features=3)
        >>> x = torch.randn(1000, 3)
        >>> cov.update(x[:600]); cov.update(x[600:])
        >>> result = cov.compute()
        >>> result.count
        1000
        >>> reference = torch.cov(x.double().T, correction=0)
        >>> torch.allclose(result.covariance, reference)
        True
    """

    def __init__(
        self,
        num_features: int,
        *,
        precision: Precision = "float64",
        device: torch.device | str | None = None,
        max_samples: int | None = None,
        max_features: int = DEFAULT_MAX_FEATURES,
        name: str | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        label = f"layer {name!r}" if name else "StreamingCovariance"
        if not isinstance(num_features, int) or isinstance(num_features, bool) or num_features < 1:
            raise OptionError(f"{label}: num_features must be a positive int, got {num_features!r}")
        if precision not in ("float64", "mixed"):
            raise OptionError(f"{label}: precision must be 'float64' or 'mixed', got {precision!r}")
        if max_samples is not None and (not isinstance(max_samples, int) or max_samples < 2):
            raise OptionError(
                f"{label}: max_samples must be an int >= 2 or None, got {max_samples!r}"
            )
        if num_features > max_features:
            matrix = num_features * num_features * 8
            raise LayerTooWideError(
                f"{label} has {num_features} output features; its {num_features} x "
                f"{num_features} float64 covariance needs {format_bytes(matrix)} (and as much "
                f"again while updating), above the limit max_features={max_features}. Downsample "
                f"or pool its output, or {too_wide_fix(name, num_features)}"
            )
        self.num_features = num_features
        self.precision: Precision = precision
        self.max_samples = max_samples
        self.name = name
        self.seed = seed
        self._follow_input_device = device is None
        state_device = torch.device("cpu") if device is None else torch.device(device)
        self.add_moments("count", "mean", "comoment", num_features, state_device)
        self.add_state(
            "rejected_batches", torch.zeros((), dtype=torch.int64, device=state_device), "sum"
        )
        self._generator: torch.Generator | None = None

    # ------------------------------------------------------------------ update
    def update(self, x: torch.Tensor, *, feature_dim: int = -1) -> None:
        """Fold in a batch: ``x`` holds d features along ``feature_dim``; all other axes are samples.

        ``x`` of shape (n, d) is the plain case. A convolution's (N, C, H, W) output is passed
        as is with ``feature_dim=1``: every position of every image is a sample. Either way the
        batch is copied once, in the layout it arrives in (no strided transpose), into a reused
        scratch buffer.

        A batch holding NaN or inf is not folded in; it is counted in ``rejected_batches`` and
        reported by a warning when :meth:`compute` runs. The check needs no host-device
        synchronisation, so it costs nothing on GPU.
        """
        if not isinstance(x, torch.Tensor):
            raise OptionTypeError(
                f"{self._label()}: update() takes a torch.Tensor, got {type(x).__name__}"
            )
        if x.dim() < 2 or not -x.dim() <= feature_dim < x.dim():
            raise OptionError(
                f"{self._label()}: update() takes a tensor of at least 2 dimensions with features "
                f"along feature_dim={feature_dim}, got shape {tuple(x.shape)}"
            )
        if x.shape[feature_dim] != self.num_features:
            raise OptionError(
                f"{self._label()}: expected {self.num_features} features along dimension "
                f"{feature_dim}, got shape {tuple(x.shape)}; for a (N, C, H, W) feature map pass "
                f"feature_dim=1, for (n, d) samples the default feature_dim=-1"
            )
        if x.numel() == 0:
            return
        x = x.detach()
        if self._follow_input_device and x.device != self.device:
            self.to(x.device)
        if x.device != self.device:
            x = x.to(self.device)
        d = self.num_features
        n = x.numel() // d
        # Features last: keep (*samples, d) rows. Otherwise view as (d, *samples): for a
        # (N, C, H, W) map that reads runs of H*W contiguous values.
        features_first = feature_dim % x.dim() != x.dim() - 1
        x = x.movedim(feature_dim, 0) if features_first else x
        if self.max_samples is not None and n > self.max_samples:
            index = self._subsample_index(n, x.device)
            x = x.reshape(d, n)[:, index] if features_first else x.reshape(n, d)[index]
        self._fold(*self._batch_sums(x, features_first))

    def _label(self) -> str:
        return f"layer {self.name!r}" if self.name else "StreamingCovariance"

    def _subsample_index(self, n: int, device: torch.device) -> torch.Tensor:
        # Drawn where the batch is: a CPU index copied to a GPU would wait for the GPU.
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
        return torch.randperm(n, generator=self._generator, device=device)[: self.max_samples]

    def _batch_sums(
        self, x: torch.Tensor, features_first: bool
    ) -> tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Count, shift (float64), shifted sums (float64) and shifted Gram matrix (in the work
        dtype) of one batch ((d, *s) or (*s, d)).

        One pass writes ``x - shift`` into the scratch buffer (copy, dtype conversion and shift
        fused); one matrix product gives the shifted Gram matrix and a sum over the samples the
        shifted sums. (A row of ones beside the features would give the sums from the same
        product, but d + 1 columns cost MKL 10-45% more than d when d is a multiple of 16: 2.19
        against 1.55 ms for 32 channels of 65536 positions, one thread.) The shift is the mean of
        the batch's first few samples, so that the shifted values are of the order of the
        spread whatever the offset (a mean of 1e6 with unit variance keeps its digits in
        float32) and whatever the jump from earlier batches; the exact identity
        ``M_b = G - s s^T / n`` (s: shifted sums) removes what the shift missed, in float64
        (:meth:`_fold`).
        """
        d = self.num_features
        n = x.numel() // d
        work_dtype = torch.float64 if self.precision == "float64" else torch.float32
        shift = _shift(x, features_first, work_dtype)
        buffer = _WORKSPACE.get(d * n, work_dtype, x.device)
        if features_first:  # (d, n): one row per feature
            rows = buffer.view(d, n)
            shifted_copy(x, shift, rows.view(x.shape))
            samples, sums = rows.T, rows.sum(dim=1)
        else:  # (n, d): one column per feature
            samples = buffer.view(n, d)
            shifted_copy(x.reshape(n, d), shift, samples)
            sums = samples.sum(dim=0)
        return n, shift.flatten().to(torch.float64), sums.to(torch.float64), _gram(samples)

    def _fold(self, n_b: int, shift: torch.Tensor, sums: torch.Tensor, gram: torch.Tensor) -> None:
        """Chan's pairwise update with the batch's co-moment ``G - s s^T / n_b``; a non-finite
        batch is dropped without a host sync.

        A NaN or inf anywhere in the batch reaches the diagonal of G (each entry is bounded by
        the diagonal's, Cauchy-Schwarz), so the diagonal and the sums are what is checked. On
        CPU that check costs nothing to read back, and the d x d float64 work is done in place:
        ``M += G``, then the two rank-1 terms, three passes over M where forming the batch's
        co-moment and merging it out of place took about eight (0.13 against 0.28 ms for
        d = 512, measured with the state in cache). On other devices the merged state is
        selected by ``torch.where`` on the device, so nothing waits for it.
        """
        mean_b = shift + sums / n_b
        finite = torch.isfinite(mean_b).all() & torch.isfinite(gram.diagonal()).all()
        if self.comoment.device.type in _IN_PLACE_DEVICE_TYPES:
            if not finite:
                self.rejected_batches += 1
                return
            count = self.count + n_b
            delta = mean_b - self.mean
            self.comoment.add_(gram)  # a float32 Gram matrix is widened on the way
            self.comoment.addr_(sums, sums, alpha=-1.0 / n_b)
            self.comoment.addr_(delta, delta * (self.count * n_b / count))
            self.mean = self.mean + delta * (n_b / count)
            self.count = count
            return
        comoment_b = gram.to(torch.float64) - torch.outer(sums, sums / n_b)
        count, mean, comoment = chan_merge(
            self.count, self.mean, self.comoment, n_b, mean_b, comoment_b
        )
        self.mean = torch.where(finite, mean, self.mean)
        self.comoment = torch.where(finite, comoment, self.comoment)
        self.count = torch.where(finite, count, self.count)
        self.rejected_batches = self.rejected_batches + (~finite).to(torch.int64)

    def merge_key(self) -> dict[str, object]:
        """Covariances merge when they have the same number of features."""
        return {"num_features": self.num_features}

    # ------------------------------------------------------------------ compute
    def compute(self, ddof: int = 0) -> CovarianceResult:
        """Count, mean and covariance ``comoment / (count - ddof)``, all float64.

        With fewer than 2 samples (or not more than ``ddof``) the covariance is ``None`` and
        ``reason`` says why; batches rejected for NaN/inf are reported by a
        :class:`~layerscope.errors.NonFiniteBatchWarning`.
        """
        count = int(self.count.item())
        rejected = int(self.rejected_batches.item())
        if rejected:
            warnings.warn(
                f"{self._label()}: {rejected} batch(es) containing NaN or inf were rejected and "
                f"not included in the covariance of {count} samples",
                NonFiniteBatchWarning,
                stacklevel=2,
            )
        mean = self.mean.clone() if count > 0 else None
        if count < max(2, ddof + 1):
            return CovarianceResult(
                count,
                mean,
                None,
                self.num_features,
                rejected,
                reason=f"covariance needs at least {max(2, ddof + 1)} samples, got {count}",
            )
        covariance = self.comoment / (count - ddof)
        # Symmetrise: the rank-1 corrections are symmetric only up to rounding.
        covariance = (covariance + covariance.T) / 2
        return CovarianceResult(count, mean, covariance, self.num_features, rejected)

    def __repr__(self) -> str:
        return (
            f"StreamingCovariance(num_features={self.num_features}, precision={self.precision!r}, "
            f"count={int(self.count.item())}, device={self.device})"
        )
