"""The benchmark networks for 3 x 32 x 32 inputs: VGG-style (8 conv layers of 64-512 channels)
and a small 4-conv CNN (32-64 channels, like the one Delve's overhead was first measured on).

Self-contained (torch only).
"""

from __future__ import annotations

import torch
from torch import nn

CONFIG = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")  # VGG11's convs


def vgg_like(num_classes: int = 10) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for item in CONFIG:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [
                nn.Conv2d(channels, item, 3, padding=1),
                nn.BatchNorm2d(item),
                nn.ReLU(inplace=True),
            ]
            channels = item
    layers += [nn.Flatten(), nn.Linear(512, num_classes)]
    return nn.Sequential(*layers)


def small_cnn(num_classes: int = 10) -> nn.Sequential:
    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(3, 32), *block(32, 32), nn.MaxPool2d(2), *block(32, 64), *block(64, 64),
        nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes),
    )  # fmt: skip


MODELS = {"vgg": vgg_like, "small": small_cnn}


def make_step(model: nn.Module, batch_size: int = 64, device: torch.device | str = "cpu"):
    """A closure doing one SGD training step of ``model`` (already on ``device``) on fixed
    random data."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, 3, 32, 32, generator=generator).to(device)
    y = torch.randint(0, 10, (batch_size,), generator=generator).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_function = nn.CrossEntropyLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_function(model(x), y).backward()
        optimizer.step()

    return step
