"""Chan, Golub & LeVeque's pairwise combination of moments: the one place it is written.

Two sets of samples with counts n_a, n_b, means m_a, m_b and co-moments (sums of centred outer
products) M_a, M_b combine exactly into (Chan et al. 1979; the same update torchmetrics uses to
merge Pearson correlations)::

    n = n_a + n_b
    d = m_b - m_a
    m = m_a + d * n_b / n
    M = M_a + M_b + (d d^T) * n_a * n_b / n

:func:`chan_merge` applies it to two states, :func:`chan_sync` to the states of every process
of a ``torch.distributed`` group using only all-reduce sums (memory O(d^2) whatever the world
size). Both are pure: they return new tensors and change none of their arguments. A count of 0
on either side is allowed (the other side comes back).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["chan_merge", "chan_sync"]


def chan_merge(
    count_a: torch.Tensor,
    mean_a: torch.Tensor,
    comoment_a: torch.Tensor,
    count_b: torch.Tensor | int,
    mean_b: torch.Tensor,
    comoment_b: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Count, mean and co-moment of the union of two sample sets (float64 tensors).

    Example:
        >>> x = torch.randn(10, 3, dtype=torch.float64)
        >>> def moments(rows):
        ...     mean = rows.mean(0)
        ...     return torch.tensor(float(len(rows)), dtype=torch.float64), mean, (rows - mean).T @ (rows - mean)
        >>> n, mean, comoment = chan_merge(*moments(x[:4]), *moments(x[4:]))
        >>> int(n), torch.allclose(comoment, moments(x)[2])
        (10, True)
    """
    count = count_a + count_b
    safe = count.clamp(min=1) if isinstance(count, torch.Tensor) else max(count, 1)
    delta = mean_b - mean_a  # (d,)
    mean = mean_a + delta * (count_b / safe)
    comoment = comoment_a + comoment_b
    comoment += torch.outer(delta, delta * (count_a * count_b / safe))
    return count, mean, comoment


def chan_sync(
    count: torch.Tensor,
    mean: torch.Tensor,
    comoment: torch.Tensor,
    all_reduce: Callable[[torch.Tensor], None],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The moments of all processes combined, from sums only.

    ``all_reduce(t)`` must sum ``t`` in place over the processes (``torch.distributed.
    all_reduce``). First the counts and the count-weighted means give the global mean g; then
    every process re-centres its co-moment on g (``M_r + n_r (m_r - g)(m_r - g)^T``, exact) and
    those are summed.

    Example (one process: the identity):
        >>> mean, comoment = torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64)
        >>> n, m, c = chan_sync(torch.tensor(3.0, dtype=torch.float64), mean, comoment, lambda t: None)
        >>> float(n), torch.equal(c, comoment)
        (3.0, True)
    """
    total = count.clone()
    weighted = mean * count
    all_reduce(total)
    all_reduce(weighted)
    global_mean = weighted / total.clamp(min=1)
    offset = mean - global_mean
    centred = comoment + torch.outer(offset, offset * count)
    all_reduce(centred)
    return total, global_mean, centred
