"""How well a (projected) network does on a loader: accuracy for classifiers, reconstruction
MSE for autoencoders (dissertation 7.2, table 3), or any per-sample metric.

A metric is a function ``(outputs, inputs, targets) -> (N,)`` per-sample values; the score is
their mean over the whole loader (so a short last batch weighs what its samples weigh).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from layerscope.errors import OptionError, OptionTypeError, ProjectionError
from layerscope.projection.batches import batch_inputs, batch_targets, move_to
from layerscope.tracking.modes import evaluation_mode, model_device

__all__ = ["METRICS", "Metric", "accuracy", "evaluate", "metric_name", "reconstruction_mse"]

Metric = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]


def accuracy(outputs: torch.Tensor, inputs: torch.Tensor, targets: Any) -> torch.Tensor:
    """1.0 where the highest output is the target, else 0.0 (one value per sample).

    Example:
        >>> accuracy(torch.tensor([[2.0, 1.0], [0.0, 3.0]]), None, torch.tensor([0, 0])).tolist()
        [1.0, 0.0]
    """
    if not isinstance(targets, torch.Tensor):
        raise ProjectionError(
            "metric 'accuracy' needs (inputs, targets) batches; for an autoencoder use metric='mse'"
        )
    if outputs.dim() != 2 or outputs.shape[0] != targets.shape[0]:
        raise ProjectionError(
            f"metric 'accuracy' needs (batch, classes) outputs, got shape {tuple(outputs.shape)} "
            f"for {targets.shape[0]} targets; pass metric='mse' or a callable"
        )
    return (outputs.argmax(dim=1) == targets.to(outputs.device)).to(torch.float64)


def reconstruction_mse(outputs: torch.Tensor, inputs: torch.Tensor, targets: Any) -> torch.Tensor:
    """Mean squared error between each reconstruction and its input (one value per sample).

    Example:
        >>> reconstruction_mse(torch.ones(2, 4), torch.zeros(2, 4), None).tolist()
        [1.0, 1.0]
    """
    if outputs.shape != inputs.shape:
        raise ProjectionError(
            f"metric 'mse' compares the output with the input (a reconstruction), got output "
            f"shape {tuple(outputs.shape)} for input shape {tuple(inputs.shape)}"
        )
    error = (outputs.to(torch.float64) - inputs.to(outputs.device, torch.float64)) ** 2
    return error.reshape(error.shape[0], -1).mean(dim=1)


#: The metrics that can be named: name -> function.
METRICS: dict[str, Metric] = {"accuracy": accuracy, "mse": reconstruction_mse}


def _resolve(metric: str | Metric) -> Metric:
    if callable(metric):
        return metric
    if isinstance(metric, str) and metric in METRICS:
        return METRICS[metric]
    raise OptionError(
        f"metric must be one of {sorted(METRICS)} or a callable (outputs, inputs, targets) -> "
        f"per-sample values, got {metric!r}"
    )


def metric_name(metric: str | Metric) -> str:
    """The name a metric's column gets: the given name, or the callable's ``__name__``.

    Example:
        >>> metric_name("mse"), metric_name(lambda o, i, t: o)
        ('mse', 'metric')
    """
    _resolve(metric)
    if isinstance(metric, str):
        return metric
    name = getattr(metric, "__name__", "metric")
    return name if name.isidentifier() else "metric"


def evaluate(
    model: nn.Module, loader: Iterable[Any], metric: str | Metric = "accuracy", *, device=None
) -> float:
    """The mean of ``metric`` over every sample of ``loader``, ``model`` in evaluation mode
    (every module's own training flag comes back afterwards).

    Example:
        >>> model = nn.Linear(2, 2)
        >>> with torch.no_grad():
        ...     _ = model.weight.copy_(torch.eye(2)); _ = model.bias.zero_()
        >>> batches = [(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), torch.tensor([0, 1, 1]))]
        >>> round(evaluate(model, batches), 4)
        0.6667
    """
    function = _resolve(metric)
    device = torch.device(device) if device is not None else model_device(model)
    total, count = torch.zeros((), dtype=torch.float64, device=device), 0
    with evaluation_mode(model):
        for batch in loader:
            inputs = move_to(batch_inputs(batch), device)
            values = function(model(inputs), inputs, move_to(batch_targets(batch), device))
            if not isinstance(values, torch.Tensor):
                raise OptionTypeError(
                    f"a metric must return a tensor of per-sample values, got {type(values)}"
                )
            total += values.detach().to(device, torch.float64).sum()
            count += values.numel()
    if count == 0:
        raise ProjectionError(
            "the evaluation loader yielded no samples; pass a loader over the evaluation data"
        )
    return float(total) / count
