"""A multilayer perceptron that flattens its input (the dense model of dissertation 4.3)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from layerscope.errors import OptionError
from layerscope.models._common import init_kaiming_, scale_channels, validate_width
from layerscope.models._factory import register_model

__all__ = ["MLP", "mlp"]


class MLP(nn.Module):
    """Flatten, then ``Linear -> ReLU`` for each hidden size, then the output layer.

    Args:
        in_features: size of the flattened input.
        hidden: units of each hidden layer (scaled by ``width``).
        num_classes: outputs.

    Example:
        >>> import torch
        >>> MLP(12, (8, 4), num_classes=3)(torch.zeros(5, 3, 2, 2)).shape
        torch.Size([5, 3])
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int] = (512, 256),
        *,
        num_classes: int = 10,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        width = validate_width(width)
        if in_features < 1:
            raise OptionError(f"in_features must be >= 1, got {in_features}")
        layers: list[nn.Module] = [nn.Flatten()]
        features = in_features
        for units in hidden:
            units = scale_channels(int(units), width)
            layers += [nn.Linear(features, units), nn.ReLU(inplace=True)]
            features = units
        layers.append(nn.Linear(features, num_classes))
        self.layers = nn.Sequential(*layers)
        init_kaiming_(self)

    def forward(self, x):
        return self.layers(x)


@register_model("mlp")
def mlp(
    *,
    num_classes=10,
    in_channels=3,
    input_size: int | Sequence[int] = 32,
    hidden: Sequence[int] = (512, 256),
    width=1.0,
) -> MLP:
    """An MLP for ``in_channels`` x ``input_size`` images (an int means a square image)."""
    sizes = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    model = MLP(in_channels * math.prod(sizes), hidden, num_classes=num_classes, width=width)
    model.in_channels = in_channels  # lets analyses build an example input: (1, C, *sizes)
    model.input_size = sizes
    return model
