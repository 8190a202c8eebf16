"""What a batch holds: the inputs and targets of the batches a loader yields (tensors,
``(inputs, targets)`` pairs or dicts with ``"input"`` / ``"target"`` keys)."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["batch_inputs", "batch_targets", "move_to", "sample_count"]


def batch_inputs(batch: Any) -> Any:
    """The model input of a batch: ``x`` of ``(x, y)``, ``batch["input"]``, else the batch.

    Example:
        >>> batch_inputs((torch.zeros(2, 3), torch.ones(2))).shape
        torch.Size([2, 3])
    """
    if isinstance(batch, (tuple, list)) and batch:
        return batch[0]
    if isinstance(batch, dict) and "input" in batch:
        return batch["input"]
    return batch


def batch_targets(batch: Any) -> Any:
    """The targets of a batch: ``y`` of ``(x, y)``, ``batch["target"]``, else ``None``.

    Example:
        >>> batch_targets((torch.zeros(2, 3), torch.ones(2))).tolist(), batch_targets(torch.zeros(2))
        ([1.0, 1.0], None)
    """
    if isinstance(batch, (tuple, list)) and len(batch) > 1:
        return batch[1]
    if isinstance(batch, dict):
        return batch.get("target")
    return None


def move_to(value: Any, device: torch.device | None) -> Any:
    """``value`` on ``device`` if it is a tensor (else as it is)."""
    return value.to(device) if device is not None and isinstance(value, torch.Tensor) else value


def sample_count(inputs: Any) -> int:
    """Samples in a batch of inputs: the first axis of a tensor, else 1 per call.

    Example:
        >>> sample_count(torch.zeros(5, 2)), sample_count(torch.zeros(0, 2))
        (5, 0)
    """
    if isinstance(inputs, torch.Tensor):
        return int(inputs.shape[0]) if inputs.dim() > 0 else 1
    return 1
