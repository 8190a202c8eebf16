"""Weight snapshots of every recorded layer type: RWC and distance from initialisation, one row
per recorded layer, checked against numpy float64 over the layer's weight parameters."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from layerscope import Tracker
from layerscope.tracking.weights import WeightSnapshots, weight_parameters


class SequenceNet(nn.Module):
    """An LSTM (two layers, bidirectional), a GRU, an RNN, attention and a head."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 4, num_layers=2, bidirectional=True)
        self.gru = nn.GRU(8, 5)
        self.rnn = nn.RNN(5, 6)
        self.attention = nn.MultiheadAttention(6, 2)
        self.cross = nn.MultiheadAttention(6, 2, kdim=4, vdim=3)  # q/k/v weights apart
        self.head = nn.Linear(6, 2)

    def forward(self, x):  # x: (T, N, 3)
        x, _ = self.lstm(x)
        x, _ = self.gru(x)
        x, _ = self.rnn(x)
        x, _ = self.attention(x, x, x)
        keys = torch.ones(x.shape[0], x.shape[1], 4)
        values = torch.ones(x.shape[0], x.shape[1], 3)
        x, _ = self.cross(x, keys, values)
        return self.head(x)


def _weights(module: nn.Module) -> dict[str, np.ndarray]:
    """Independent of the code under test: every named weight, by the names PyTorch uses."""
    out = {}
    for name, p in module.named_parameters():
        last = name.rsplit(".", 1)[-1]
        if last.startswith("weight") or last.endswith("_weight") or last == "weight":
            out[name] = p.detach().double().numpy().copy()
    return out


def test_weight_parameter_names_per_layer_type():
    net = SequenceNet()
    expected_lstm = [f"weight_{kind}_l{layer}{suffix}" for layer in (0, 1)
                     for suffix in ("", "_reverse") for kind in ("ih", "hh")]  # fmt: skip
    lstm_names = [n for n, p in net.lstm.named_parameters()
                  if any(p is q for q in weight_parameters(net.lstm))]  # fmt: skip
    assert sorted(lstm_names) == sorted(expected_lstm)
    cross = [n for n, p in net.cross.named_parameters()
             if any(p is q for q in weight_parameters(net.cross))]  # fmt: skip
    assert cross == ["q_proj_weight", "k_proj_weight", "v_proj_weight", "out_proj.weight"]
    assert all("bias" not in n for n in lstm_names + cross)


def test_tracker_records_every_layer_type_once():
    torch.manual_seed(0)
    net = SequenceNet()
    initial = {name: _weights(m) for name, m in net.named_children()}
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    previous = initial
    expected = {}
    with Tracker(net, statistics=["saturation"]) as tracker:
        for epoch in range(2):
            loss = net(torch.randn(5, 4, 3)).square().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            tracker.end_epoch()
            current = {name: _weights(m) for name, m in net.named_children()}
            for layer, weights in current.items():
                change = sum(np.abs(w - previous[layer][k]).sum() for k, w in weights.items())
                norm = sum(np.abs(previous[layer][k]).sum() for k in weights)
                distance = np.sqrt(sum(((w - initial[layer][k]) ** 2).sum()
                                       for k, w in weights.items()))  # fmt: skip
                expected[(epoch, layer)] = (change / norm, distance)
            previous = current
    df = tracker.dataframe().query("phase == 'weights'")
    assert sorted(df.layer.unique()) == sorted(initial)  # no attention.out_proj row
    for (epoch, layer), (rwc, distance) in expected.items():
        rows = df[(df.epoch == epoch) & (df.layer == layer)].set_index("statistic").value
        np.testing.assert_allclose(rows["relative_weight_change"], rwc, rtol=1e-6)
        np.testing.assert_allclose(rows["distance_from_init"], distance, rtol=1e-6)
    saturated = tracker.dataframe().query("statistic == 'saturation'").layer.unique()
    assert sorted(saturated) == sorted(initial)  # every weights row has outputs too


def test_snapshots_of_an_attention_layer_include_out_proj():
    attention = nn.MultiheadAttention(4, 2, bias=False)
    snapshots = WeightSnapshots([("attention", attention)])
    with torch.no_grad():
        attention.out_proj.weight.add_(1.0)  # only out_proj changes
    before = np.abs(attention.in_proj_weight.detach().double().numpy()).sum()
    out_norm = np.abs(attention.out_proj.weight.detach().double().numpy() - 1.0).sum()
    values = snapshots.step()["attention"]
    np.testing.assert_allclose(values["relative_weight_change"], 16 / (before + out_norm))
    np.testing.assert_allclose(values["distance_from_init"], 4.0)
