"""Layer selection, naming and output -> samples views."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from layerscope.tracking import LayerSelectionError, describe_layers, select_layers
from layerscope.tracking.layers import channels_first, features_tensor


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 1))
        self.rnn = nn.GRU(4, 5, batch_first=True)
        self.attention = nn.MultiheadAttention(5, 1, batch_first=True)
        self.head = nn.Linear(5, 2)
        self.norm = nn.BatchNorm1d(2)


def test_default_selection_and_names():
    names = [n for n, _ in select_layers(Net())]
    # MultiheadAttention's out_proj is a Linear the attention never calls: not a layer of its own.
    assert names == ["features.0", "features.2", "rnn", "attention", "head"]


def test_include_exclude_by_pattern_and_type():
    net = Net()
    assert [n for n, _ in select_layers(net, include=["features.*"])] == [
        "features.0",
        "features.2",
    ]
    assert [n for n, _ in select_layers(net, exclude=[nn.Linear, "rnn"])] == [
        "features.0",
        "features.2",
        "attention",
    ]
    assert [n for n, _ in select_layers(net, include=[nn.BatchNorm1d])] == ["norm"]


def test_empty_selection_is_a_clear_error():
    with pytest.raises(LayerSelectionError, match="no layer of Sequential is selected"):
        select_layers(nn.Sequential(nn.ReLU()))
    with pytest.raises(LayerSelectionError, match="selectors"):
        select_layers(Net(), include=[3])


def test_describe_layers():
    infos = describe_layers(select_layers(Net()))
    assert [i.index for i in infos] == list(range(5))
    conv = infos[0]
    assert (conv.type, conv.kind, conv.num_features, conv.num_parameters) == (
        "Conv2d",
        "conv",
        8,
        8 * 3 * 9 + 8,
    )
    assert infos[2].kind == "recurrent" and infos[2].num_features == 5
    assert infos[3].kind == "attention"


def test_channels_first_puts_the_batch_first_and_the_features_second():
    conv1d = nn.Conv1d(2, 3, 1)
    assert channels_first(conv1d, conv1d(torch.zeros(4, 2, 9))).shape == (4, 3, 9)
    conv2d = nn.Conv2d(2, 3, 1)
    unbatched = conv2d(torch.zeros(2, 5, 5))
    assert channels_first(conv2d, unbatched).shape == (1, 3, 5, 5)
    linear = nn.Linear(3, 7)
    assert channels_first(linear, linear(torch.zeros(2, 5, 3))).shape == (2, 7, 5)  # tokens
    lstm = nn.LSTM(3, 4, bidirectional=True)
    assert channels_first(lstm, lstm(torch.zeros(6, 2, 3))).shape == (2, 8, 6)  # (T, N) in
    mha = nn.MultiheadAttention(4, 2)
    x = torch.zeros(5, 2, 4)
    assert channels_first(mha, mha(x, x, x)).shape == (2, 4, 5)


def test_features_tensor_keeps_the_layout_and_names_the_feature_axis():
    linear = nn.Linear(3, 7)
    tensor, axis = features_tensor(linear, linear(torch.zeros(2, 5, 3)))
    assert tensor.shape == (2, 5, 7) and axis == 2  # all leading axes are samples
    conv = nn.Conv2d(2, 3, 1)
    tensor, axis = features_tensor(conv, conv(torch.zeros(4, 2, 6, 6)))
    assert tensor.shape == (4, 3, 6, 6) and axis == 1


def test_packed_sequence_records_only_real_tokens():
    gru = nn.GRU(3, 4, batch_first=True)
    x = torch.randn(2, 5, 3)
    packed = pack_padded_sequence(x, lengths=[5, 2], batch_first=True)
    tensor, axis = features_tensor(gru, gru(packed))
    assert tensor.shape == (7, 4) and axis == 1


def test_included_normalisation_layers_are_channels_first():
    bn = nn.BatchNorm2d(3)
    assert channels_first(bn, bn(torch.zeros(2, 3, 4, 5))).shape == (2, 3, 4, 5)
    assert features_tensor(bn, bn(torch.zeros(2, 3, 4, 5)))[1] == 1
    bn1 = nn.BatchNorm1d(3)
    assert channels_first(bn1, bn1(torch.zeros(2, 3))).shape == (2, 3)
