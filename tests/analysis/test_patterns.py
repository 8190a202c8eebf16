"""Tail patterns against a brute-force reading of the definition (8.5), width advice (11.3) and
the combined advice."""

from __future__ import annotations

import numpy as np
import pytest

from layerscope.analysis.complexity import count_flops, count_parameters
from layerscope.analysis.patterns import advise, find_tail, width_advice
from layerscope.analysis.receptive_field import receptive_field, truncate
from layerscope.models import create_model


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


@pytest.mark.parametrize("seed", range(40))
def test_detector_agrees_with_the_definition(seed):
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.2, 0.6, size=rng.integers(4, 14))
    if seed % 2:
        start = rng.integers(0, len(values) - 3)
        values[start : start + 3 + rng.integers(0, 3)] *= rng.uniform(0.05, 0.6)
    runs = qualifying_runs(values)
    tail = find_tail(list(values))
    if not runs:
        assert tail is None
    else:
        assert (tail.start, tail.stop) in runs
        best = min(values[a:b].mean() / np.delete(values, range(a, b)).mean() for a, b in runs)
        assert tail.mean_tail / tail.mean_rest <= best + 0.5 * (1 - best)  # close to the strongest


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
