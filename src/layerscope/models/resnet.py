"""ResNet18/34/50 (He et al. 2016) with the two stems the dissertation compares (9.4).

- ``stem="imagenet"``: 7x7 convolution with stride 2 and a 3x3 max pooling with stride 2, as
  designed for 224 px images.
- ``stem="cifar"``: one 3x3 convolution with stride 1 and no pooling, He et al.'s variant for
  32 px images, which shrinks every receptive field about four-fold.

The registered names ``resnet18`` / ``resnet34`` / ``resnet50`` use the ImageNet stem and
``resnet18_cifar`` / ``resnet34_cifar`` the CIFAR stem; every factory also takes ``stem=``.

``skip=False`` removes the residual additions and the projection shortcuts, leaving the plain
sequential network of 9.3 and 10.1 ("ResNet18NoSkip"). ``attention`` adds a squeeze-excitation,
spatial-attention or CBAM block to the residual branch of every block, before the addition
(10.1). ``width`` scales every layer's channels. Module names follow torchvision
(``layer2.0.conv1``, ``layer2.0.downsample.0``, ``fc``), so layer names match across tools.
"""

from __future__ import annotations

from torch import nn

from layerscope.errors import OptionError, OptionTypeError
from layerscope.models._common import init_kaiming_, scale_channels, validate_width
from layerscope.models._factory import register_model
from layerscope.models.attention import make_attention

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "resnet18",
    "resnet18_cifar",
    "resnet34",
    "resnet34_cifar",
    "resnet50",
]

STEMS = ("imagenet", "cifar")


def _conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int = 1):
    conv = nn.Conv2d(in_channels, out_channels, kernel, stride, padding=kernel // 2, bias=False)
    return conv, nn.BatchNorm2d(out_channels)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut."""

    expansion = 1

    def __init__(self, in_channels, channels, stride=1, *, skip=True, attention=None) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(in_channels, channels, 3, stride)
        self.relu = nn.ReLU(inplace=True)
        self.conv2, self.bn2 = _conv_bn(channels, channels, 3)
        self.attention = make_attention(attention, channels)
        self.skip = skip
        self.downsample = _shortcut(in_channels, channels, stride) if skip else None

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.attention is not None:
            out = self.attention(out)
        if self.skip:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride, torchvision's "v1.5"), 1x1 expand by 4."""

    expansion = 4

    def __init__(self, in_channels, channels, stride=1, *, skip=True, attention=None) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1, self.bn1 = _conv_bn(in_channels, channels, 1)
        self.conv2, self.bn2 = _conv_bn(channels, channels, 3, stride)
        self.conv3, self.bn3 = _conv_bn(channels, out_channels, 1)
        self.relu = nn.ReLU(inplace=True)
        self.attention = make_attention(attention, out_channels)
        self.skip = skip
        self.downsample = _shortcut(in_channels, out_channels, stride) if skip else None

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.attention is not None:
            out = self.attention(out)
        if self.skip:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(*_conv_bn(in_channels, out_channels, 1, stride))


class ResNet(nn.Module):
    """A residual network of four stages.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        blocks: blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet18.
        stem: ``"imagenet"`` (7x7/2 convolution + 3x3/2 max pooling) or ``"cifar"`` (3x3/1).
        skip: keep the residual additions; ``False`` gives the plain sequential network.
        attention: ``"se"``, ``"spatial"``, ``"cbam"`` or None, added to every block.
        width: factor on every layer's channels.

    Example:
        >>> import torch
        >>> model = ResNet(BasicBlock, (2, 2, 2, 2), stem="cifar", width=1 / 16).eval()
        >>> model(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 10])
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        blocks: tuple[int, ...],
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        stem: str = "imagenet",
        skip: bool = True,
        attention: str | None = None,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        width = validate_width(width)
        if stem not in STEMS:
            raise OptionError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        if not isinstance(skip, bool):
            raise OptionTypeError(f"skip must be True or False, got {skip!r}")
        make_attention(attention, 1)  # validates the name before anything is built
        channels = scale_channels(64, width)
        if stem == "imagenet":
            self.conv1, self.bn1 = _conv_bn(in_channels, channels, 7, 2)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.conv1, self.bn1 = _conv_bn(in_channels, channels, 3, 1)
            self.maxpool = nn.Identity()
        self.relu = nn.ReLU(inplace=True)
        stages = []
        for index, count in enumerate(blocks):
            planes = scale_channels(64 * 2**index, width)
            layers = []
            for position in range(count):
                stride = 2 if index > 0 and position == 0 else 1
                layers.append(block(channels, planes, stride, skip=skip, attention=attention))
                channels = planes * block.expansion
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)
        init_kaiming_(self)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.flatten(self.avgpool(x)))


def _resnet_factory(name: str, block, blocks: tuple[int, ...], stem: str, summary: str):
    def factory(
        *, num_classes=10, in_channels=3, stem=stem, skip=True, attention=None, width=1.0
    ) -> ResNet:
        return ResNet(
            block,
            blocks,
            num_classes=num_classes,
            in_channels=in_channels,
            stem=stem,
            skip=skip,
            attention=attention,
            width=width,
        )

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"{summary} See :class:`ResNet` for the options."
    return register_model(name)(factory)


resnet18 = _resnet_factory(
    "resnet18", BasicBlock, (2, 2, 2, 2), "imagenet", "ResNet18 (basic blocks 2-2-2-2)."
)
resnet34 = _resnet_factory(
    "resnet34", BasicBlock, (3, 4, 6, 3), "imagenet", "ResNet34 (basic blocks 3-4-6-3)."
)
resnet50 = _resnet_factory(
    "resnet50", Bottleneck, (3, 4, 6, 3), "imagenet", "ResNet50 (bottleneck blocks 3-4-6-3)."
)
resnet18_cifar = _resnet_factory(
    "resnet18_cifar", BasicBlock, (2, 2, 2, 2), "cifar", "ResNet18 with the CIFAR stem."
)
resnet34_cifar = _resnet_factory(
    "resnet34_cifar", BasicBlock, (3, 4, 6, 3), "cifar", "ResNet34 with the CIFAR stem."
)
