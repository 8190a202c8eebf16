"""sweep(): one decomposition per layer, numbers against a numpy forward pass, grids, metrics,
and the dissertation's finding on a CNN trained on digits (figure 43)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from projection_reference import numpy_projection
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader

import layerscope.projection.layers as layers_module
from layerscope.datasets import load_dataset
from layerscope.errors import OptionError, OptionTypeError
from layerscope.models import create_model
from layerscope.projection import GRIDS, sweep


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 4))


def data(count=4, size=50, seed=0):
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.randn(6, 6, generator=generator) * torch.logspace(0, -1.5, 6)[:, None]
    return [(torch.randn(size, 6, generator=generator) @ mixing,
             torch.randint(0, 4, (size,), generator=generator)) for _ in range(count)]  # fmt: skip


def numpy_accuracy(model, fit, test, delta) -> tuple[float, float]:
    """Unprojected and PCA-projected accuracy of the MLP, computed with numpy by hand."""
    w0, b0 = (p.detach().double().numpy() for p in (model[0].weight, model[0].bias))
    w2, b2 = (p.detach().double().numpy() for p in (model[2].weight, model[2].bias))
    x_fit = np.concatenate([x.double().numpy() for x, _ in fit])
    z0_fit = x_fit @ w0.T + b0
    z2_fit = np.maximum(z0_fit, 0) @ w2.T + b2
    x = np.concatenate([x.double().numpy() for x, _ in test])
    y = np.concatenate([t.numpy() for _, t in test])
    plain = np.maximum(x @ w0.T + b0, 0) @ w2.T + b2
    h0, _ = numpy_projection(x @ w0.T + b0, z0_fit, delta)
    out, _ = numpy_projection(np.maximum(h0, 0) @ w2.T + b2, z2_fit, delta)
    return float((plain.argmax(1) == y).mean()), float((out.argmax(1) == y).mean())


def test_every_layer_is_decomposed_once_for_the_whole_sweep(monkeypatch):
    calls = []
    original = layers_module.eigendecompose
    monkeypatch.setattr(layers_module, "eigendecompose", lambda c: calls.append(1) or original(c))
    table = sweep(mlp(), data(), data(seed=1), deltas=[0.5, 0.8, 0.9, 0.99, 1.0],
                  seeds=[0, 1, 2])  # fmt: skip
    assert len(calls) == 2  # two recorded layers
    assert len(table) == 5 * (1 + 3)
    assert set(table.attrs["seconds"]) == {"fitting", "eigendecompositions", "evaluation"}


def test_sweep_numbers_match_a_numpy_forward_pass():
    model, fit, test = mlp(), data(), data(seed=1)
    table = sweep(model, fit, test, deltas=[0.6, 0.9, 0.99], baselines="pca")
    assert list(table.columns) == ["delta", "baseline", "seed", "accuracy",
                                   "unprojected_accuracy", "relative_accuracy",
                                   "total_dimensions", "total_features", "k[0]", "k[2]"]  # fmt: skip
    assert table.delta.tolist() == [0.99, 0.9, 0.6]
    assert table.seed.isna().all()
    for row in table.itertuples():
        plain, projected = numpy_accuracy(model, fit, test, row.delta)
        assert row.unprojected_accuracy == pytest.approx(plain, abs=1e-12)
        assert row.accuracy == pytest.approx(projected, abs=1e-12)
        assert row.relative_accuracy == pytest.approx(projected / plain)
        assert row.total_dimensions == row._9 + row._10  # k[0] + k[2]
        assert row.total_features == 14


def test_random_rows_share_the_pca_k():
    table = sweep(mlp(), data(), data(seed=1), deltas=[0.7, 0.95], seeds=[0, 5])
    for _, rows in table.groupby("delta"):
        assert rows.total_dimensions.nunique() == 1
        assert sorted(rows.seed.dropna().tolist()) == [0, 5]
        assert rows.baseline.tolist().count("pca") == 1


def test_reconstruction_mse_rises_as_delta_falls_for_the_autoencoder():
    """Dissertation 7.2, table 3: the conv autoencoder's reconstruction error grows as delta
    falls (here trained for a second on the digits scaled to [0, 1] at 16 x 16)."""
    torch.manual_seed(0)
    images = torch.tensor(load_digits().images, dtype=torch.float32)[:, None] / 16
    images = nn.functional.interpolate(images, size=16, mode="bilinear", align_corners=False)
    model = create_model("conv_autoencoder", in_channels=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        for batch in images[:1400].split(64):
            optimizer.zero_grad()
            nn.functional.mse_loss(model(batch), batch).backward()
            optimizer.step()
    fit, test = list(images[:1400].split(256)), list(images[1400:].split(256))
    table = sweep(model, fit, test, deltas=[0.9, 0.95, 0.99, 1.0], metric="mse")
    with torch.no_grad():
        reference = float(torch.cat([(model(x) - x).pow(2).flatten(1).mean(1)
                                     for x in test]).double().mean())  # fmt: skip
    assert table.unprojected_mse.iloc[0] == pytest.approx(reference, rel=1e-6)
    pca = table[table.baseline == "pca"].set_index("delta").mse
    random = table[table.baseline == "random"].set_index("delta").mse
    assert pca[1.0] == pytest.approx(reference, rel=1e-3)
    assert pca[0.9] > pca[0.95] > pca[0.99] > reference
    assert (random > pca).all()


def test_a_callable_metric_names_its_columns():
    def top_logit(outputs, inputs, targets):
        return outputs.max(dim=1).values

    table = sweep(mlp(), data(), data(), deltas=[1.0], baselines="pca", metric=top_logit)
    assert "relative_top_logit" in table.columns
    assert table.relative_top_logit.iloc[0] == pytest.approx(1.0, abs=1e-5)


def test_grids_are_the_dissertations():
    assert GRIDS["7.3"] == (0.90, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99, 0.991,
                            0.992, 0.993, 0.994, 0.995, 0.996, 0.997, 0.998, 0.999)  # fmt: skip
    table_4 = {0.9999, 0.9998, 0.999, 0.998, 0.996, 0.994, 0.99}
    table_5 = {0.9999, 0.9998, 0.9997, 0.9996, 0.9995, 0.9994, 0.9993, 0.9992, 0.9991, 0.998,
               0.996, 0.994, 0.992, 0.99, 0.98, 0.97, 0.96, 0.95, 0.94, 0.93, 0.92, 0.91, 0.9}  # fmt: skip
    assert table_4 | table_5 <= set(GRIDS["7.4"])
    assert len(GRIDS["7.4"]) == 28
    fine = GRIDS["7.4-fine"]
    assert len(fine) == 100 and fine[0] == 0.99 and fine[-1] == 0.9999 and 0.9957 in fine


def test_bad_sweep_options_are_clear_errors():
    with pytest.raises(OptionError, match=r"unknown delta grid '7\.5'"):
        sweep(mlp(), data(), data(), deltas="7.5")
    with pytest.raises(OptionError, match=r"every delta must be in \(0, 1\]"):
        sweep(mlp(), data(), data(), deltas=[0.9, 1.2])
    with pytest.raises(OptionError, match="baselines must be"):
        sweep(mlp(), data(), data(), baselines=["pca", "svd"])
    with pytest.raises(OptionTypeError, match="seeds must be"):
        sweep(mlp(), data(), data(), seeds=[0.5])
    with pytest.raises(OptionError, match="metric must be one of"):
        sweep(mlp(), data(), data(), metric="f1")


def test_the_progress_bar_goes_to_stderr(capsys):
    sweep(mlp(), data(1), data(1), deltas=[0.9, 0.99], baselines="pca", progress=True)
    captured = capsys.readouterr()
    assert "projection deltas" in captured.err and captured.out == ""


def test_pca_keeps_accuracy_far_better_than_random_on_a_cnn_trained_on_digits():
    """Dissertation 7.3.2, figure 43: at delta = 0.95 projections into E_l^k keep most of the
    accuracy, random orthonormal projections of the same k fall to chance."""
    torch.manual_seed(0)
    digits = load_dataset("digits", resolution=8, augment=False, seed=0)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, stride=2), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10),
    )  # fmt: skip
    train = DataLoader(digits.train, batch_size=64, shuffle=True,
                       generator=torch.Generator().manual_seed(0))  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(4):
        for x, y in train:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    fit = DataLoader(digits.train, batch_size=256)
    test = DataLoader(digits.test, batch_size=256)
    table = sweep(model, fit, test, deltas=[0.95], seeds=[0, 1, 2])
    assert table.unprojected_accuracy.iloc[0] > 0.9
    pca = table[table.baseline == "pca"].relative_accuracy.item()
    random = table[table.baseline == "random"].relative_accuracy
    assert pca > 0.9
    assert random.max() < 0.4  # chance is 0.1 / 0.95
    assert table.total_dimensions.iloc[0] < table.total_features.iloc[0] / 2
