"""Tail patterns against a brute-force reading of the definition (8.5), width advice (11.3) and
the combined advice."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from layerscope.architecture import receptive_field, truncate
from layerscope.architecture.advice import advise, find_tail, width_advice
from layerscope.architecture.complexity import count_flops, count_parameters
from layerscope.cli import main
from layerscope.models import create_model
from layerscope.registry import MODELS


def qualifying_runs(values, min_length=3, drop=0.5):
    """Every [start, stop) meeting the definition: >= min_length layers whose mean is at least
    ``drop`` below the mean of the other layers (numpy, straight from the sentence in 8.5)."""
    values = np.asarray(values, dtype=np.float64)
    runs = []
    for start in range(len(values)):
        for stop in range(start + min_length, len(values) + 1):
            rest = np.concatenate([values[:start], values[stop:]])
            if (
                rest.size
                and rest.mean() > 0
                and values[start:stop].mean() <= (1 - drop) * rest.mean()
            ):
                runs.append((start, stop))
    return runs


def test_vgg_like_tail_is_found_whole():
    # the shape of figure 49: productive layers, then a low tail from the border on
    saturation = [0.42, 0.38, 0.45, 0.40, 0.36, 0.39, 0.41, 0.12, 0.08, 0.05, 0.04, 0.03]
    tail = find_tail(saturation)
    assert (tail.start, tail.stop) == (7, 12)
    assert tail.layers == ("7", "8", "9", "10", "11")
    assert tail.mean_tail == pytest.approx(np.mean(saturation[7:]))
    assert tail.mean_rest == pytest.approx(np.mean(saturation[:7]))
    assert (tail.start, tail.stop) in qualifying_runs(saturation)


def test_short_dips_and_flat_profiles_are_not_tails():
    dip = [0.4, 0.4, 0.12, 0.12, 0.4, 0.4, 0.4]  # any 3 layers around it average > 50%
    assert find_tail(dip) is None and not qualifying_runs(dip)
    assert (find_tail(dip, min_length=2).start, find_tail(dip, min_length=2).stop) == (2, 4)
    assert find_tail([0.3, 0.28, 0.31, 0.27, 0.3, 0.29]) is None
    assert find_tail([0.4, 0.3, 0.25, 0.2, 0.18, 0.17], drop=0.5) is None  # gentle decline
    assert find_tail({"a": 0.0, "b": 0.0, "c": 0.0}) is None  # no rest to compare with


def documented_tail(values, min_length=3, drop=0.5):
    """find_tail's documented choice, by brute force over qualifying_runs: the run with the
    lowest mean_tail / mean_rest (ties: the longer, then the earlier), then grown one layer at
    a time (left before right) while the grown run still qualifies and the added layer is
    itself ``drop`` below the mean of the rest."""
    values = np.asarray(values, dtype=np.float64)
    runs = qualifying_runs(values, min_length, drop)
    if not runs:
        return None

    def ratio(a, b):
        return values[a:b].mean() / np.delete(values, range(a, b)).mean()

    start, stop = min(runs, key=lambda run: (ratio(*run), run[0] - run[1], run[0]))
    grew = True
    while grew:
        grew = False
        for a, b, added in ((start - 1, stop, start - 1), (start, stop + 1, stop)):
            if 0 <= added < len(values) and (a, b) in qualifying_runs(values, min_length, drop):
                if values[added] <= (1 - drop) * np.delete(values, range(a, b)).mean():
                    start, stop, grew = a, b, True
    return start, stop


@pytest.mark.parametrize("seed", range(40))
def test_detector_agrees_with_the_definition(seed):
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.2, 0.6, size=rng.integers(4, 14))
    if seed % 2:
        start = rng.integers(0, len(values) - 3)
        values[start : start + 3 + rng.integers(0, 3)] *= rng.uniform(0.05, 0.6)
    expected = documented_tail(values)
    tail = find_tail(list(values))
    if expected is None:
        assert tail is None
        return
    assert (tail.start, tail.stop) == expected
    rest = np.delete(values, range(*expected))
    assert tail.mean_tail == pytest.approx(values[slice(*expected)].mean(), rel=1e-12)
    assert tail.mean_rest == pytest.approx(rest.mean(), rel=1e-12)
    assert tail.drop == pytest.approx(1 - values[slice(*expected)].mean() / rest.mean(), rel=1e-12)


def test_bad_saturation_values():
    with pytest.raises(ValueError, match="finite"):
        find_tail([0.3, float("nan"), 0.2, 0.1])
    with pytest.raises(ValueError, match="drop"):
        find_tail([0.3, 0.2], drop=1.5)


def test_width_advice_thresholds():
    assert width_advice(0.1).verdict == "too wide"
    assert width_advice(0.25).verdict == "in range"
    assert width_advice(0.2).verdict == "in range" and width_advice(0.3).verdict == "in range"
    narrow = width_advice({"conv1": 0.5, "conv2": 0.3})
    assert narrow.verdict == "too narrow" and narrow.s_mu == pytest.approx(0.4)
    assert "40.0%" in narrow.message
    with pytest.raises(ValueError, match="sweet spot"):
        width_advice(0.2, low=0.4, high=0.3)


def test_advice_for_vgg11_at_32_px():
    model = create_model("vgg11", width=1 / 4)
    saturation = {f"layer{i}": v for i, v in enumerate([0.3, 0.32, 0.3, 0.33, 0.31, 0.05, 0.04,
                                                         0.04, 0.03, 0.03])}  # fmt: skip
    advice = advise(model, 32, saturation=saturation)
    rf = receptive_field(model, 32)
    assert advice.border_min == rf.border_min_.name == "features.18"
    assert advice.unproductive == tuple(i.name for i in rf.unproductive_)
    small = truncate(model, rf)
    assert advice.parameters == count_parameters(model).total
    assert advice.parameters_truncated == count_parameters(small).total
    assert advice.macs_truncated == count_flops(small, 32).macs < advice.macs
    assert advice.strides_to_remove == rf.strides_to_remove()
    assert advice.tail.layers == ("layer5", "layer6", "layer7", "layer8", "layer9")
    assert advice.width.verdict == "too wide"  # s_mu = 0.175 < 0.2
    assert advice.width.s_mu == pytest.approx(0.175)
    text = str(advice)
    assert "features.18" in text and "parameters" in text and "tail pattern" in text


def test_advice_without_border():
    advice = advise(create_model("resnet18_cifar", width=1 / 16), 32)
    assert advice.border_min is None and advice.parameters_truncated is None
    assert advice.strides_to_remove == ()
    assert "no border layer" in str(advice)


class Untraceable(nn.Module):
    """Five 3x3 convolutions (r = 3 .. 11) behind a branch on the data: torch.fx cannot trace
    it, the hook tracer can."""

    def __init__(self, num_classes=10, in_channels=3, width=1.0):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(in_channels if i == 0 else 4, 4, 3, padding=1) for i in range(5)
        )
        self.head = nn.Linear(4, num_classes)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow
            x = x * 2
        for conv in self.convs:
            x = torch.relu(conv(x))
        return self.head(x.mean((2, 3)))


if "untraceable_test_net" not in MODELS:
    MODELS.add("untraceable_test_net", Untraceable)


def test_advice_for_a_model_fx_cannot_trace():
    model = Untraceable()
    advice = advise(model, 8)
    assert advice.border_min == "convs.4"  # its input sees 9 > 8 pixels
    assert advice.parameters_truncated is None and advice.macs_truncated is None
    assert advice.parameters == count_parameters(model).total
    assert len(advice.notes) == 1 and "torch.fx" in advice.notes[0]
    text = str(advice)
    assert "Truncating" not in text and "Note: no truncation figures" in text


def test_rf_command_gives_advice_for_a_model_fx_cannot_trace(capsys):
    assert main(["rf", "untraceable_test_net", "--input", "8"]) == 0
    out = capsys.readouterr().out
    assert "b_min: layer 5 (convs.4)" in out and "Note: no truncation figures" in out


def test_macs_are_stated_at_the_size_they_are_counted_at():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3),
                          nn.Conv2d(4, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 3))  # fmt: skip
    advice = advise(model, 6, trace_size=32)
    assert advice.input_size == (6, 6) and advice.macs_size == (32, 32)
    # by hand: 30x30x4 outputs of 9 MACs, 13x13x4 and 11x11x4 of 36, and the 4 x 3 linear
    assert advice.macs == 30 * 30 * 4 * 9 + 13 * 13 * 4 * 36 + 11 * 11 * 4 * 36 + 4 * 3
    assert "At 6x6 px" in str(advice) and "MMACs per 32x32 px image" in str(advice)


def test_sweet_spot_default_and_the_seed_interval():
    from layerscope.architecture import SEED_SWEET_SPOT, SWEET_SPOT, width_advice

    assert SWEET_SPOT == (0.2, 0.3) and SEED_SWEET_SPOT == (0.2, 0.4)
    assert width_advice(0.35).verdict == "too narrow"  # dissertation 11.3
    low, high = SEED_SWEET_SPOT
    assert width_advice(0.35, low=low, high=high).verdict == "in range"  # seed 000
    assert "20%-40%" in width_advice(0.35, low=low, high=high).message
