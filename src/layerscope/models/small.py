"""``demo_cnn``: the small CNN of ``layerscope demo`` (four 3x3 convolutions with batch norm and
pooling, then two linear layers), registered so that a demo run folder rebuilds its model from
``config.json`` like any configured run.
"""

from __future__ import annotations

from torch import nn

from layerscope.models._common import scale_channels, validate_width
from layerscope.models._factory import register_model

__all__ = ["demo_cnn"]


@register_model("demo_cnn")
def demo_cnn(
    *, num_classes: int = 10, in_channels: int = 1, channels: int = 16, width: float = 1.0
) -> nn.Sequential:
    """Four 3x3 conv layers (``channels``, 2x, 4x, 4x, scaled by ``width``) with batch norm,
    ReLU and three 2x2 max-pools, global average pooling, then two linear layers.

    PyTorch's default initialisation, as the demo has always trained it.

    Example:
        >>> import torch
        >>> demo_cnn()(torch.zeros(2, 1, 32, 32)).shape
        torch.Size([2, 10])
        >>> demo_cnn(width=0.5)[0].out_channels
        8
    """
    width = validate_width(width)
    c1, c2, c4 = (scale_channels(channels * k, width) for k in (1, 2, 4))

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    model = nn.Sequential(
        *block(in_channels, c1),
        *block(c1, c2),
        nn.MaxPool2d(2),
        *block(c2, c4),
        nn.MaxPool2d(2),
        *block(c4, c4),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(c4, c4),
        nn.ReLU(inplace=True),
        nn.Linear(c4, num_classes),
    )
    model.in_channels = in_channels  # lets analyses build an example input
    return model
