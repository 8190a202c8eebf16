"""VGG11/13/16/19 as the dissertation trains them (chapters 8.4, 9.3; Simonyan & Zisserman 2015).

3x3 convolutions with batch normalisation and ReLU, 2x2 max pooling after each stage, then the
head of PHD-Lab, the reference implementation of the dissertation's experiments: global average
pooling, BatchNorm1d, dropout 0.25, a hidden linear layer of half the final width, ReLU,
BatchNorm1d, dropout 0.25 and the output layer. Any input size works.

``width`` scales every layer's channels (8.4: 1, 1/2, 1/4, 1/8, 1/16); ``dilation`` dilates every
convolution but not the pooling layers, as in the dilated VGG19 of 9.3 (dilation 3: each 3x3
kernel covers 7x7 pixels, moving VGG19's border layer at 32 px from layer 8 to layer 5).
"""

from __future__ import annotations

from torch import nn

from layerscope.errors import OptionError
from layerscope.models._common import init_kaiming_, scale_channels, validate_width
from layerscope.models._factory import register_model

__all__ = ["VGG", "VGG_CONFIGS", "vgg11", "vgg13", "vgg16", "vgg19"]

#: Channels of each convolution; "M" is a 2x2 max pooling with stride 2 (Simonyan & Zisserman,
#: configurations A, B, D, E).
VGG_CONFIGS: dict[str, tuple[int | str, ...]] = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg13": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"),
}  # fmt: skip


class VGG(nn.Module):
    """A VGG feature extractor (``features``), global average pooling and a small head.

    Args:
        config: channels per convolution and ``"M"`` for max pooling (see :data:`VGG_CONFIGS`).
        num_classes: outputs of the last layer.
        in_channels: channels of the input images.
        width: factor on every layer's channels; each becomes ``max(1, round(c * width))``.
        dilation: dilation of every convolution (padding keeps the spatial size).
        batch_norm: batch normalisation after each convolution.

    Example:
        >>> import torch
        >>> model = VGG(VGG_CONFIGS["vgg11"], width=1 / 16).eval()
        >>> model(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        config: tuple[int | str, ...],
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        width: float = 1.0,
        dilation: int = 1,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        width = validate_width(width)
        if not isinstance(dilation, int) or dilation < 1:
            raise OptionError(f"dilation must be an integer >= 1, got {dilation!r}")
        layers: list[nn.Module] = []
        channels = in_channels
        for item in config:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                continue
            out = scale_channels(int(item), width)
            layers.append(
                nn.Conv2d(
                    channels, out, 3, padding=dilation, dilation=dilation, bias=not batch_norm
                )
            )
            if batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU(inplace=True))
            channels = out
        hidden = max(1, channels // 2)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            nn.BatchNorm1d(channels),
            nn.Dropout(0.25),
            nn.Linear(channels, hidden),
            nn.ReLU(inplace=True),
            nn.BatchNorm1d(hidden),
            nn.Dropout(0.25),
            nn.Linear(hidden, num_classes),
        )
        init_kaiming_(self)

    def forward(self, x):
        return self.classifier(self.flatten(self.pool(self.features(x))))


def _vgg_factory(name: str, summary: str):
    def factory(*, num_classes=10, in_channels=3, width=1.0, dilation=1, batch_norm=True) -> VGG:
        return VGG(
            VGG_CONFIGS[name],
            num_classes=num_classes,
            in_channels=in_channels,
            width=width,
            dilation=dilation,
            batch_norm=batch_norm,
        )

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"{summary} See :class:`VGG` for the options."
    return register_model(name)(factory)


vgg11 = _vgg_factory("vgg11", "VGG11 (configuration A, 8 convolutions).")
vgg13 = _vgg_factory("vgg13", "VGG13 (configuration B, 10 convolutions).")
vgg16 = _vgg_factory("vgg16", "VGG16 (configuration D, 13 convolutions).")
vgg19 = _vgg_factory(
    "vgg19", "VGG19 (configuration E, 16 convolutions); dilation=3 is the dilated VGG19 of 9.3."
)
