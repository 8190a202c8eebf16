"""Parameter and MAC counts against closed forms, torchvision's published numbers and a plain
forward-hook count."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from layerscope.architecture.complexity import count_flops, count_parameters
from layerscope.models import create_model


def hook_count(model, x):
    """Independent MAC count for conv / linear modules from their output shapes."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
            total += output.numel() * per_output
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        model.eval()(x)
    for handle in handles:
        handle.remove()
    return total


def test_torchvision_shaped_resnets_have_the_published_sizes():
    # torchvision's resnet18 / resnet50: 11,689,512 / 25,557,032 parameters, 1.81 / 4.09 GMACs
    resnet18 = create_model("resnet18", num_classes=1000)
    assert count_parameters(resnet18).total == 11_689_512
    assert round(count_flops(resnet18, 224).macs / 1e9, 2) == 1.81
    assert count_flops(resnet18, 64).macs == hook_count(resnet18, torch.zeros(1, 3, 64, 64))
    resnet50 = create_model("resnet50", num_classes=1000)
    assert count_parameters(resnet50).total == 25_557_032
    assert round(count_flops(resnet50, 224).macs / 1e9, 2) == 4.09


def test_stem_removal_costs_match_dissertation_11_4():
    # 11.4: removing the stem raises ResNet18 from 0.04 to 0.56 and ResNet34 to 1.16 "GFLOPs"
    # per 32 px image; the dissertation's numbers are multiply-accumulates.
    assert round(count_flops(create_model("resnet18"), 32).macs / 1e9, 2) == 0.04
    assert round(count_flops(create_model("resnet18_cifar"), 32).macs / 1e9, 2) == 0.56
    assert round(count_flops(create_model("resnet34_cifar"), 32).macs / 1e9, 2) == 1.16


def test_parameters_per_module_and_trainable():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
    model[0].weight.requires_grad_(False)
    counts = count_parameters(model)
    assert counts.per_module == {"0": 3 * 4 * 9 + 4, "1": 8, "2": 10}
    assert counts.total == 112 + 8 + 10
    assert counts.trainable == counts.total - 108
    shared = nn.Linear(3, 3)
    assert count_parameters(nn.Sequential(shared, shared)).total == 12  # shared once


class Functional(nn.Module):
    """Convolution, matrix product and attention called functionally in a custom forward."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(6, 2, 3, 3))
        self.project = nn.Parameter(torch.randn(6, 5))

    def forward(self, x):
        y = F.conv2d(x, self.weight, stride=2, padding=1)  # (1, 6, 4, 4)
        tokens = y.flatten(2).transpose(1, 2)  # (1, 16, 6)
        z = tokens @ self.project  # (1, 16, 5)
        return F.scaled_dot_product_attention(z, z, z)


def test_functional_calls_are_counted_with_closed_forms():
    count = count_flops(Functional(), 8, in_channels=2)
    conv = 6 * 4 * 4 * (2 * 9)
    matmul = 16 * 5 * 6
    attention = 16 * 16 * (5 + 5)
    assert count.macs == conv + matmul + attention
    assert count.per_module == {"": count.macs}  # the model's own forward
    assert count.flops == 2 * count.macs
    assert count.input_shape == (1, 2, 8, 8)


class SelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.attention = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x):
        return self.attention(x, x, x)[0]


def test_transposed_convolution_recurrent_and_attention_layers():
    transposed = nn.ConvTranspose2d(4, 3, 3, stride=2)
    assert count_flops(transposed, 5).macs == 4 * 5 * 5 * 3 * 9  # every input feeds 3x3x3
    lstm = nn.LSTM(8, 16, num_layers=2, bidirectional=True)
    count = count_flops(lstm, example_input=torch.zeros(7, 1, 8))
    layer0 = 2 * 7 * 4 * (8 * 16 + 16 * 16)
    layer1 = 2 * 7 * 4 * (32 * 16 + 16 * 16)
    assert count.macs == layer0 + layer1
    attention = SelfAttention()
    count = count_flops(attention, example_input=torch.zeros(1, 5, 8))
    assert count.macs == (5 + 2 * 5) * 64 + 5 * 64 + 2 * 5 * 5 * 8


def test_per_module_attribution_and_no_side_effects():
    model = create_model("vgg11", width=1 / 16).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count = count_flops(model, 32)
    assert count.per_module["features.0"] == 32 * 32 * 4 * 3 * 9
    assert count.per_module["classifier.6"] == 16 * 10
    assert sum(count.per_module.values()) == count.macs
    assert model.training
    for key, value in model.state_dict().items():
        assert value.device.type == "cpu"
        torch.testing.assert_close(value, before[key])


def test_input_errors():
    with pytest.raises(ValueError, match="input_size"):
        count_flops(nn.Conv2d(1, 1, 3))
    with pytest.raises(ValueError, match="in_channels"):
        count_flops(nn.Sequential(nn.Linear(4, 2)), 8)
    with pytest.raises(ValueError, match="failed a forward pass"):
        count_flops(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(5, 2)), 8)
    with pytest.raises(ValueError, match="lazy"):
        count_parameters(nn.LazyLinear(3))


class Einsums(nn.Module):
    """Tensor contractions written with torch.einsum (as attention code often is)."""

    def __init__(self, equation, *shapes, as_list=False):
        super().__init__()
        self.equation, self.as_list = equation, as_list
        self.weights = nn.ParameterList(nn.Parameter(torch.randn(*s)) for s in shapes)

    def forward(self, x):
        operands = [x, *self.weights]
        if self.as_list:
            return torch.einsum(self.equation, operands)
        return torch.einsum(self.equation, *operands)


@pytest.mark.parametrize(
    ("equation", "shapes", "macs"),
    [
        ("bij,jk->bik", [(1, 4, 6), (6, 5)], 4 * 6 * 5),  # as x @ w: 4 x 5 outputs, 6 each
        ("bij,jk", [(1, 4, 6), (6, 5)], 4 * 6 * 5),  # implicit output
        ("...ij,jk->...ik", [(1, 3, 4, 6), (6, 5)], 3 * 4 * 6 * 5),
        ("bi,bj->bij", [(1, 4), (1, 7)], 4 * 7),  # outer product: one multiply each
        ("bij,jk,kl->bil", [(1, 4, 6), (6, 5), (5, 2)], 4 * 6 * 5 + 4 * 5 * 2),  # left to right
        ("bii->b", [(1, 3, 3)], 0),  # a trace: element-wise, not counted
    ],
)
def test_einsum_is_counted_from_its_operand_shapes(equation, shapes, macs):
    model = Einsums(equation, *shapes[1:])
    count = count_flops(model, example_input=torch.zeros(shapes[0]))
    assert count.macs == macs
    listed = Einsums(equation, *shapes[1:], as_list=True)
    assert count_flops(listed, example_input=torch.zeros(shapes[0])).macs == macs


def test_einsum_costs_what_the_same_matrix_product_costs():
    weight = torch.randn(6, 5)
    product = count_flops(Einsums("bij,jk->bik", (6, 5)), example_input=torch.zeros(1, 4, 6))

    class Matmul(nn.Module):
        def forward(self, x):
            return x @ weight

    assert product.macs == count_flops(Matmul(), example_input=torch.zeros(1, 4, 6)).macs
