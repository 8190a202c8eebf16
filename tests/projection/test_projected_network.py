"""project(): a new module with the Tracker's layers, fitted without touching the user's model."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch
from projection_reference import numpy_k
from torch import nn

from layerscope import Tracker
from layerscope.errors import (
    LayerSelectionError,
    LayerTooWideError,
    OptionError,
    ProjectionError,
)
from layerscope.projection import ConvPCA, LinearPCA, ProjectedNetwork, project


def cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 8, 3, padding=1, stride=2), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 12), nn.ReLU(), nn.Linear(12, 5),
    )  # fmt: skip


def batches(count=4, size=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 1, 8, 8, generator=generator),
             torch.randint(0, 5, (size,), generator=generator)) for _ in range(count)]  # fmt: skip


def trained_batchnorm(model: nn.Module) -> nn.Module:
    """Give the BatchNorm layers running statistics that are not their defaults."""
    model.train()
    with torch.no_grad():
        for x, _ in batches(3, seed=9):
            model(x)
    return model


def test_delta_one_gives_the_model_outputs_back():
    model = trained_batchnorm(cnn()).eval()
    projected = project(model, batches(8), delta=1.0)
    for x, _ in batches(2, seed=5):  # held-out data
        torch.testing.assert_close(projected(x), model(x), atol=1e-4, rtol=1e-4)


def test_k_per_layer_equals_numpy_on_independently_captured_outputs():
    model = trained_batchnorm(cnn()).eval()
    fit = batches(6)
    projected = project(model, fit, delta=0.9)
    captured = {"0": [], "3": [], "7": [], "9": []}
    with torch.no_grad():  # the Sequential run by hand, each recorded layer's output kept
        for x, _ in fit:
            for index, module in enumerate(model):
                x = module(x)
                if str(index) in captured:
                    out = x.double()
                    rows = (
                        out.permute(0, 2, 3, 1).reshape(-1, out.shape[1]) if out.dim() == 4 else out
                    )
                    captured[str(index)].append(rows.numpy())
    expected = {}
    for name, parts in captured.items():
        samples = np.concatenate(parts)
        expected[name] = numpy_k(np.linalg.eigvalsh(np.cov(samples, rowvar=False, bias=True)), 0.9)
    assert projected.k_ == expected
    assert projected.total_dimensions_ == sum(expected.values())
    assert projected.total_features == 6 + 8 + 12 + 5
    kinds = [type(layer) for layer in projected.projections]
    assert kinds == [ConvPCA, ConvPCA, LinearPCA, LinearPCA]


def test_the_users_model_is_untouched_and_batchnorm_statistics_do_not_move():
    model = trained_batchnorm(cnn())
    model.train()
    model[4].eval()  # a frozen BatchNorm inside a training model keeps its own flag
    before = copy.deepcopy(model.state_dict())
    flags = [m.training for m in model.modules()]
    projected = project(model, batches(6), delta=0.9)
    after = model.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)
    assert [m.training for m in model.modules()] == flags
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    # the copy's BatchNorm running statistics are the user's: fitting ran it in eval mode
    copy_state = projected.model.state_dict()
    for key in before:
        assert torch.equal(copy_state[key], before[key]), key
    assert projected.model is not model
    assert not projected.training and not any(m.training for m in projected.modules())


def test_layer_names_and_order_are_the_trackers():
    model = cnn()
    with Tracker(model, weights=False) as tracker:
        model.eval()
        with torch.no_grad():
            model(batches(1)[0][0])
        tracked = [(info.name, info.index) for info in tracker.layers]
        projected = project(model, batches(2), delta=0.9)
        projected(batches(1)[0][0])  # the projected network's passes are not recorded...
    df = tracker.dataframe()
    assert set(df.query("statistic == 'samples'").value) == {32 * 8 * 8, 32 * 4 * 4, 32}
    assert [(info.name, info.index) for info in projected.layers_] == tracked
    assert list(projected.k_) == [name for name, _ in tracked]
    excluded = project(model, batches(2), exclude=[nn.Linear])
    assert list(excluded.k_) == ["0", "3"]
    included = project(model, batches(2), include=["9"])
    assert list(included.k_) == ["9"]


def test_random_baseline_has_the_pca_k_and_is_seeded():
    model = cnn().eval()
    x = batches(1, seed=4)[0][0]
    pca = project(model, batches(4), delta=0.9)
    random = project(model, batches(4), delta=0.9, baseline="random", seed=3)
    assert random.k_ == pca.k_
    again = project(model, batches(4), delta=0.9, baseline="random", seed=3)
    torch.testing.assert_close(random(x), again(x))
    other = project(model, batches(4), delta=0.9, baseline="random", seed=4)
    assert not torch.allclose(random(x), other(x))
    seeds = [layer.seed for layer in random.projections]
    assert len(set(seeds)) == len(seeds)
    for layer in random.projections:
        rows = layer.components_  # (k, d) orthonormal rows
        torch.testing.assert_close(rows @ rows.T, torch.eye(layer.k_, dtype=torch.float64))
    random.set_baseline("pca")
    torch.testing.assert_close(random(x), pca(x))


def test_projected_network_saves_and_loads_with_state_dict():
    model = cnn().eval()
    projected = project(model, batches(4), delta=0.8)
    projected.set_baseline("random", seed=1)
    x = batches(1, seed=7)[0][0]
    expected = projected(x)
    buffer = io.BytesIO()
    torch.save(projected.state_dict(), buffer)
    buffer.seek(0)
    fresh = ProjectedNetwork(cnn())  # unfitted, other weights
    fresh.load_state_dict(torch.load(buffer, weights_only=False))
    fresh.eval()
    torch.testing.assert_close(fresh(x), expected)
    assert fresh.delta == 0.8 and fresh.baseline == "random" and fresh.seed == 1
    assert fresh.k_ == projected.k_ and list(fresh.k_) == list(projected.k_)
    assert fresh.layers_ == projected.layers_


def test_no_hook_outlives_a_forward_pass_also_after_an_error():
    projected = project(cnn(), batches(2))
    projected(batches(1)[0][0])
    assert all(not m._forward_hooks for m in projected.modules())
    with pytest.raises(RuntimeError):
        projected(torch.zeros(2, 3, 8, 8))  # wrong channels
    assert all(not m._forward_hooks for m in projected.modules())


def test_recurrent_layers_are_projected_on_their_output_sequence():
    torch.manual_seed(0)

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(4, 6, batch_first=True)
            self.head = nn.Linear(6, 3)

        def forward(self, x):
            return self.head(self.lstm(x)[0])

    model = Tagger().eval()
    data = [torch.randn(8, 5, 4) for _ in range(4)]
    projected = project(model, data, delta=1.0)
    torch.testing.assert_close(projected(data[0]), model(data[0]), atol=1e-5, rtol=1e-5)
    projected.delta = 0.5
    assert projected.k_["lstm"] < 6
    assert projected(data[0]).shape == (8, 5, 3)


def test_bad_input_is_a_clear_error():
    with pytest.raises(ProjectionError, match="fit loader yielded no samples"):
        project(cnn(), [])
    with pytest.raises(LayerSelectionError, match="no layer of Sequential is selected"):
        project(nn.Sequential(nn.ReLU()), batches(1))
    with pytest.raises(OptionError, match=r"delta must be in \(0, 1\]"):
        project(cnn(), batches(1), delta=0)
    with pytest.raises(OptionError, match="baseline must be one of"):
        project(cnn(), batches(1), baseline="svd")
    wide = nn.Sequential(nn.Flatten(), nn.Linear(64, 40))
    with pytest.raises(LayerTooWideError) as ours:
        project(wide, batches(1), max_features=32)
    with pytest.raises(LayerTooWideError) as trackers:
        Tracker(wide, max_features=32)
    assert str(ours.value) == str(trackers.value)

    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.spare = nn.Linear(64, 3), nn.Linear(3, 3)

        def forward(self, x):
            return self.used(x.flatten(1))

    with pytest.raises(ProjectionError, match=r"layers \['spare'\] produced no output"):
        project(Unused(), batches(1))


def test_a_layer_without_variance_projects_to_its_mean():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 4), nn.Linear(4, 3))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.fill_(0.5)
    projected = project(model, batches(2), delta=0.99)
    assert projected.k_["1"] == 0
    x = batches(1, seed=3)[0][0]
    out = projected(x)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, model(x))  # the constant output is its own mean


def test_moving_and_copying_a_projected_network_keeps_its_projection():
    projected = project(cnn().eval(), batches(3), delta=0.8)
    x = batches(1, seed=2)[0][0]
    expected = projected(x)
    torch.testing.assert_close(copy.deepcopy(projected)(x), expected)
    torch.testing.assert_close(projected.to("cpu")(x), expected)
    doubled = copy.deepcopy(projected).double()
    torch.testing.assert_close(doubled(x.double()).float(), expected, atol=1e-4, rtol=1e-4)
