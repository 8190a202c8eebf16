"""Frame potential of a layer's normalised weight rows and each unit's contribution.

Heitmann, "Sources of Redundancy in Neural Networks", section 3.1 (after Benedetto & Fickus):
the rows ``w_i`` of a weight matrix (one per unit) are normalised, ``ŵ_i = w_i / ||w_i||``, and

    FP  = sum_ij <ŵ_i, ŵ_j>^2              (i = j included, so FP >= m for m non-zero rows)
    c_i = sum_j  <ŵ_i, ŵ_j>^2              (FP = sum_i c_i)

A high FP means clustered (redundant) rows; its minimum ``max(m, m^2 / n)`` is reached by a
tight frame. Removing unit ``i`` changes FP by the identity used for greedy pruning in O(m):

    FP(without i) = FP - 2 c_i + <ŵ_i, ŵ_i>^2        (the last term is 1, or 0 for a zero row)

A zero row has no direction: it stays zero after normalisation, so it contributes 0 and the
frame potential of an all-zero matrix is 0 (never NaN). The product is formed on the smaller
side: ``c = rowsum((Ŵ (Ŵᵀ Ŵ)) ∘ Ŵ)`` when n < m, so the cost is m n min(m, n).
"""

from __future__ import annotations

import torch

__all__ = ["frame_potential", "normalized_rows", "removal_frame_potential"]


def normalized_rows(matrix: torch.Tensor) -> torch.Tensor:
    """Rows of a 2-D ``matrix`` divided by their Euclidean norms, in float64; zero rows stay 0.

    Example:
        >>> normalized_rows(torch.tensor([[3.0, 4.0], [0.0, 0.0]])).tolist()
        [[0.6, 0.8], [0.0, 0.0]]
    """
    if matrix.dim() != 2:
        raise ValueError(
            f"frame potential needs a 2-D matrix (units x inputs), got shape "
            f"{tuple(matrix.shape)}; reshape a convolution's weight with weight.flatten(1)"
        )
    rows = matrix.detach().to(torch.float64)
    norms = torch.linalg.vector_norm(rows, dim=1, keepdim=True)
    return torch.where(norms > 0, rows / norms.clamp_min(torch.finfo(torch.float64).tiny), 0.0)


def frame_potential(matrix: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Frame potential of the normalised rows of ``matrix`` (m, n) and the contributions c (m,).

    Example:
        >>> fp, c = frame_potential(torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 5.0]]))
        >>> fp, c.tolist()          # two parallel rows (each 1 + 1) and one orthogonal (1)
        (5.0, [2.0, 2.0, 1.0])
    """
    rows = normalized_rows(matrix)  # (m, n)
    m, n = rows.shape
    if m == 0:
        return 0.0, rows.new_zeros(0)
    if n < m:
        inputs = rows.T @ rows  # (n, n)
        contributions = ((rows @ inputs) * rows).sum(dim=1)
    else:
        gram = rows @ rows.T  # (m, m)
        contributions = gram.square().sum(dim=1)
    return float(contributions.sum()), contributions


def removal_frame_potential(
    total: float, contributions: torch.Tensor, self_terms: torch.Tensor
) -> torch.Tensor:
    """FP of the matrix without each row: ``total - 2 c_i + <ŵ_i, ŵ_i>^2``, all i at once.

    ``self_terms`` holds ``<ŵ_i, ŵ_i>^2``: 1 for non-zero rows, 0 for zero rows.

    Example:
        >>> fp, c = frame_potential(torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 5.0]]))
        >>> removal_frame_potential(fp, c, torch.ones(3)).tolist()
        [2.0, 2.0, 4.0]
    """
    return total - 2.0 * contributions + self_terms
