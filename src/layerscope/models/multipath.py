"""MPNet18 and MPNet36, the multipath "model organisms" of dissertation 10.2 (figure 58).

A 3x3 stem (stride 1), four stages of blocks with 64, 128, 256 and 512 filters (doubling per
stage), global average pooling and a linear output layer. A block runs its input through parallel
pathways of convolutions (each convolution with same padding, batch normalisation and ReLU) and
adds their outputs element-wise (no concatenation, hence no 1x1 reductions). The first layer of
each stage downsamples with stride 2 (10.2.1: "the first layers in each stage are downsampling
layers"), i.e. the first convolution of every pathway in the stage's first block.

- **MPNet18**: two blocks per stage; a pathway of two 3x3 convolutions beside a pathway of two
  7x7 convolutions. Through either pathway it is 18 layers deep (stem, 16 convolutions, output
  layer) and has 34 layers in all (10.2.1).
- **MPNet36**: double the blocks (four per stage) and pathways of different depth, one 3x3
  convolution beside two 7x7 convolutions, for a wider gap between r_min and r_max.

The shortest and longest receptive-field paths (p_min through the 3x3 pathways, p_max through the
7x7 pathways) share only the stem and the output layer. PHD-Lab's code puts the stride on the
*last* layer of the *last* block of a stage; this follows the dissertation's text instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from layerscope.errors import OptionError
from layerscope.models._common import init_kaiming_, scale_channels, validate_width
from layerscope.models._factory import register_model

__all__ = ["MPNet", "MultipathBlock", "mpnet18", "mpnet36"]


class MultipathBlock(nn.Module):
    """Parallel pathways ``(num_layers, kernel_size)`` whose outputs are summed.

    The pathways are the submodules ``pathway0``, ``pathway1``, ...; ``stride`` applies to the
    first convolution of each.

    Example:
        >>> import torch
        >>> block = MultipathBlock(4, 8, paths=((2, 3), (2, 7)), stride=2)
        >>> block(torch.zeros(1, 4, 16, 16)).shape
        torch.Size([1, 8, 8, 8])
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        paths: Sequence[tuple[int, int]],
        stride: int = 1,
    ) -> None:
        super().__init__()
        if not paths:
            raise OptionError("a multipath block needs at least one pathway, got paths=()")
        for index, (num_layers, kernel) in enumerate(paths):
            if num_layers < 1 or kernel < 1 or kernel % 2 == 0:
                raise OptionError(
                    f"pathway {index}: needs >= 1 layer and an odd kernel (same padding), "
                    f"got ({num_layers}, {kernel})"
                )
            layers: list[nn.Module] = []
            for position in range(num_layers):
                source = in_channels if position == 0 else channels
                step = stride if position == 0 else 1
                layers += [
                    nn.Conv2d(source, channels, kernel, step, padding=kernel // 2, bias=False),
                    nn.BatchNorm2d(channels),
                    nn.ReLU(inplace=True),
                ]
            self.add_module(f"pathway{index}", nn.Sequential(*layers))
        self.num_paths = len(paths)

    def forward(self, x):
        out = self.pathway0(x)
        for index in range(1, self.num_paths):
            out = out + getattr(self, f"pathway{index}")(x)
        return out


class MPNet(nn.Module):
    """The multipath network of dissertation 10.2: stem, four stages of multipath blocks, head.

    Args:
        blocks: blocks per stage, e.g. ``(2, 2, 2, 2)``.
        paths: ``(num_layers, kernel_size)`` of each pathway in a block.
        width: factor on every layer's channels.

    Example:
        >>> import torch
        >>> model = MPNet((1, 1, 1, 1), ((1, 3), (1, 7)), width=1 / 16).eval()
        >>> model(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 10])
    """

    def __init__(
        self,
        blocks: Sequence[int],
        paths: Sequence[tuple[int, int]],
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        width = validate_width(width)
        channels = scale_channels(64, width)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        stages = []
        for index, count in enumerate(blocks):
            planes = scale_channels(64 * 2**index, width)
            stage = []
            for position in range(count):
                stride = 2 if position == 0 else 1
                stage.append(MultipathBlock(channels, planes, paths, stride))
                channels = planes
            stages.append(nn.Sequential(*stage))
        self.stages = nn.Sequential(*stages)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)
        init_kaiming_(self)

    def forward(self, x):
        x = self.stages(self.relu(self.bn1(self.conv1(x))))
        return self.fc(self.flatten(self.avgpool(x)))


def _mpnet_factory(name: str, blocks, paths, summary: str):
    def factory(*, num_classes=10, in_channels=3, width=1.0) -> MPNet:
        return MPNet(blocks, paths, num_classes=num_classes, in_channels=in_channels, width=width)

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = summary
    return register_model(name)(factory)


mpnet18 = _mpnet_factory(
    "mpnet18",
    (2, 2, 2, 2),
    ((2, 3), (2, 7)),
    "MPNet18: 2 blocks per stage, pathways of two 3x3 and two 7x7 convolutions (10.2).",
)
mpnet36 = _mpnet_factory(
    "mpnet36",
    (4, 4, 4, 4),
    ((1, 3), (2, 7)),
    "MPNet36: 4 blocks per stage, pathways of one 3x3 and two 7x7 convolutions (10.2).",
)
