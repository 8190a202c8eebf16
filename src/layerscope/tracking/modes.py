"""Small facts about modules shared by tracking and the analyses: evaluation mode that restores
every module's own flag, and where a model lives."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["evaluation_mode", "model_device"]


@contextlib.contextmanager
def evaluation_mode(*models: nn.Module) -> Iterator[None]:
    """Evaluation mode without gradients for ``models``; every module's own training flag
    comes back afterwards, also after an error.

    ``model.train(was_training)`` would not do: it sets every submodule to the top-level flag,
    so a frozen (eval) BatchNorm inside a training model would come back in training mode.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
        >>> _ = model[1].eval()          # frozen BatchNorm in a model that trains
        >>> with evaluation_mode(model):
        ...     model.training, torch.is_grad_enabled()
        (False, False)
        >>> model.training, model[0].training, model[1].training
        (True, True, False)
    """
    flags = {module: module.training for model in models for module in model.modules()}
    try:
        for model in models:
            model.eval()
        with torch.no_grad():
            yield
    finally:
        for module, flag in flags.items():
            module.training = flag


def model_device(model: nn.Module) -> torch.device:
    """Where the model's first parameter (or buffer) lives; the CPU for a model without any.

    Example:
        >>> model_device(nn.Linear(2, 3)), model_device(nn.ReLU())
        (device(type='cpu'), device(type='cpu'))
    """
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")
