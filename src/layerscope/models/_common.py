"""Pieces every model of the zoo shares: width scaling and Kaiming-He initialisation."""

from __future__ import annotations

import math
from numbers import Real

from torch import nn

from layerscope.errors import OptionError, OptionTypeError

__all__ = ["init_kaiming_", "scale_channels", "validate_width"]


def validate_width(width: object) -> float:
    """``width`` as a float, or a ``ValueError`` naming the rule (a positive finite number).

    Example:
        >>> validate_width(0.25)
        0.25
    """
    if isinstance(width, bool) or not isinstance(width, Real):
        raise OptionTypeError(
            f"width must be a number such as 1, 0.5 or 0.0625 (1/16), got {width!r} "
            f"({type(width).__name__})"
        )
    value = float(width)
    if not math.isfinite(value) or value <= 0:
        raise OptionError(
            f"width must be a positive finite factor such as 1 or 0.25, got {width!r}"
        )
    return value


def scale_channels(channels: int, width: float) -> int:
    """``round(channels * width)``, at least 1 (dissertation 8.4: every layer scaled alike).

    Example:
        >>> [scale_channels(64, w) for w in (1, 1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 128)]
        [64, 32, 16, 8, 4, 1]
    """
    return max(1, round(channels * width))


def init_kaiming_(model: nn.Module) -> nn.Module:
    """Kaiming-He initialisation of every convolution and linear layer, in place.

    The dissertation initialises all its models this way (8.3.1, He et al. 2015): weights from
    N(0, 2 / fan_in) (the forward-pass variant, eq. 10 of He et al.), biases 0; normalisation
    layers start as the identity (weight 1, bias 0). Returns ``model``.

    Example:
        >>> layer = init_kaiming_(nn.Linear(800, 4))
        >>> round(float(layer.weight.detach().std()), 2)   # sqrt(2 / 800) = 0.05
        0.05
    """
    for module in model.modules():
        if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif (
            isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm))
            and getattr(module, "weight", None) is not None
        ):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model
