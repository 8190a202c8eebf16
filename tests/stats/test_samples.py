"""Reshaping layer outputs into samples x features, against manual permutes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from layerscope.stats import StreamingCovariance, downsample, to_samples
from layerscope.stats.samples import channels_last_view, sequence_view


def test_conv_output_positions_are_samples():
    x = torch.randn(3, 5, 4, 6)
    manual = x.permute(0, 2, 3, 1).reshape(-1, 5)
    assert torch.equal(to_samples(x), manual)
    # The (N, H, W, C) view gives the same covariance without a 2-D copy.
    a, b = StreamingCovariance(5), StreamingCovariance(5)
    a.update(channels_last_view(x))
    b.update(manual)
    assert torch.allclose(a.compute().covariance, b.compute().covariance, rtol=1e-12, atol=0)


@pytest.mark.parametrize("shape", [(2, 3, 7), (2, 3, 2, 3, 4)])
def test_conv1d_and_conv3d_outputs(shape):
    x = torch.randn(*shape)
    manual = x.movedim(1, -1).reshape(-1, shape[1])
    assert torch.equal(to_samples(x), manual)


def test_sequences_every_token_is_a_sample():
    x = torch.randn(4, 7, 3)  # (N, T, C)
    assert torch.equal(to_samples(x, layout="channels_last"), x.reshape(-1, 3))
    seq_first = x.transpose(0, 1).contiguous()  # (T, N, C), nn.LSTM's default layout
    assert torch.equal(to_samples(seq_first, layout="sequence_first"), x.reshape(-1, 3))
    assert torch.equal(sequence_view(seq_first, batch_first=False), x)
    assert sequence_view(torch.zeros(7, 3)).shape == (1, 7, 3)


def test_dense_output_is_unchanged():
    x = torch.randn(5, 3)
    assert torch.equal(to_samples(x), x)


def test_unknown_layout_is_an_error():
    with pytest.raises(ValueError, match="layout"):
        to_samples(torch.zeros(2, 3), layout="NCHW")


@pytest.mark.parametrize(
    ("method", "reference"),
    [
        ("adaptive_avg", lambda x: F.adaptive_avg_pool2d(x, (4, 4))),
        ("nearest", lambda x: F.interpolate(x, size=(4, 4), mode="nearest")),
        ("bilinear", lambda x: F.interpolate(x, size=(4, 4), mode="bilinear")),
    ],
)
def test_downsample_methods(method, reference):
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(downsample(x, 4, method), reference(x))


def test_adaptive_average_is_the_block_mean():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    expected = x.numpy().reshape(2, 2, 2, 2).mean(axis=(1, 3))  # 2x2 blocks
    np.testing.assert_allclose(downsample(x, 2).numpy()[0, 0], expected)


def test_downsample_never_enlarges_and_passes_dense_through():
    x = torch.randn(1, 2, 3, 3)
    assert downsample(x, 8) is x
    assert downsample(torch.randn(4, 5), 2).shape == (4, 5)
    assert downsample(torch.randn(1, 2, 16), 4, "bilinear").shape == (1, 2, 4)
    assert downsample(torch.randn(1, 2, 8, 8, 8), 2, "bilinear").shape == (1, 2, 2, 2, 2)


def test_downsample_errors():
    with pytest.raises(ValueError, match="spatial axes"):
        downsample(torch.randn(1, 2, 8, 8), (4, 4, 4))
    with pytest.raises(ValueError, match="method"):
        downsample(torch.randn(1, 2, 8, 8), 4, "cubic")
