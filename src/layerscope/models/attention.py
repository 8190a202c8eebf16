"""Add-on attention blocks for residual networks (dissertation 3.3.6 and 10.1).

- :class:`SqueezeExcitation` (Hu et al. 2018): global average pooling, a 1x1 bottleneck
  (reduction 16) and a gate weigh the channels.
- :class:`SpatialAttention` (Woo et al. 2018): channel-wise mean and max, a 7x7 convolution and a
  gate weigh the positions.
- :class:`CBAM` (Woo et al. 2018): channel attention from average- and max-pooled descriptors
  through a shared bottleneck, followed by spatial attention.

The gate is a sigmoid, as in the cited papers; the dissertation's prose (3.3.6) speaks of a
softmax, which would make the weights of C channels sum to one and shrink the features C-fold.
"""

from __future__ import annotations

import torch
from torch import nn

from layerscope.errors import OptionError

__all__ = ["ATTENTION_BLOCKS", "CBAM", "SpatialAttention", "SqueezeExcitation", "make_attention"]


class SqueezeExcitation(nn.Module):
    """Channel attention: ``x * sigmoid(fc2(relu(fc1(mean_hw(x)))))``.

    Example:
        >>> block = SqueezeExcitation(32)
        >>> block(torch.ones(2, 32, 5, 5)).shape
        torch.Size([2, 32, 5, 5])
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        return x * self.gate(self.fc2(self.relu(self.fc1(self.pool(x)))))


class SpatialAttention(nn.Module):
    """Spatial attention: ``x * sigmoid(conv7x7([mean_c(x), max_c(x)]))``.

    Example:
        >>> SpatialAttention()(torch.ones(2, 8, 5, 5)).shape
        torch.Size([2, 8, 5, 5])
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        descriptor = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * self.gate(self.conv(descriptor))


class _ChannelAttention(nn.Module):
    """CBAM's channel attention: average- and max-pooled descriptors share one bottleneck."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.max_pool = nn.AdaptiveMaxPool2d(1)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1)
        )
        self.gate = nn.Sigmoid()

    def forward(self, x):
        return x * self.gate(self.mlp(self.avg_pool(x)) + self.mlp(self.max_pool(x)))


class CBAM(nn.Module):
    """Channel attention followed by spatial attention (Woo et al. 2018).

    Example:
        >>> CBAM(16)(torch.ones(2, 16, 5, 5)).shape
        torch.Size([2, 16, 5, 5])
    """

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.channel = _ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x):
        return self.spatial(self.channel(x))


#: The ``attention=`` choices of the residual networks.
ATTENTION_BLOCKS = {"se": SqueezeExcitation, "cbam": CBAM}


def make_attention(kind: str | None, channels: int) -> nn.Module | None:
    """The attention block named ``kind`` ("se", "spatial", "cbam") for ``channels``, or None.

    Example:
        >>> type(make_attention("se", 64)).__name__
        'SqueezeExcitation'
        >>> make_attention(None, 64) is None
        True
    """
    if kind is None:
        return None
    if kind == "spatial":
        return SpatialAttention()
    if kind in ATTENTION_BLOCKS:
        return ATTENTION_BLOCKS[kind](channels)
    raise OptionError(f"attention must be one of 'se', 'spatial', 'cbam' or None, got {kind!r}")
