"""LinearPCA and ConvPCA against numpy float64: covariance, k, projection, modes, state."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from projection_reference import numpy_k, numpy_projection
from torch import nn

import layerscope.projection.layers as layers_module
from layerscope.errors import LayerTooWideError, OptionError, OptionTypeError, ProjectionError
from layerscope.projection import ConvPCA, LinearPCA, random_directions


def correlated(n: int, d: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    scales = torch.logspace(0, -2, d, dtype=torch.float64)
    mixing = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))[0]
    x = torch.randn(n, d, generator=generator, dtype=torch.float64) * scales @ mixing
    return (x + 3.0).float()


@pytest.mark.parametrize("centered", [True, False])
@pytest.mark.parametrize("delta", [0.5, 0.9, 0.99])
def test_linear_pca_matches_numpy(delta, centered):
    fit, held_out = correlated(400, 6), correlated(50, 6, seed=1)
    layer = LinearPCA(6, delta, centered=centered)
    for batch in fit.split(64):
        assert layer(batch) is batch  # training mode: pass-through
    layer.eval()
    ours = layer(held_out).double().numpy()
    expected, k = numpy_projection(held_out.double().numpy(), fit.double().numpy(), delta, centered)
    assert layer.k_ == k
    np.testing.assert_allclose(ours, expected, atol=2e-5)
    assert layer.components_.shape == (k, 6)


def test_projected_output_lies_in_the_span_and_projecting_again_changes_nothing():
    fit = correlated(300, 5)
    layer = LinearPCA(5, 0.9)
    layer(fit)
    layer.eval()
    y = layer(correlated(40, 5, seed=3)).double()
    p = layer.components_  # (k, d)
    mean = layer.mean_
    # (y - mu) lies in the row space of P: P^T P is idempotent on it
    np.testing.assert_allclose(((y - mean) @ p.T @ p).numpy(), (y - mean).numpy(), atol=1e-5)
    np.testing.assert_allclose(layer(y.float()).double().numpy(), y.numpy(), atol=1e-5)
    projector = (p.T @ p).numpy()
    np.testing.assert_allclose(projector @ projector, projector, atol=1e-12)


def test_conv_pca_treats_positions_as_samples_and_is_a_1x1_convolution():
    torch.manual_seed(0)
    base = torch.randn(16, 2, 6, 6)
    x = torch.cat([base, base[:, :1] * 2 + 0.01 * torch.randn(16, 1, 6, 6)], dim=1)  # (N, 3, H, W)
    layer = ConvPCA(3, 0.95)
    layer(x)
    layer.eval()
    samples = x.permute(0, 2, 3, 1).reshape(-1, 3).double().numpy()  # (N*H*W, C)
    expected, k = numpy_projection(samples, samples, 0.95)
    ours = layer(x)
    assert layer.k_ == k == 2
    np.testing.assert_allclose(
        ours.permute(0, 2, 3, 1).reshape(-1, 3).double().numpy(), expected, atol=2e-5
    )
    matrix, bias = layer.projection_matrix()
    conv = nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        conv.weight.copy_(matrix.float().reshape(3, 3, 1, 1))
        conv.bias.copy_(bias.float())
    torch.testing.assert_close(ours, conv(x))


@pytest.mark.parametrize("shape", [(4, 3, 7), (2, 3, 3, 4, 4)])
def test_conv_pca_on_1d_and_3d_maps(shape):
    x = torch.randn(*shape)
    layer = ConvPCA(3, 1.0)
    layer(x)
    layer.eval()
    torch.testing.assert_close(layer(x), x, atol=1e-5, rtol=1e-5)


def test_changing_delta_reselects_k_without_a_new_decomposition(monkeypatch):
    calls = []
    original = layers_module.eigendecompose
    monkeypatch.setattr(layers_module, "eigendecompose", lambda c: calls.append(1) or original(c))
    fit = correlated(300, 6)
    layer = LinearPCA(6, 0.99)
    layer(fit)
    layer.eval()
    values = np.linalg.eigvalsh(np.cov(fit.double().numpy(), rowvar=False, bias=True))
    for delta in (0.99, 0.5, 0.9, 1.0, 0.7):
        layer.delta = delta
        layer(fit[:10])
        assert layer.k_ == numpy_k(values, delta)
    assert len(calls) == 1


def test_back_to_training_resets_and_new_samples_decompose_again():
    torch.manual_seed(0)
    layer = LinearPCA(3, 0.9)
    layer(torch.randn(100, 3) * torch.tensor([5.0, 0.1, 0.1]))
    layer.eval()
    layer(torch.zeros(1, 3))
    assert layer.k_ == 1
    layer.train()
    assert int(layer.covariance.count) == 0 and not layer.is_fitted
    second = torch.randn(100, 3) * torch.tensor([0.1, 0.1, 5.0])
    layer(second)
    layer.eval()
    layer(torch.zeros(1, 3))  # decomposes the new covariance only
    assert layer.k_ == 1
    assert abs(float(layer.components_[0, 2])) > 0.99
    third = torch.randn(100, 3) * torch.tensor([8.0, 0.1, 0.0])
    layer.update(third)  # new samples in evaluation mode: the next pass decomposes again
    layer(torch.zeros(1, 3))
    both = torch.cat([second, third]).double().numpy()
    expected = numpy_k(np.linalg.eigvalsh(np.cov(both, rowvar=False, bias=True)), 0.9)
    assert layer.k_ == expected == 2


def test_zero_variance_projects_to_the_mean_without_nan():
    layer = LinearPCA(4, 0.99)
    layer(torch.full((50, 4), 2.5))
    layer.eval()
    y = layer(torch.randn(5, 4))
    assert layer.k_ == 0
    torch.testing.assert_close(y, torch.full((5, 4), 2.5))
    uncentred = LinearPCA(4, 0.99, centered=False)
    uncentred(torch.full((50, 4), 2.5))
    uncentred.eval()
    assert torch.equal(uncentred(torch.randn(5, 4)), torch.zeros(5, 4))


def test_bad_input_is_a_clear_error():
    for bad in (0, 0.0, 1.5, -0.1):
        with pytest.raises(OptionError, match=r"delta must be in \(0, 1\]"):
            LinearPCA(3, bad)
    with pytest.raises(OptionTypeError, match="delta must be a number"):
        LinearPCA(3, "0.9")
    layer = LinearPCA(3)
    with pytest.raises(OptionError, match=r"delta must be in \(0, 1\]"):
        layer.delta = 2
    layer.eval()
    with pytest.raises(ProjectionError, match="needs at least 2 samples, got 0"):
        layer(torch.zeros(2, 3))
    with pytest.raises(LayerTooWideError, match="max_features=8"):
        LinearPCA(10, max_features=8)
    with pytest.raises(OptionError, match="baseline must be one of"):
        layer.set_baseline("svd")
    trained = LinearPCA(3)
    trained(torch.randn(10, 3))
    trained.eval()
    with pytest.raises(OptionError, match="projects 3 features"):
        trained(torch.randn(2, 4))


def test_random_directions_are_orthonormal_seeded_and_a_qr_of_the_first_k_columns():
    d, k, seed = 7, 3, 11
    q = random_directions(d, seed).numpy()
    np.testing.assert_allclose(q.T @ q, np.eye(d), atol=1e-12)
    assert np.array_equal(q, random_directions(d, seed).numpy())
    assert not np.allclose(q, random_directions(d, seed + 1).numpy())
    gaussian = torch.randn(d, d, generator=torch.Generator().manual_seed(seed),
                           dtype=torch.float64).numpy()  # fmt: skip
    reference, _ = np.linalg.qr(gaussian[:, :k])  # numpy's QR of the seeded d x k Gaussian
    np.testing.assert_allclose(q[:, :k] @ q[:, :k].T, reference @ reference.T, atol=1e-12)


def test_random_baseline_keeps_k_and_projects_onto_its_directions():
    fit = correlated(300, 6)
    layer = LinearPCA(6, 0.9)
    layer(fit)
    layer.eval()
    k = layer.k_
    layer.set_baseline("random", seed=4)
    assert layer.k_ == k
    q = random_directions(6, 4)[:, :k]
    x = correlated(20, 6, seed=2)
    mean = layer.mean_
    expected = mean + (x.double() - mean) @ q @ q.T
    torch.testing.assert_close(layer(x).double(), expected, atol=2e-5, rtol=0)


def test_state_dict_round_trip_keeps_the_projection():
    fit = correlated(200, 5)
    layer = LinearPCA(5, 0.8, centered=False)
    layer(fit)
    layer.eval()
    layer.set_baseline("random", seed=2)
    expected = layer(fit[:7])
    buffer = io.BytesIO()
    torch.save(layer.state_dict(), buffer)
    buffer.seek(0)
    loaded = LinearPCA(5)
    loaded.load_state_dict(torch.load(buffer, weights_only=False))
    loaded.eval()
    assert (loaded.delta, loaded.baseline, loaded.centered, loaded.k_) == (
        0.8, "random", False, layer.k_)  # fmt: skip
    torch.testing.assert_close(loaded(fit[:7]), expected)
