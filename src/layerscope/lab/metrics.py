"""Metrics registered in :data:`~layerscope.registry.METRICS`.

A metric is a function ``(logits (N, C), targets (N,)) -> number of correct predictions`` as a
0-dim int64 tensor on the logits' device. Counts add up over batches (unlike per-batch means,
which mis-weight a short last batch), and staying on the device avoids a synchronisation per
batch: sum them over an epoch, then divide by the number of samples once.
``accuracy`` is PHD-Lab's "Accuracy", ``top5`` its "Top5Accuracy" (dissertation 6.2.3).
"""

from __future__ import annotations

import torch

from layerscope.errors import OptionError
from layerscope.registry import METRICS

__all__ = ["accuracy", "top5", "topk_correct"]


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, k: int) -> torch.Tensor:
    """How many targets are among the ``k`` highest logits of their row (k capped at C).

    With tied logits the result follows ``torch.topk``, whose order among ties is unspecified.

    Example:
        >>> logits = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])
        >>> int(topk_correct(logits, torch.tensor([2, 2]), k=2))
        2
    """
    if logits.ndim != 2:
        raise OptionError(f"logits must be (N, classes), got shape {tuple(logits.shape)}")
    if targets.shape != logits.shape[:1]:
        raise OptionError(
            f"targets must be (N,) = ({logits.shape[0]},) class indices, got shape {tuple(targets.shape)}"
        )
    if k < 1:
        raise OptionError(f"k must be >= 1, got {k}")
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices  # (N, k)
    return (top == targets[:, None]).any(dim=1).sum()


@METRICS.register("accuracy")
def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Number of rows whose highest logit is the target (top-1).

    Example:
        >>> int(accuracy(torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]]), torch.tensor([0, 1, 1])))
        2
    """
    return topk_correct(logits, targets, 1)


@METRICS.register("top5")
def top5(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Number of rows whose target is among the 5 highest logits (all of them if C <= 5).

    Example:
        >>> logits = torch.arange(7.0).repeat(2, 1)   # class 6 highest, then 5, 4, 3, 2
        >>> int(top5(logits, torch.tensor([2, 1])))
        1
    """
    return topk_correct(logits, targets, 5)
