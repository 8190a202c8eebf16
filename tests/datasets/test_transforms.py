"""Transforms against hand-computed values and numpy; the random stream's determinism and spread."""

import numpy as np
import pytest
import torch
from scipy import stats

from layerscope.datasets.transforms import (
    Pipeline,
    SampleRandom,
    convert_channels,
    hflip,
    normalize,
    pad_crop,
    place_on_canvas,
    resize,
)


def test_bilinear_upsampling_matches_hand_computed_half_pixel_weights():
    # align_corners=False: output pixel j samples input coordinate (j + 0.5) / 2 - 0.5, clamped,
    # i.e. -0.25 -> 0, 0.25, 0.75, 1.25 -> 1. Rows interpolate 0 -> 1, columns 0 -> 2.
    image = torch.tensor([[[0.0, 1.0], [2.0, 3.0]]])
    weights = np.array([0.0, 0.25, 0.75, 1.0])
    expected = 2 * weights[:, None] + weights[None, :]
    np.testing.assert_allclose(resize(image, 4)[0].numpy(), expected, atol=1e-6)


def test_resize_keeps_constant_images_and_skips_same_size():
    assert torch.allclose(resize(torch.full((3, 7, 5), 0.3), 16), torch.full((3, 16, 16), 0.3))
    image = torch.rand(1, 8, 8)
    assert resize(image, 8) is image


def test_downsizing_antialiases_with_a_stretched_triangle_filter():
    # Shrinking by 2 with antialiasing (PIL's convention): output pixel k has its centre at input
    # coordinate 2k + 1 and weights 1 - |x - centre| / 2 on input centres x = i + 0.5, renormalised
    # over the pixels inside the image: [3, 3, 1, 0] / 7 and [0, 1, 3, 3] / 7.
    image = torch.arange(16.0).view(1, 4, 4)
    weights = np.array([[3, 3, 1, 0], [0, 1, 3, 3]]) / 7
    expected = weights @ image[0].numpy() @ weights.T
    np.testing.assert_allclose(resize(image, 2)[0].numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("padding", [1, 3])
def test_pad_crop_equals_numpy_pad_and_slice_for_every_offset(padding):
    image = torch.rand(2, 5, 6)
    padded = np.pad(
        image.numpy(), ((0, 0), (padding, padding), (padding, padding)), constant_values=0.5
    )
    for top in range(2 * padding + 1):
        for left in range(2 * padding + 1):
            out = pad_crop(image, padding, top, left, fill=0.5).numpy()
            np.testing.assert_array_equal(out, padded[:, top : top + 5, left : left + 6])
    with pytest.raises(ValueError, match="outside"):
        pad_crop(image, padding, 2 * padding + 1, 0)


def test_flip_normalize_and_channel_conversion_by_hand():
    assert hflip(torch.tensor([[[1.0, 2.0, 3.0]]])).tolist() == [[[3.0, 2.0, 1.0]]]
    out = normalize(torch.tensor([[[1.0]], [[4.0]]]), (0.5, 2.0), (0.25, 4.0))
    assert out.flatten().tolist() == [2.0, 0.5]
    rgb = torch.tensor([[[1.0]], [[0.5]], [[0.0]]])
    assert convert_channels(rgb, 1).item() == pytest.approx(0.299 + 0.587 * 0.5)
    assert convert_channels(torch.full((1, 2, 2), 0.7), 3).shape == (3, 2, 2)
    with pytest.raises(ValueError, match="1 <-> 3"):
        convert_channels(torch.zeros(2, 2, 2), 3)


def test_canvas_keeps_the_image_whole_and_black_elsewhere():
    image = torch.rand(3, 4, 4) + 0.1
    out = place_on_canvas(image, 10, 6, 2)
    assert out.shape == (3, 10, 10)
    assert torch.equal(out[:, 6:10, 2:6], image)
    mask = torch.ones(10, 10, dtype=torch.bool)
    mask[6:10, 2:6] = False
    assert torch.all(out[:, mask] == 0)
    with pytest.raises(ValueError, match=r"top must lie in \[0, 6\]"):
        place_on_canvas(image, 10, 7, 0)


def test_canvas_positions_are_uniform_over_the_dissertation_range():
    # Dissertation 9.2.1: 32x32 on 160x160, top-left drawn uniformly from [0, 128] (inclusive).
    pipe = Pipeline(canvas=160)
    image = torch.ones(1, 32, 32)
    tops = []
    for index in range(3000):
        out = pipe(image, SampleRandom(0, 0, 0, index))
        assert out.sum().item() == 32 * 32  # never cut off
        rows = torch.nonzero(out[0].sum(1)).flatten()
        tops.append(int(rows[0]))
    counts = np.bincount(tops, minlength=129)
    assert len(counts) == 129 and counts.min() > 0  # both ends 0 and 128 are reached
    assert stats.chisquare(counts).pvalue > 1e-3


def test_sample_random_is_keyed_and_uniform():
    draws = [SampleRandom(5, 1, 2, i).integers(6) for i in range(6000)]
    assert draws == [SampleRandom(5, 1, 2, i).integers(6) for i in range(6000)]
    assert stats.chisquare(np.bincount(draws, minlength=6)).pvalue > 1e-3
    assert SampleRandom(1, 2).next64() != SampleRandom(2, 1).next64()
    floats = [SampleRandom(9, i).random() for i in range(2000)]
    assert stats.kstest(floats, "uniform").pvalue > 1e-3
    with pytest.raises(ValueError):
        SampleRandom(0).integers(0)


def test_pipeline_order_canvas_before_normalisation():
    # The canvas is black in raw values, so after normalisation it reads -mean / std.
    pipe = Pipeline(canvas=6, mean=(0.5,), std=(0.25,))
    out = pipe(torch.ones(1, 2, 2), SampleRandom(1))
    values = sorted(set(out.flatten().tolist()))
    assert values == [-2.0, 2.0]
    assert (out == 2.0).sum() == 4
    with pytest.raises(ValueError, match="SampleRandom"):
        pipe(torch.ones(1, 2, 2))
