"""pairwise: the CCA family over every pair of a list of inputs, each input prepared once.

The values are checked against the numpy reference of the papers' CCA (test_measures.py) and
against the measures called pair by pair, which test_measures.py checks against independent
implementations.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_measures import reference_cca

from layerscope.similarity import (
    DegenerateInputError,
    FewSamplesWarning,
    SimilarityInputError,
    canonical,
    cca,
    pwcca,
    svcca,
)
from layerscope.similarity.canonical import pairwise

FUNCTIONS = {"cca": cca, "svcca": svcca, "pwcca": pwcca}


def inputs(count: int, seed: int, n: int = 400):
    """Inputs sharing a 3-dimensional signal, of different widths."""
    g = torch.Generator().manual_seed(seed)
    signal = torch.randn(n, 3, generator=g, dtype=torch.float64)
    return [
        torch.cat([signal @ torch.randn(3, 3, generator=g, dtype=torch.float64),
                   torch.randn(n, 2 + k, generator=g, dtype=torch.float64)], dim=1) + 5.0 * k
        for k in range(count)
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "options"),
    [("cca", {}), ("svcca", {"variance": 0.9}), ("svcca", {"dims": (2, 3)}),
     ("pwcca", {"weights_from": "smaller"}), ("pwcca", {"precision": "float32"})],
)  # fmt: skip
@pytest.mark.parametrize("same", [False, True])
def test_every_pair_equals_the_measure_called_alone(method, options, same):
    xs = inputs(3, seed=1)
    ys = None if same else inputs(2, seed=2)
    found = {(i, j): result for i, j, result in pairwise(method, xs, ys, **options)}
    others = xs if same else ys
    assert sorted(found) == [(i, j) for i in range(len(xs)) for j in range(len(others))]
    for (i, j), result in found.items():
        alone = FUNCTIONS[method](xs[i], others[j], **options)
        assert result.similarity == pytest.approx(alone.similarity, abs=1e-12)
        np.testing.assert_allclose(result.correlations, alone.correlations, atol=1e-12)
        assert (result.dims_x, result.dims_y) == (alone.dims_x, alone.dims_y)


def test_cca_pairs_match_the_numpy_reference():
    xs = inputs(2, seed=3)
    ys = inputs(2, seed=4)
    for i, j, result in pairwise("cca", xs, ys):
        rho = reference_cca(xs[i].numpy(), ys[j].numpy())[0]
        np.testing.assert_allclose(result.correlations, rho, atol=1e-9)


def test_each_input_is_prepared_once(monkeypatch):
    calls = []
    original = canonical._side
    monkeypatch.setattr(canonical, "_side", lambda x, *a: calls.append(1) or original(x, *a))
    xs, ys = inputs(3, seed=5), inputs(4, seed=6)
    assert len(list(pairwise("pwcca", xs, ys))) == 12
    assert len(calls) == 3 + 4  # not 2 per pair
    calls.clear()
    assert len(list(pairwise("svcca", xs))) == 9
    assert len(calls) == 3  # against itself: one preparation per input for both roles


def test_a_constant_input_gives_its_pairs_an_error_and_the_others_values():
    xs = inputs(2, seed=7)
    xs.insert(1, torch.full((400, 3), 2.0, dtype=torch.float64))
    results = {(i, j): r for i, j, r in pairwise("cca", xs)}
    for (i, j), result in results.items():
        if 1 in (i, j):
            assert isinstance(result, DegenerateInputError)
        else:
            assert result.similarity == pytest.approx(cca(xs[i], xs[j]).similarity, abs=1e-12)


@pytest.mark.parametrize(
    ("method", "options", "match"),
    [("svcca", {"variance": 1.5}, "variance"), ("pwcca", {"weights_from": "z"}, "weights_from"),
     ("cca", {"varience": 0.9}, "unknown options"), ("rsa", {}, "method")],
)  # fmt: skip
def test_bad_options_are_refused_before_any_work(method, options, match, monkeypatch):
    monkeypatch.setattr(canonical, "_side", lambda *a: pytest.fail("work started"))
    with pytest.raises(SimilarityInputError, match=match):
        next(pairwise(method, inputs(2, seed=8), **options))


def test_few_samples_warning_points_at_the_caller():
    # The warning names the line that called the measure (or advanced pairwise), not a line
    # inside layerscope.
    x = torch.randn(60, 8, dtype=torch.float64)
    with pytest.warns(FewSamplesWarning) as called:
        cca(x, x[:, :4] + 0.1 * torch.randn(60, 4, dtype=torch.float64))
    with pytest.warns(FewSamplesWarning) as paired:
        next(pairwise("cca", [x]))
    assert called[0].filename == paired[0].filename == __file__
