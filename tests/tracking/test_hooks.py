"""Hooks never leak: every hook owner leaves no hook behind, after success and after an error."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from layerscope.architecture import count_flops, receptive_field
from layerscope.probes import extract_latents
from layerscope.similarity import layer_similarity
from layerscope.tracking import Hooks, Tracker


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


class Failing(nn.Module):
    """Runs a convolution, then fails on demand."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(2, 2)
        self.fail = False

    def forward(self, x):
        x = self.conv(x)
        if self.fail:
            raise RuntimeError("boom")
        return self.fc(x.mean((2, 3)))


def test_hooks_are_removed_together_also_when_a_registration_fails():
    model = Failing()
    hooks = Hooks()

    class NotAModule:
        def register_forward_hook(self, hook, prepend=False):
            raise RuntimeError("cannot register")

    with pytest.raises(RuntimeError, match="cannot register"):
        hooks.forward_all([(model.conv, lambda *a: None), (NotAModule(), lambda *a: None)])
    assert hook_count(model) == 0 and len(hooks) == 0
    with Hooks() as scoped:
        scoped.forward_pre(model, lambda *a: None)
        scoped.forward(model.fc, lambda *a: None)
        assert hook_count(model) == 2
    assert hook_count(model) == 0
    scoped.remove()  # safe twice


def _tracker(model, x):
    with Tracker(model, weights=False) as tracker:
        model(x)
        tracker.end_epoch()


def _latents(model, x, tmp_path):
    data = torch.utils.data.TensorDataset(x, torch.zeros(len(x), dtype=torch.int64))
    extract_latents(model, {"train": data}, tmp_path, progress=False)


OWNERS = {
    "tracker": lambda model, x, tmp_path: _tracker(model, x),
    "latents": _latents,
    "layer_similarity": lambda model, x, tmp_path: layer_similarity(model, None, [x]),
    "count_flops": lambda model, x, tmp_path: count_flops(model, 8),
    "receptive_field (hooks)": lambda model, x, tmp_path: receptive_field(
        model, 8, tracer="hooks", in_channels=1
    ),
}


@pytest.mark.parametrize("owner", OWNERS)
def test_no_hook_remains_after_success_or_error(owner, tmp_path):
    model, x = Failing(), torch.randn(4, 1, 8, 8)
    OWNERS[owner](model, x, tmp_path / "ok")
    assert hook_count(model) == 0
    model.fail = True
    with pytest.raises(Exception, match="boom"):
        OWNERS[owner](model, x, tmp_path / "failed")
    assert hook_count(model) == 0
