"""The convolutional autoencoder of dissertation 7.2.1, table 1.

Encoder: 3x3 convolutions with 16, 8 and 8 filters, each followed by ReLU and 2x2 max pooling
(stride 2). Decoder: a 3x3 convolution with 8 filters, then three times nearest-neighbour
upsampling by 2 followed by a 3x3 convolution (8, 16 and ``in_channels`` filters), all with ReLU.
Input sides must be divisible by 8; the forward pass returns the reconstruction.
"""

from __future__ import annotations

from torch import nn

from layerscope.models._common import init_kaiming_, scale_channels, validate_width
from layerscope.models._factory import register_model

__all__ = ["ConvAutoencoder", "conv_autoencoder"]


def _conv(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True)]


def _pool() -> nn.Module:
    return nn.MaxPool2d(2, stride=2)


def _up() -> nn.Module:
    return nn.Upsample(scale_factor=2, mode="nearest")


class ConvAutoencoder(nn.Module):
    """Table 1's encoder and decoder; ``width`` scales the hidden filters (16, 8, 8, 8, 8, 16).

    Example:
        >>> import torch
        >>> ConvAutoencoder()(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 3, 32, 32])
    """

    def __init__(self, in_channels: int = 3, *, width: float = 1.0) -> None:
        super().__init__()
        width = validate_width(width)
        c16, c8 = scale_channels(16, width), scale_channels(8, width)
        self.encoder = nn.Sequential(
            *_conv(in_channels, c16), _pool(), *_conv(c16, c8), _pool(), *_conv(c8, c8), _pool()
        )
        self.decoder = nn.Sequential(
            *_conv(c8, c8), _up(), *_conv(c8, c8), _up(), *_conv(c8, c16), _up(),
            *_conv(c16, in_channels),
        )  # fmt: skip
        init_kaiming_(self)

    def forward(self, x):
        return self.decoder(self.encoder(x))


@register_model("conv_autoencoder")
def conv_autoencoder(*, num_classes=None, in_channels=3, width=1.0) -> ConvAutoencoder:
    """Table 1's autoencoder. ``num_classes`` is accepted for a uniform factory signature and
    has no effect: the output is the reconstruction, with ``in_channels`` channels."""
    return ConvAutoencoder(in_channels, width=width)
