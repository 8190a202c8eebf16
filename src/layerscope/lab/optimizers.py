"""Optimizers registered in :data:`~layerscope.registry.OPTIMIZERS`, and the step schedule.

Every factory has the signature ``(params, *, lr, momentum, weight_decay) -> Optimizer`` with
the optimizer's usual defaults, so a config that leaves a value out gets that default and the
resolved config records the number used (:mod:`layerscope.lab.config` reads the defaults from
the signatures). ``momentum`` means the same thing everywhere it can: SGD's and RMSprop's
momentum, and Adam's / AdamW's first-moment decay beta1 (0.9 by default, Kingma & Ba 2014).

The learning-rate schedule of PHD-Lab configs is a step schedule: multiply the rate by
``factor`` every ``step`` epochs (:func:`step_schedule`).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import StepLR

from layerscope.errors import OptionError
from layerscope.registry import OPTIMIZERS

__all__ = ["adam", "adamw", "rmsprop", "sgd", "step_schedule"]


def _check(name: str, lr: float, momentum: float, weight_decay: float) -> None:
    if not lr > 0:
        raise OptionError(f"{name}: lr must be > 0, got {lr!r}")
    if not 0 <= momentum < 1:
        raise OptionError(f"{name}: momentum must lie in [0, 1), got {momentum!r}")
    if not weight_decay >= 0:
        raise OptionError(f"{name}: weight_decay must be >= 0, got {weight_decay!r}")


@OPTIMIZERS.register("sgd")
def sgd(
    params: Iterable, *, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0
) -> Optimizer:
    """Stochastic gradient descent with (heavy-ball) momentum.

    Example:
        >>> opt = sgd(torch.nn.Linear(2, 1).parameters(), lr=0.1)
        >>> opt.defaults["lr"], opt.defaults["momentum"]
        (0.1, 0.9)
    """
    _check("sgd", lr, momentum, weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


@OPTIMIZERS.register("adam")
def adam(
    params: Iterable, *, lr: float = 1e-3, momentum: float = 0.9, weight_decay: float = 0.0
) -> Optimizer:
    """Adam (Kingma & Ba 2014), the dissertation's default optimizer; momentum is beta1.

    Example:
        >>> adam(torch.nn.Linear(2, 1).parameters()).defaults["betas"]
        (0.9, 0.999)
    """
    _check("adam", lr, momentum, weight_decay)
    return torch.optim.Adam(params, lr=lr, betas=(momentum, 0.999), weight_decay=weight_decay)


@OPTIMIZERS.register("adamw")
def adamw(
    params: Iterable, *, lr: float = 1e-3, momentum: float = 0.9, weight_decay: float = 0.01
) -> Optimizer:
    """AdamW: Adam with decoupled weight decay (Loshchilov & Hutter 2019); momentum is beta1.

    Example:
        >>> adamw(torch.nn.Linear(2, 1).parameters()).defaults["weight_decay"]
        0.01
    """
    _check("adamw", lr, momentum, weight_decay)
    return torch.optim.AdamW(params, lr=lr, betas=(momentum, 0.999), weight_decay=weight_decay)


@OPTIMIZERS.register("rmsprop")
def rmsprop(
    params: Iterable, *, lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0
) -> Optimizer:
    """RMSprop (Hinton's lecture 6e), torch's defaults.

    Example:
        >>> rmsprop(torch.nn.Linear(2, 1).parameters()).defaults["alpha"]
        0.99
    """
    _check("rmsprop", lr, momentum, weight_decay)
    return torch.optim.RMSprop(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def step_schedule(optimizer: Optimizer, step: int | None, factor: float = 0.1) -> StepLR:
    """Multiply the learning rate by ``factor`` every ``step`` epochs; ``step=None`` keeps it.

    Call ``scheduler.step()`` once per epoch, after the optimizer steps. A constant schedule is a
    StepLR with factor 1, so the trainer always has a scheduler to checkpoint.

    Example:
        >>> opt = sgd(torch.nn.Linear(2, 1).parameters(), lr=1.0)
        >>> schedule = step_schedule(opt, step=2, factor=0.5)
        >>> rates = []
        >>> for epoch in range(5):
        ...     rates.append(opt.param_groups[0]["lr"])
        ...     opt.step(); schedule.step()
        >>> rates
        [1.0, 1.0, 0.5, 0.5, 0.25]
    """
    if step is None:
        return StepLR(optimizer, step_size=1, gamma=1.0)
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise OptionError(f"step must be an int >= 1 (epochs between decays) or None, got {step!r}")
    if not factor > 0:
        raise OptionError(f"factor must be > 0, got {factor!r}")
    return StepLR(optimizer, step_size=step, gamma=factor)
