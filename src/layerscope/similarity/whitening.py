"""The d x d part of the CCA family (SPEC C9): whitening one input's Gram matrix, and its top
principal directions; :mod:`layerscope.similarity.canonical` has the measures and the rules
(rank thresholds, rounding floors) these implement.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from layerscope.errors import DegenerateInputError, SimilarityInputError
from layerscope.stats.spectrum import intrinsic_dimension

__all__ = ["Whitening", "keep_top", "whitened_cross", "whitening"]


@dataclass
class Whitening:
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


def whitening(gram: torch.Tensor, tolerance: float, eps: float, name: str) -> Whitening:
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
        return Whitening(alive, scale, factor, None, complete)
    values, vectors = torch.linalg.eigh(correlation)
    keep = values > floor * float(values[-1])
    return Whitening(alive, scale, None, vectors[:, keep] * values[keep].rsqrt(), complete)


def whitened_cross(xy: torch.Tensor, wx: Whitening, wy: Whitening) -> torch.Tensor:
    """W_x^T D_x^-1/2 S_xy D_y^-1/2 W_y, (r_x, r_y): its singular values are the canonical
    correlations."""
    cross = wx.normalised_rows(xy, wy.columns) * wy.scale[None, :]
    return wy.apply(wx.apply(cross).T).T


def keep_top(
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
        k = intrinsic_dimension(values[:rank].detach().to("cpu", torch.float64).numpy(), variance)
    elif dims > rank:
        raise SimilarityInputError(
            f"svcca: dims={dims} for {name}, but {name} has only {rank} directions above the "
            f"rank threshold; pass dims <= {rank} or use variance=..."
        )
    else:
        k = dims
    return vectors[:, :k], values[:k]
