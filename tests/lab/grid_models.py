"""A tiny CNN for grid tests, importable by worker processes (registered on import).

``role`` decides what a run does: ``"fail"`` raises in every training forward pass (a run that
fails by construction, after validation passed: validation runs in eval mode); ``"kill"`` ends
its own process with SIGKILL at training forward pass ``kill_after`` if the file ``marker``
exists, removing it first (a worker dying in the middle of a run, once); anything else trains.
"""

import os
import signal

import torch
from torch import nn

from layerscope.registry import MODELS


class GridNet(nn.Module):
    def __init__(self, num_classes=10, in_channels=1, width=1.0, role="ok", marker="",
                 kill_after=3):  # fmt: skip
        super().__init__()
        channels = max(1, round(4 * width))
        self.conv = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.head = nn.Linear(channels, num_classes)
        self.role, self.marker, self.kill_after = role, marker, kill_after
        self.calls = 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.role == "fail":
                raise RuntimeError("this run fails by construction\nsecond line")
            if (
                self.role == "kill"
                and self.calls == self.kill_after
                and os.path.exists(self.marker)
            ):
                os.remove(self.marker)
                os.kill(os.getpid(), signal.SIGKILL)
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


if "grid_test_net" not in MODELS:
    MODELS.add("grid_test_net", GridNet)
