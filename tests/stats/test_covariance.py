"""StreamingCovariance against an independent numpy float64 two-pass computation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from layerscope.errors import LayerTooWideError, NonFiniteBatchWarning, StateMismatchError
from layerscope.stats import StreamingCovariance


def two_pass_covariance(x: np.ndarray) -> np.ndarray:
    """Textbook two-pass population covariance in float64: centre first, then multiply."""
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=0)
    return centred.T @ centred / x.shape[0]


def one_pass_covariance(x: np.ndarray) -> np.ndarray:
    """The one-pass formula of dissertation eq. 11: E[x x^T] - mean mean^T."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    return x.T @ x / x.shape[0] - np.outer(mean, mean)


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def accumulate(x: np.ndarray, splits, **options) -> StreamingCovariance:
    cov = StreamingCovariance(x.shape[1], **options)
    for part in np.split(x, splits):
        cov.update(torch.from_numpy(part))
    return cov


def test_random_data_matches_two_pass():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 17)) @ rng.normal(size=(17, 17)) + rng.normal(size=17)
    result = accumulate(x, [100, 1000, 2999]).compute()
    assert result.count == 3000
    np.testing.assert_allclose(result.mean.numpy(), x.mean(axis=0), rtol=1e-12, atol=1e-12)
    assert relative_error(result.covariance.numpy(), two_pass_covariance(x)) < 1e-12
    assert result.covariance.dtype == torch.float64


def test_float32_input_accumulates_in_float64():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 8)).astype(np.float32)
    result = accumulate(x, [700]).compute()
    # Reference on exactly the float32 values, computed in float64.
    assert relative_error(result.covariance.numpy(), two_pass_covariance(x)) < 1e-12


@pytest.mark.parametrize(("precision", "tolerance"), [("float64", 1e-9), ("mixed", 1e-6)])
def test_large_mean_offset_keeps_digits_where_one_pass_formula_fails(precision, tolerance):
    rng = np.random.default_rng(2)
    x = 1e6 + rng.normal(size=(20000, 6))
    reference = two_pass_covariance(x)
    naive_error = relative_error(one_pass_covariance(x), reference)
    ours = accumulate(x, [5000, 10000, 15000], precision=precision).compute().covariance.numpy()
    # The one-pass formula keeps fewer than 3 of float64's ~16 digits here (about 2% error)...
    assert naive_error > 1e-3
    # ...per-batch shifting with Chan's merge keeps them, even with float32 batch products.
    assert relative_error(ours, reference) < tolerance


@pytest.mark.parametrize("features_first", [False, True])
def test_mixed_float32_input_with_offset_and_jumps_keeps_six_digits(features_first):
    # float32 samples near 1e6 (their spacing there is 1/16) whose mean jumps between batches:
    # the reference is the two-pass covariance of exactly these float32 values.
    rng = np.random.default_rng(7)
    x = 1e6 + rng.normal(size=(8000, 5)) @ rng.normal(size=(5, 5)) * 30
    x[4000:] += 3e4
    x = x.astype(np.float32)
    cov = StreamingCovariance(5, precision="mixed")
    for part in np.split(x, 4):
        tensor = torch.from_numpy(part)
        if features_first:
            cov.update(tensor.T.contiguous().unsqueeze(1), feature_dim=0)
        else:
            cov.update(tensor)
    result = cov.compute()
    assert relative_error(result.covariance.numpy(), two_pass_covariance(x)) < 1e-6
    np.testing.assert_allclose(result.mean.numpy(), x.astype(np.float64).mean(0), rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 60),
    d=st.integers(1, 6),
    cut=st.floats(0.0, 1.0),
    batches=st.lists(st.integers(1, 20), min_size=1, max_size=5),
    seed=st.integers(0, 2**16),
)
def test_merge_equals_one_pass_over_both(n, d, cut, batches, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * rng.uniform(0.1, 10, size=d) + rng.normal(size=d) * 5
    split = int(cut * n)
    a, b = x[:split], x[split:]

    def fill(part: np.ndarray) -> StreamingCovariance:
        cov = StreamingCovariance(d)
        start = 0
        for size in batches * (len(part) // max(sum(batches), 1) + 1):
            if start >= len(part):
                break
            cov.update(torch.from_numpy(part[start : start + size]))
            start += size
        return cov

    merged = fill(a).merge(fill(b)).compute()
    sequential = fill(x).compute()
    assert merged.count == sequential.count == n
    np.testing.assert_allclose(merged.mean.numpy(), sequential.mean.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        merged.covariance.numpy(), sequential.covariance.numpy(), rtol=1e-9, atol=1e-11
    )
    np.testing.assert_allclose(
        merged.covariance.numpy(), two_pass_covariance(x), rtol=1e-9, atol=1e-11
    )


def test_merge_into_empty_and_of_empty():
    x = torch.randn(50, 3, dtype=torch.float64)
    full = StreamingCovariance(3)
    full.update(x)
    empty = StreamingCovariance(3)
    assert torch.allclose(empty.merge(full).compute().covariance, full.compute().covariance)
    before = full.compute().covariance
    assert torch.equal(full.merge(StreamingCovariance(3)).compute().covariance, before)


def test_merge_rejects_other_widths():
    with pytest.raises(StateMismatchError, match="num_features=3 into one with num_features=4"):
        StreamingCovariance(4).merge(StreamingCovariance(3))


def test_mixed_precision_is_close_to_float64():
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(8192, 32)) @ rng.normal(size=(32, 32)) + 3.0).astype(np.float32)
    mixed = accumulate(x, [4096], precision="mixed").compute().covariance.numpy()
    assert relative_error(mixed, two_pass_covariance(x)) < 1e-5


def test_trailing_feature_axis_and_views_are_accepted():
    x = torch.randn(4, 5, 6, 3)  # (N, H, W, C) channels-last view of a feature map
    cov = StreamingCovariance(3)
    cov.update(x.permute(0, 1, 2, 3))
    manual = x.reshape(-1, 3).double().numpy()
    assert relative_error(cov.compute().covariance.numpy(), two_pass_covariance(manual)) < 1e-12


def test_channels_first_feature_maps_with_feature_dim():
    x = torch.randn(4, 3, 5, 6)  # (N, C, H, W): every position of every image is a sample
    cov = StreamingCovariance(3)
    cov.update(x, feature_dim=1)
    manual = x.permute(0, 2, 3, 1).reshape(-1, 3).double().numpy()
    assert relative_error(cov.compute().covariance.numpy(), two_pass_covariance(manual)) < 1e-12


@pytest.mark.parametrize("precision", ["float64", "mixed"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_every_input_dtype_and_precision(precision, dtype):
    x = (torch.randn(300, 5) * 2 + 1).to(dtype)
    cov = StreamingCovariance(5, precision=precision)
    cov.update(x)
    reference = two_pass_covariance(x.double().numpy())
    tolerance = 1e-12 if precision == "float64" else 1e-6
    assert relative_error(cov.compute().covariance.numpy(), reference) < tolerance


def test_covariance_is_exactly_symmetric():
    cov = StreamingCovariance(7)
    cov.update(torch.randn(100, 7))
    matrix = cov.compute().covariance
    assert torch.equal(matrix, matrix.T)


@pytest.mark.parametrize("d", [200, 500])
@pytest.mark.parametrize("features_first", [False, True])
def test_wide_layers_in_both_layouts(d, features_first):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(700, d)) @ rng.normal(size=(d, d)) * 0.1 + 2.0
    cov = StreamingCovariance(d)
    for part in np.split(x, [300]):
        tensor = torch.from_numpy(part)
        if features_first:
            cov.update(tensor.T.contiguous().unsqueeze(1), feature_dim=0)  # (d, 1, n)
        else:
            cov.update(tensor)
    result = cov.compute().covariance
    assert torch.equal(result, result.T)
    assert relative_error(result.numpy(), two_pass_covariance(x)) < 1e-12


@pytest.mark.parametrize("precision", ["float64", "mixed"])
def test_batches_whose_means_jump_keep_their_digits(precision):
    # Chan's merge must absorb batches whose means are far from the running mean.
    rng = np.random.default_rng(6)
    offsets = [0.0, 1e4, -1e4, 3e3]
    x = np.concatenate([rng.normal(size=(500, 4)) + o for o in offsets])
    cov = StreamingCovariance(4, precision=precision)
    for part in np.split(x, 4):
        cov.update(torch.from_numpy(part))
    tolerance = 1e-10 if precision == "float64" else 1e-6
    assert relative_error(cov.compute().covariance.numpy(), two_pass_covariance(x)) < tolerance


def test_non_finite_batch_is_rejected_counted_and_warned():
    good = torch.randn(100, 4, dtype=torch.float64)
    cov = StreamingCovariance(4)
    cov.update(good)
    bad = torch.randn(10, 4)
    bad[3, 1] = float("nan")
    cov.update(bad)
    worse = torch.randn(10, 4)
    worse[0, 0] = float("inf")
    cov.update(worse)
    with pytest.warns(NonFiniteBatchWarning, match="2 batch"):
        result = cov.compute()
    assert result.rejected_batches == 2
    assert result.count == 100
    assert relative_error(result.covariance.numpy(), two_pass_covariance(good.numpy())) < 1e-12


def test_overflowing_squares_are_rejected():
    cov = StreamingCovariance(2)
    cov.update(torch.tensor([[1e200, 0.0], [-1e200, 1.0]], dtype=torch.float64))
    with pytest.warns(NonFiniteBatchWarning):
        assert cov.compute().count == 0


def test_fewer_than_two_samples_gives_reason_not_nan():
    cov = StreamingCovariance(3)
    result = cov.compute()
    assert result.covariance is None and result.mean is None
    assert "at least 2 samples, got 0" in result.reason
    cov.update(torch.ones(1, 3))
    result = cov.compute()
    assert result.covariance is None and "got 1" in result.reason
    assert result.mean.tolist() == [1.0, 1.0, 1.0]


def test_width_guard_names_size_memory_and_fix():
    with pytest.raises(LayerTooWideError) as info:
        StreamingCovariance(16384, name="features.3")
    message = str(info.value)
    assert "'features.3'" in message and "16384" in message
    assert "2.0 GiB" in message and "max_features" in message


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="precision"):
        StreamingCovariance(3, precision="float16")
    with pytest.raises(ValueError, match="num_features"):
        StreamingCovariance(0)
    cov = StreamingCovariance(3)
    with pytest.raises(ValueError, match="expected 3 features along dimension -1"):
        cov.update(torch.zeros(5, 4))
    with pytest.raises(ValueError, match="feature_dim=2"):
        cov.update(torch.zeros(5, 3), feature_dim=2)
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        cov.update(np.zeros((5, 3)))


def test_max_samples_takes_exactly_the_seeded_rows():
    x = torch.randn(1000, 3, dtype=torch.float64)
    cov = StreamingCovariance(3, max_samples=100, seed=7)
    cov.update(x)
    cov.update(x)
    # The documented draw: a torch.Generator seeded with `seed`, randperm(n)[:max_samples] per
    # update, rows taken in that order.
    generator = torch.Generator().manual_seed(7)
    rows = [x[torch.randperm(1000, generator=generator)[:100]] for _ in range(2)]
    expected = two_pass_covariance(torch.cat(rows).numpy())
    result = cov.compute()
    assert result.count == 200
    assert relative_error(result.covariance.numpy(), expected) < 1e-12


def test_reset_and_state_dict_round_trip():
    cov = StreamingCovariance(3)
    cov.update(torch.randn(20, 3))
    state = cov.state_dict()
    assert set(state) == {"count", "mean", "comoment", "rejected_batches"}
    assert cov.reductions == {
        "count": "chan",  # the moments (count, mean, co-moment) combine by Chan's formula
        "mean": "chan",
        "comoment": "chan",
        "rejected_batches": "sum",
    }
    copy = StreamingCovariance(3)
    copy.load_state_dict(state)
    assert torch.equal(copy.compute().covariance, cov.compute().covariance)
    cov.reset()
    assert cov.compute().count == 0
    with pytest.raises(StateMismatchError):
        copy.load_state_dict({"count": torch.zeros(())})


def test_state_follows_input_device_or_stays_where_told():
    # The meta device stands in for a GPU (shapes only, no data).
    cov = StreamingCovariance(2)
    assert cov.device.type == "cpu"
    cov.update(torch.randn(4, 2, device="meta"))
    assert cov.device.type == "meta" and cov.comoment.device.type == "meta"
    pinned = StreamingCovariance(2, device="cpu")
    pinned.update(torch.randn(4, 2, dtype=torch.float64))
    assert pinned.device.type == "cpu"


def test_integer_inputs_are_converted():
    x = torch.randint(0, 10, (50, 3))
    cov = StreamingCovariance(3)
    cov.update(x)
    assert relative_error(cov.compute().covariance.numpy(), two_pass_covariance(x.numpy())) < 1e-12


def test_compute_does_not_warn_without_rejections():
    cov = StreamingCovariance(2)
    cov.update(torch.randn(5, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cov.compute()


@pytest.mark.parametrize("precision", ["float64", "mixed"])
@pytest.mark.parametrize("in_place", [True, False], ids=["in-place fold", "device-side select"])
def test_both_fold_paths_match_two_pass_and_drop_bad_batches(precision, in_place, monkeypatch):
    # On CPU the fold is in place; on other devices the merged state is chosen by torch.where
    # so that nothing waits for the device. Both run here, on the same batches.
    from layerscope.stats import covariance

    if not in_place:
        monkeypatch.setattr(covariance, "_IN_PLACE_DEVICE_TYPES", frozenset())
    rng = np.random.default_rng(11)
    parts = [rng.normal(size=(300, 6)) * 2 + offset for offset in (0.0, 50.0, -20.0)]
    cov = StreamingCovariance(6, precision=precision)
    for i, part in enumerate(parts):
        cov.update(torch.from_numpy(part))
        bad = torch.randn(20, 6, dtype=torch.float64)
        bad[i, i] = (float("nan"), float("inf"), -float("inf"))[i]
        cov.update(bad)
    with pytest.warns(NonFiniteBatchWarning, match="3 batch"):
        result = cov.compute()
    x = np.concatenate(parts)
    assert result.count == 900 and result.rejected_batches == 3
    np.testing.assert_allclose(result.mean.numpy(), x.mean(axis=0), rtol=1e-7, atol=1e-9)
    tolerance = 1e-12 if precision == "float64" else 1e-6
    assert relative_error(result.covariance.numpy(), two_pass_covariance(x)) < tolerance


@pytest.mark.parametrize("d", [32, 70, 257])
@pytest.mark.parametrize("n", [150, 3000])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("features_first", [False, True])
def test_gram_from_the_lower_block_triangle_matches_numpy(d, n, dtype, features_first):
    # On CPU the Gram matrix is multiplied in block rows of its lower triangle and mirrored;
    # widths that do not divide d, sample blocks with a tail, and both layouts.
    from layerscope.stats.covariance import _gram

    rng = np.random.default_rng(d + n)
    values = rng.normal(size=(n, d)) + rng.normal(size=d)
    stored = torch.tensor(values.T.copy() if features_first else values, dtype=dtype)
    samples = stored.T if features_first else stored
    gram = _gram(samples)
    exact = values.astype(np.float32 if dtype == torch.float32 else np.float64).astype(np.float64)
    reference = exact.T @ exact
    tolerance = 1e-6 if dtype == torch.float32 else 1e-13
    assert relative_error(gram.double().numpy(), reference) < tolerance
