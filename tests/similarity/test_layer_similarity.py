"""layer_similarity and similarity_over_epochs: hooks, names, spatial modes, and the numbers
against the pure functions applied to activations collected by hand.
"""

from __future__ import annotations

import copy
import gc
import weakref
from collections.abc import Sequence

import numpy as np
import pytest
import torch
from torch import nn

from layerscope.similarity import (
    SimilarityInputError,
    SimilarityMatrix,
    UndefinedSimilarityWarning,
    cca,
    cka,
    layer_similarity,
    similarity_over_epochs,
)
from layerscope.tracking.layers import select_layers


def mlp(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 8), nn.Tanh(), nn.Linear(8, 3))


def convnet(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 5, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(5, 3, 3, stride=2),
        nn.Flatten(),
        nn.Linear(3 * 2 * 2, 4),
    )


def batches(shape, count=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(*shape, generator=g), torch.zeros(shape[0])) for _ in range(count)]


def by_hand(model: nn.Module, data) -> dict[str, torch.Tensor]:
    """Each linear layer's output over all batches, by running the layers one by one."""
    outputs: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        for x, _ in data:
            for name, module in model.named_children():
                x = module(x)
                if isinstance(module, nn.Linear):
                    outputs.setdefault(name, []).append(x)
    return {name: torch.cat(parts) for name, parts in outputs.items()}


def no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks for m in model.modules())


def test_matrix_between_two_models_matches_pure_functions():
    a, b, data = mlp(0), mlp(1), batches((50, 6))
    result = layer_similarity(a, b, data, unbiased=False, max_batches=1)
    names = tuple(name for name, _ in select_layers(a))
    assert result.rows == result.cols == names == ("0", "2", "4")
    acts_a, acts_b = by_hand(a, data[:1]), by_hand(b, data[:1])
    expected = [[cka(acts_a[r], acts_b[c], unbiased=False) for c in names] for r in names]
    np.testing.assert_allclose(result.values, expected, atol=1e-6)  # float32 activations
    assert result.num_samples == 50 and result.measure == "cka" and result.spatial == "flatten"
    frame = result.to_frame()
    assert list(frame.columns) == ["layer_a", "layer_b", "measure", "value"] and len(frame) == 9
    assert no_hooks(a) and no_hooks(b)


def test_cca_family_gathers_samples_and_passes_options():
    a, b, data = mlp(0), mlp(1), batches((100, 6), count=5)
    result = layer_similarity(a, b, data, measure="cca", max_samples=300)
    acts_a, acts_b = by_hand(a, data[:3]), by_hand(b, data[:3])
    assert result.num_samples == 300
    assert result.values[1, 2] == pytest.approx(cca(acts_a["2"], acts_b["4"]).mean, abs=1e-6)
    svcca = layer_similarity(a, b, data, measure="svcca", options={"dims": 2})
    assert svcca.values.shape == (3, 3) and np.isfinite(svcca.values).all()
    pw = layer_similarity(a, a.__class__(*copy.deepcopy(list(a))), data, measure="pwcca")
    np.testing.assert_allclose(pw.values.diagonal(), 1.0, atol=1e-5)


def test_self_comparison_is_symmetric_with_unit_diagonal_and_restores_training_flags():
    model = mlp(0).train()
    result = layer_similarity(model, None, batches((40, 6)))
    np.testing.assert_allclose(result.values.diagonal(), 1.0, atol=1e-12)
    np.testing.assert_allclose(result.values, result.values.T, atol=1e-12)
    assert model.training and all(m.training for m in model.modules())
    assert no_hooks(model)


def test_hooks_are_removed_and_flags_restored_after_an_error():
    model = mlp(0).train()
    bad = [torch.randn(10, 7)]  # wrong input width: the forward pass fails
    with pytest.raises(RuntimeError):
        layer_similarity(model, None, bad)
    assert no_hooks(model) and model.training
    with pytest.raises(TypeError, match="input tensors"):
        layer_similarity(model, None, [{"x": torch.randn(4, 6)}])
    assert no_hooks(model)


def test_conv_layers_in_the_three_spatial_modes():
    a, b = convnet(0), convnet(1)
    data = batches((12, 2, 6, 6), count=6)
    flat = layer_similarity(a, b, data)
    assert flat.rows == ("0", "2", "4", "6") and np.isfinite(flat.values).all()
    pooled = layer_similarity(a, b, data, spatial="pool", measure="cca", max_samples=60)
    assert pooled.num_samples == 60 and np.isfinite(pooled.values).all()
    # Positions as samples: layers 0 and 2 share a 6x6 grid; all layers at once cannot.
    same_grid = layer_similarity(a, b, data, spatial="positions", include=["0", "2"])
    assert same_grid.num_samples == 6 * 12 * 36
    with torch.no_grad():
        x = torch.cat([x for x, _ in data])
        first = a[0](x).permute(0, 2, 3, 1).reshape(-1, 4)
        second = b[2](b[1](b[0](x))).permute(0, 2, 3, 1).reshape(-1, 5)
    assert same_grid.values[0, 1] == pytest.approx(cka_minibatch(first, second), abs=1e-9)
    one_batch = layer_similarity(a, b, data[:1], spatial="positions", include=["0", "2"])
    assert one_batch.values[0, 1] == pytest.approx(
        cka(first[: 12 * 36], second[: 12 * 36], unbiased=True), abs=1e-9
    )
    with pytest.raises(SimilarityInputError, match="spatial='pool'"):
        layer_similarity(a, b, data, spatial="positions")


def hsic1(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased HSIC (Song et al. 2012; Nguyen et al. 2021 eq. 3) of two (n, d) matrices of
    linear-kernel features, in numpy float64 straight from the printed formula."""
    k, ell = x @ x.T, y @ y.T
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(ell, 0.0)
    n, one = k.shape[0], np.ones(k.shape[0])
    return (
        np.trace(k @ ell)
        + (one @ k @ one) * (one @ ell @ one) / ((n - 1) * (n - 2))
        - 2.0 / (n - 2) * (one @ k @ ell @ one)
    ) / (n * (n - 3))


def cka_minibatch(x, y, batch_rows=12 * 36) -> float:
    """Minibatch CKA (Nguyen et al. 2021 eq. 2): the per-batch HSIC_1 values averaged, then
    mean HSIC(X, Y) / sqrt(mean HSIC(X, X) * mean HSIC(Y, Y))."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    terms = np.array([
        (hsic1(a, b), hsic1(a, a), hsic1(b, b))
        for a, b in ((x[s : s + batch_rows], y[s : s + batch_rows])
                     for s in range(0, len(x), batch_rows))
    ])  # fmt: skip
    cross, self_x, self_y = terms.mean(axis=0)
    return float(cross / np.sqrt(self_x * self_y))


def test_recurrent_layers_pool_over_time_on_the_batch_axis():
    torch.manual_seed(0)

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(3, 4)  # (T, N, H): the batch is the second axis
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            out, _ = self.rnn(x)
            return self.head(out[-1])

    model = Wrapper()
    data = [torch.randn(7, 60, 3)]  # T=7, N=60
    result = layer_similarity(model, None, data, spatial="pool", measure="cca")
    assert result.num_samples == 60  # pooled over time, one row per sequence
    with torch.no_grad():
        out, _ = model.rnn(data[0])
        pooled = out.mean(dim=0)
        head = model.head(out[-1])
    assert result.values[0, 1] == pytest.approx(cca(pooled, head).mean, abs=1e-6)


def test_dead_layer_gives_nan_and_a_warning():
    model = mlp(0)
    with torch.no_grad():
        model[4].weight.zero_()  # the last layer outputs zeros
        model[4].bias.zero_()
    with pytest.warns(UndefinedSimilarityWarning):
        result = layer_similarity(model, None, batches((40, 6)))
    assert np.isnan(result.values[2]).all() and np.isnan(result.values[:, 2]).all()
    assert np.isfinite(result.values[:2, :2]).all()
    with pytest.warns(UndefinedSimilarityWarning, match="no variance"):
        layer_similarity(model, None, batches((40, 6)), measure="cca")


def test_over_epochs_with_models_and_with_state_dicts():
    model = mlp(0)
    states, models = [], []
    for _ in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.3 * torch.randn_like(p))
        states.append(copy.deepcopy(model.state_dict()))
        models.append(copy.deepcopy(model))
    data = batches((64, 6))
    from_models = similarity_over_epochs(models, data, epochs=[5, 10, 15])
    from_states = similarity_over_epochs(states, data, model=mlp(9), epochs=[5, 10, 15])
    np.testing.assert_allclose(from_models.values, from_states.values, atol=1e-12)
    assert from_models.values.shape == (3, 3) and from_models.reference_epoch == 15
    np.testing.assert_allclose(from_models.values[-1], 1.0, atol=1e-12)
    acts_first, acts_last = by_hand(models[0], data), by_hand(models[-1], data)
    acc = cka_minibatch(acts_first["4"], acts_last["4"], batch_rows=64)
    assert from_models.values[0, 2] == pytest.approx(acc, abs=1e-9)
    frame = from_models.to_frame()
    assert list(frame.columns) == ["epoch", "layer", "measure", "value"] and len(frame) == 9
    one_layer = similarity_over_epochs(models, data, include=["2"], measure="svcca")
    assert one_layer.layers == ("2",) and one_layer.values.shape == (3, 1)


class _LazyStates(Sequence):
    """State dicts made when indexed, as a run's checkpoint files are read; records how many of
    the ones handed out earlier are still alive at each request."""

    def __init__(self, states):
        self.states = states
        self.handed: list[weakref.ref] = []
        self.alive_at_request: list[int] = []

    def __len__(self):
        return len(self.states)

    def __getitem__(self, index):
        source = self.states[index]  # IndexError past the end ends the iteration
        gc.collect()
        self.alive_at_request.append(sum(ref() is not None for ref in self.handed))
        state = copy.deepcopy(source)
        self.handed.append(weakref.ref(next(iter(state.values()))))
        return state


def test_over_epochs_reads_a_lazy_sequence_one_state_at_a_time():
    # A run with every epoch kept must not hold every epoch's weights: the sequence is read item
    # by item (the last first, as the reference), and each state dict goes once it is loaded
    # into the working copy. The values equal those from a plain list.
    model = mlp(0)
    states = []
    for _ in range(5):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.3 * torch.randn_like(p))
        states.append(copy.deepcopy(model.state_dict()))
    data = batches((64, 6))
    lazy = _LazyStates(states)
    result = similarity_over_epochs(lazy, data, model=mlp(9))
    plain = similarity_over_epochs(states, data, model=mlp(9))
    np.testing.assert_allclose(result.values, plain.values, atol=1e-12)
    assert len(lazy.alive_at_request) == 6  # the reference, then each checkpoint once
    assert max(lazy.alive_at_request) <= 1  # the previous one at most, never all of them


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(checkpoints=[]), SimilarityInputError, "empty"),
        (dict(epochs=[1]), SimilarityInputError, "epoch labels"),
        (dict(model=None), SimilarityInputError, "model="),
        (dict(checkpoints=[3, 4]), TypeError, "state dicts"),
        (dict(measure="rsa"), SimilarityInputError, "unknown similarity measure"),
        (dict(spatial="avg"), SimilarityInputError, "spatial"),
        (dict(max_batches=0), SimilarityInputError, "max_batches"),
    ],
)
def test_over_epochs_errors(kwargs, error, match):
    model = mlp(0)
    arguments = dict(
        checkpoints=[model.state_dict(), model.state_dict()], loader=batches((8, 6)), model=model
    )
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        similarity_over_epochs(arguments.pop("checkpoints"), arguments.pop("loader"), **arguments)


def test_different_architectures_must_match_over_epochs():
    small, large = mlp(0), nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 3))
    with pytest.raises(SimilarityInputError, match="one architecture"):
        similarity_over_epochs([large, small], batches((8, 6)))


def test_matrix_result_record():
    matrix = SimilarityMatrix(np.eye(2), ("a", "b"), ("c", "d"), "cka", 10, "flatten")
    assert matrix.to_frame()["value"].tolist() == [1.0, 0.0, 0.0, 1.0]


def test_per_module_training_flags_come_back_exactly():
    model = mlp(0).train()
    model[2].eval()  # e.g. a frozen part inside a model in training
    layer_similarity(model, mlp(1), batches((20, 6)))
    assert model.training and not model[2].training and model[4].training


def never_read():
    raise AssertionError("the loader was read before the options were checked")
    yield


@pytest.mark.parametrize(
    ("measure", "options", "match"),
    [("cka", {"variance": 0.9}, "takes no options"),
     ("svcca", {"varience": 0.9}, "varience"),
     ("pwcca", {"weights": "x"}, "weights_from")],
)  # fmt: skip
def test_options_are_checked_before_any_batch(measure, options, match):
    model = mlp(0)
    with pytest.raises(SimilarityInputError, match=match):
        layer_similarity(model, None, never_read(), measure=measure, options=options)
    with pytest.raises(SimilarityInputError, match=match):
        similarity_over_epochs([model, model], never_read(), measure=measure, options=options)
    assert no_hooks(model)


def test_svcca_options_reach_the_measure():
    model, data = mlp(0), batches((64, 6))
    result = layer_similarity(model, mlp(1), data, measure="svcca", options={"dims": 2})
    by_a, by_b = by_hand(model, data), by_hand(mlp(1), data)
    from layerscope.similarity import svcca

    assert result.values[0, 1] == pytest.approx(svcca(by_a["0"], by_b["2"], dims=2).similarity)


class SequenceModel(nn.Module):
    """An LSTM and a per-step linear layer; ``batch_first=False`` runs the same network on the
    transposed input, so both layouts compute identical values."""

    def __init__(self, batch_first: bool):
        super().__init__()
        torch.manual_seed(0)
        self.batch_first = batch_first
        self.rnn = nn.LSTM(3, 5, batch_first=batch_first)
        self.step = nn.Linear(5, 4)

    def forward(self, x):  # x: (N, T, 3) for both; the LSTM's output is (N, T, 5) or (T, N, 5)
        out, _ = self.rnn(x if self.batch_first else x.transpose(0, 1))
        return self.step(out if self.batch_first else out.transpose(0, 1))


def test_positions_pair_the_same_rows_for_batch_first_and_time_first_layers():
    batch_major, time_major = SequenceModel(True), SequenceModel(False)
    data = [torch.randn(16, 6, 3) for _ in range(3)]  # N=16 sequences of T=6 steps
    result = layer_similarity(batch_major, time_major, data, spatial="positions")
    assert result.rows == result.cols == ("rnn", "step")
    assert result.num_samples == 3 * 16 * 6
    np.testing.assert_allclose(np.diag(result.values), 1.0, atol=1e-9)
    # the rows of one model, in the batch-major order both now use
    with torch.no_grad():
        out = torch.cat([batch_major.rnn(x)[0].reshape(-1, 5) for x in data])
        steps = batch_major.step(out)
    assert result.values[0, 1] == pytest.approx(cka_minibatch(out, steps, 16 * 6), abs=1e-9)
