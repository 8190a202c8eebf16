"""MinibatchCKA (Nguyen et al. 2021 eq. 2) against a numpy average of per-batch HSIC_1 values."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from layerscope.errors import StateMismatchError
from layerscope.similarity import (
    MinibatchCKA,
    SimilarityInputError,
    TooFewSamplesError,
    UndefinedSimilarityWarning,
    cka,
)


def hsic1(k: np.ndarray, gram_y: np.ndarray) -> float:
    """Song et al. 2012 unbiased HSIC, as printed in Nguyen et al. 2021 eq. 3."""
    n = k.shape[0]
    k, gram_y = k.copy(), gram_y.copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(gram_y, 0.0)
    one = np.ones(n)
    return (
        np.trace(k @ gram_y)
        + (one @ k @ one) * (one @ gram_y @ one) / ((n - 1) * (n - 2))
        - 2.0 / (n - 2) * (one @ k @ gram_y @ one)
    ) / (n * (n - 3))


def hsic0(k: np.ndarray, gram_y: np.ndarray) -> float:
    n = k.shape[0]
    h = np.eye(n) - 1.0 / n
    return np.trace(k @ h @ gram_y @ h) / (n - 1) ** 2


def reference_minibatch(xs, ys, bounds, hsic=hsic1):
    """(num_x, num_y) minibatch CKA: mean HSIC over batches / sqrt(mean self-HSICs)."""
    cross = np.zeros((len(xs), len(ys)))
    self_x, self_y = np.zeros(len(xs)), np.zeros(len(ys))
    for start, stop in bounds:
        kx = [x[start:stop] @ x[start:stop].T for x in xs]
        ky = [y[start:stop] @ y[start:stop].T for y in ys]
        cross += np.array([[hsic(a, b) for b in ky] for a in kx])
        self_x += [hsic(a, a) for a in kx]
        self_y += [hsic(b, b) for b in ky]
    return cross / np.sqrt(np.outer(self_x, self_y))


def representations(n=600, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 8))
    xs = [base @ rng.normal(size=(8, 12)) + 3.0, np.tanh(base[:, :4]) * 5]
    ys = [base[:, :2] @ rng.normal(size=(2, 40)), rng.normal(size=(n, 6)) + base[:, 5:6], base]
    return xs, ys


def fold(acc, xs, ys, bounds):
    for start, stop in bounds:
        acc.update(
            [torch.from_numpy(x[start:stop]) for x in xs],
            [torch.from_numpy(y[start:stop]) for y in ys],
        )
    return acc


UNEVEN = [(0, 64), (64, 100), (100, 300), (300, 333), (333, 600)]  # n < d and n > d batches


@pytest.mark.parametrize(("unbiased", "hsic"), [(True, hsic1), (False, hsic0)])
def test_grid_matches_reference_with_uneven_batches(unbiased, hsic):
    xs, ys = representations()
    acc = fold(MinibatchCKA(2, 3, unbiased=unbiased), xs, ys, UNEVEN)
    values = acc.compute()
    assert values.shape == (2, 3) and values.dtype == torch.float64
    np.testing.assert_allclose(values.numpy(), reference_minibatch(xs, ys, UNEVEN, hsic), atol=1e-9)
    assert int(acc.batches) == 5 and int(acc.samples) == 600


def test_converges_to_full_data_cka_as_batches_grow():
    rng = np.random.default_rng(1)
    n = 2048
    x = rng.normal(size=(n, 32))
    y = np.tanh(x @ rng.normal(size=(32, 16)) * 0.3) + 0.5 * rng.normal(size=(n, 16))
    full = cka(x, y, unbiased=True)
    errors = []
    for size in (16, 64, 256, 1024, n):
        acc = MinibatchCKA()
        fold(acc, [x], [y], [(s, s + size) for s in range(0, n, size)])
        errors.append(abs(float(acc.compute()) - full))
    assert errors[-1] < 1e-12  # one batch holding everything is the full-data value
    assert errors[3] < errors[0] and errors[3] < 0.01
    # The biased estimator averaged over batches stays off at small batch size (why Nguyen et
    # al. use HSIC_1): its expectation depends on the batch size.
    biased = fold(MinibatchCKA(unbiased=False), [x], [y], [(s, s + 16) for s in range(0, n, 16)])
    assert abs(float(biased.compute()) - full) > 5 * errors[0]


def test_merge_equals_sequential_updates_and_state_round_trip():
    xs, ys = representations()
    whole = fold(MinibatchCKA(2, 3), xs, ys, UNEVEN)
    first = fold(MinibatchCKA(2, 3), xs, ys, UNEVEN[:2])
    second = fold(MinibatchCKA(2, 3), xs, ys, UNEVEN[2:])
    merged = first.merge(second)
    torch.testing.assert_close(merged.compute(), whole.compute(), rtol=0, atol=1e-12)
    restored = MinibatchCKA(2, 3)
    restored.load_state_dict(whole.state_dict())
    torch.testing.assert_close(restored.compute(), whole.compute())
    whole.reset()
    assert int(whole.batches) == 0 and float(whole.cross.abs().sum()) == 0.0
    with pytest.raises(StateMismatchError):
        MinibatchCKA(2, 2).merge(MinibatchCKA(2, 3))
    with pytest.raises(TypeError):
        MinibatchCKA().merge(object())


def test_same_tensor_on_both_sides_gives_unit_diagonal():
    xs, _ = representations()
    acc = MinibatchCKA(2, 2)
    for start, stop in UNEVEN:
        batch = [torch.from_numpy(x[start:stop]) for x in xs]
        acc.update(batch, batch)
    values = acc.compute()
    torch.testing.assert_close(values.diagonal(), torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(values, values.T)


def test_small_batches_are_skipped_with_a_warning_and_empty_is_an_error():
    xs, ys = representations()
    acc = fold(MinibatchCKA(), xs[:1], ys[:1], [(0, 300), (300, 303)])
    with pytest.warns(UserWarning, match="1 batch"):
        acc.compute()
    assert int(acc.skipped_batches) == 1
    empty = fold(MinibatchCKA(), xs[:1], ys[:1], [(0, 3)])
    with pytest.raises(TooFewSamplesError, match="larger batches"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        empty.compute()


def test_dead_layer_is_nan_with_a_named_warning():
    xs, ys = representations()
    dead = [np.zeros_like(xs[0]), xs[1]]
    acc = fold(MinibatchCKA(2, 3), dead, ys, UNEVEN)
    with pytest.warns(UndefinedSimilarityWarning, match=r"x \[0\]"):
        values = acc.compute()
    assert torch.isnan(values[0]).all() and torch.isfinite(values[1]).all()


def test_feature_maps_use_the_spatial_option():
    rng = np.random.default_rng(2)
    a = torch.from_numpy(rng.normal(size=(40, 3, 4, 4)))
    b = torch.from_numpy(rng.normal(size=(40, 5, 4, 4))) + a[:, :1]
    acc = MinibatchCKA(spatial="pool")
    acc.update(a, b)
    pooled = [t.mean(dim=(2, 3)).numpy() for t in (a, b)]
    expected = reference_minibatch(pooled[:1], pooled[1:], [(0, 40)])
    assert float(acc.compute()) == pytest.approx(expected[0, 0], abs=1e-10)
    with pytest.raises(SimilarityInputError, match="spatial"):
        MinibatchCKA().update(a, b)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: MinibatchCKA(0), "num_x"),
        (lambda: MinibatchCKA(precision="half"), "precision"),
        (lambda: MinibatchCKA(spatial="avg"), "spatial"),
        (lambda: MinibatchCKA(2, 1).update(torch.zeros(8, 2), torch.zeros(8, 2)), "2 repr"),
        (lambda: MinibatchCKA().update(torch.zeros(8, 2), torch.zeros(9, 2)), "sample counts"),
        (lambda: MinibatchCKA().update(torch.full((8, 2), float("nan")), torch.zeros(8, 2)), "NaN"),
    ],
)
def test_bad_use_raises_typed_errors(call, match):
    with pytest.raises(SimilarityInputError, match=match):
        call()


def test_float32_precision_is_close_and_sync_is_a_no_op_alone():
    xs, ys = representations()
    low = fold(MinibatchCKA(2, 3, precision="float32"), xs, ys, UNEVEN)
    high = fold(MinibatchCKA(2, 3), xs, ys, UNEVEN)
    torch.testing.assert_close(low.compute(), high.compute(), rtol=0, atol=1e-4)
    before = high.compute()
    torch.testing.assert_close(high.sync().compute(), before)


def test_the_same_tensor_on_both_sides_is_prepared_once(monkeypatch):
    import layerscope.similarity.alignment as similarity

    made = []

    class Counting(similarity._Kernel):
        def __init__(self, raw, *args):
            made.append(raw.shape)
            super().__init__(raw, *args)

    monkeypatch.setattr(similarity, "_Kernel", Counting)
    xs, _ = representations(n=64)
    layers = [torch.from_numpy(x) for x in xs]
    acc = MinibatchCKA(2, 2)
    acc.update(layers, layers)  # a model against itself: one list on both sides
    assert len(made) == 2
    np.testing.assert_allclose(
        acc.compute().numpy(), reference_minibatch(xs, xs, [(0, 64)]), atol=1e-9
    )
    made.clear()
    acc.update(layers, [x.clone() for x in layers])  # equal values in other memory: not shared
    assert len(made) == 4
