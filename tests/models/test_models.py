"""The model zoo: every registered model trains, widths, skips, stems, attention, init, errors."""

from __future__ import annotations

import importlib
import inspect
import math
import operator

import pytest
import torch
from torch import fx, nn

from layerscope.errors import UnknownNameError
from layerscope.models import (
    VGG_CONFIGS,
    ModelOptionError,
    ModelUnavailableError,
    create_model,
    list_models,
)
from layerscope.models._factory import MODELS

EXPECTED = {
    "conv_autoencoder", "mlp", "mpnet18", "mpnet36", "resnet18", "resnet18_cifar", "resnet34",
    "resnet34_cifar", "resnet50", "vgg11", "vgg13", "vgg16", "vgg19",
}  # fmt: skip


def test_the_zoo_is_registered():
    assert EXPECTED <= set(list_models())
    assert list_models("resnet*_cifar") == ["resnet18_cifar", "resnet34_cifar"]


@pytest.mark.parametrize("name", list_models())
def test_forward_and_backward(name):
    torch.manual_seed(0)
    factory = MODELS.get(name)
    parameters = inspect.signature(factory).parameters
    size = 32 if name.startswith("vgg") else 16  # VGG's five 2x2 poolings need 32 px
    options = {"width": 1 / 16} if "width" in parameters else {}
    if "input_size" in parameters:
        options["input_size"] = size
    model = create_model(name, num_classes=7, **options)
    x = torch.randn(2, 3, size, size)
    out = model(x)
    expected = x.shape if name == "conv_autoencoder" else (2, 7)
    assert out.shape == expected
    out.float().pow(2).mean().backward()
    for pname, parameter in model.named_parameters():
        assert parameter.grad is not None, pname
        assert torch.isfinite(parameter.grad).all(), pname


def _conv_widths(model):
    return [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize("name", ["vgg11", "vgg13", "vgg16", "vgg19"])
@pytest.mark.parametrize("width", [1, 1 / 2, 1 / 4, 1 / 8, 1 / 16])
def test_vgg_width_scales_every_convolution(name, width):
    model = create_model(name, width=width)
    expected = [max(1, round(c * width)) for c in VGG_CONFIGS[name] if c != "M"]
    assert _conv_widths(model) == expected
    final = expected[-1]
    assert model.classifier[2].in_features == final
    assert model.classifier[2].out_features == final // 2


def test_resnet_width_and_stems():
    for width in (1 / 2, 1 / 4, 1 / 8, 1 / 16):
        model = create_model("resnet18", width=width)
        stage_widths = [
            model.layer1[0].conv1.out_channels,
            model.layer2[0].conv1.out_channels,
            model.layer3[0].conv1.out_channels,
            model.layer4[0].conv1.out_channels,
        ]
        assert stage_widths == [round(c * width) for c in (64, 128, 256, 512)]
        assert model.fc.in_features == round(512 * width)
    imagenet, cifar = create_model("resnet18", width=1 / 8), create_model("resnet18_cifar")
    assert (imagenet.conv1.kernel_size, imagenet.conv1.stride) == ((7, 7), (2, 2))
    assert isinstance(imagenet.maxpool, nn.MaxPool2d)
    assert (cifar.conv1.kernel_size, cifar.conv1.stride) == ((3, 3), (1, 1))
    assert isinstance(cifar.maxpool, nn.Identity)
    assert create_model("resnet18", stem="cifar").conv1.kernel_size == (3, 3)
    # 32 px: the ImageNet stem downsamples 32x overall, the CIFAR stem 8x.
    x = torch.zeros(1, 3, 32, 32)
    features = {}
    for model in (imagenet, cifar):
        model.layer4.register_forward_hook(lambda m, i, o, key=model: features.update({key: o}))
        model.eval()(x)
    assert features[imagenet].shape[-2:] == (1, 1)
    assert features[cifar].shape[-2:] == (4, 4)


def _adds(model):
    graph = fx.symbolic_trace(model).graph
    return sum(
        node.op == "call_function" and node.target in (operator.add, torch.add)
        for node in graph.nodes
    )


@pytest.mark.parametrize(("name", "blocks"), [("resnet18", 8), ("resnet34", 16), ("resnet50", 16)])
def test_skip_false_removes_every_residual_addition(name, blocks):
    assert _adds(create_model(name, width=1 / 16)) == blocks
    plain = create_model(name, width=1 / 16, skip=False)
    assert _adds(plain) == 0
    assert not any("downsample" in n for n, _ in plain.named_modules())


def test_resnet_without_skips_equals_the_hand_built_sequential_network():
    torch.manual_seed(0)
    model = create_model("resnet18_cifar", width=1 / 16, skip=False).eval()
    layers = [model.conv1, model.bn1, nn.ReLU()]
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        for block in stage:
            layers += [block.conv1, block.bn1, nn.ReLU(), block.conv2, block.bn2, nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), model.fc]
    reference = nn.Sequential(*layers).eval()
    x = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(model(x), reference(x))


@pytest.mark.parametrize(
    ("attention", "block_type"),
    [("se", "SqueezeExcitation"), ("spatial", "SpatialAttention"), ("cbam", "CBAM")],
)
@pytest.mark.parametrize("skip", [True, False])
def test_attention_in_every_block(attention, block_type, skip):
    model = create_model("resnet18_cifar", width=1 / 16, attention=attention, skip=skip)
    blocks = [
        m for stage in (model.layer1, model.layer2, model.layer3, model.layer4) for m in stage
    ]
    assert [type(b.attention).__name__ for b in blocks] == [block_type] * 8
    out = model(torch.randn(2, 3, 16, 16))
    out.sum().backward()
    assert blocks[-1].attention is not None


def test_attention_gates_scale_features_between_zero_and_one():
    from layerscope.models import SqueezeExcitation

    block = SqueezeExcitation(16)
    x = torch.rand(2, 16, 4, 4) + 0.1
    ratio = block(x) / x
    assert (ratio > 0).all() and (ratio < 1).all()
    # one weight per (image, channel): constant over positions
    torch.testing.assert_close(ratio, ratio[..., :1, :1].expand_as(ratio))


def test_mpnet_layouts_follow_section_10_2():
    mp18, mp36 = create_model("mpnet18", width=1 / 16), create_model("mpnet36", width=1 / 16)
    weighted = lambda m: [x for x in m.modules() if isinstance(x, (nn.Conv2d, nn.Linear))]  # noqa: E731
    assert len(weighted(mp18)) == 34  # stem + 8 blocks x (2 + 2) + output layer
    assert len(weighted(mp36)) == 1 + 16 * 3 + 1
    block = mp18.stages[0][0]
    assert [m.kernel_size for m in block.pathway0 if isinstance(m, nn.Conv2d)] == [(3, 3)] * 2
    assert [m.kernel_size for m in block.pathway1 if isinstance(m, nn.Conv2d)] == [(7, 7)] * 2
    # the first convolution of each pathway in a stage's first block downsamples
    for stage in mp36.stages:
        strides = [m.stride for m in stage[0].pathway1 if isinstance(m, nn.Conv2d)]
        assert strides == [(2, 2), (1, 1)]
        assert all(
            m.stride == (1, 1) for b in stage[1:] for m in b.modules() if isinstance(m, nn.Conv2d)
        )
    assert _adds(mp18) == 8 and _adds(mp36) == 16


def test_autoencoder_matches_table_1():
    model = create_model("conv_autoencoder")
    assert _conv_widths(model) == [16, 8, 8, 8, 8, 16, 3]
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 3
    ups = [m for m in model.decoder if isinstance(m, nn.Upsample)]
    assert [(u.scale_factor, u.mode) for u in ups] == [(2.0, "nearest")] * 3


def test_mlp_hidden_sizes_and_width():
    model = create_model("mlp", hidden=(64, 32), width=1 / 2, input_size=8, in_channels=1)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 32), (32, 16), (16, 10)]


def test_dilated_vgg19_keeps_spatial_size():
    model = create_model("vgg19", dilation=3, width=1 / 16).eval()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert {(m.dilation, m.padding) for m in convs} == {((3, 3), (3, 3))}
    out = model.features[:3](torch.zeros(1, 3, 32, 32))
    assert out.shape[-2:] == (32, 32)


def test_kaiming_he_initialisation_statistics():
    torch.manual_seed(0)
    model = create_model("vgg16")
    conv = model.features[-4]  # conv5_3: 512 -> 512, 3x3: 2.36 million weights
    assert isinstance(conv, nn.Conv2d) and conv.in_channels == 512
    fan_in = 512 * 9
    weights = conv.weight.detach().double()
    assert abs(weights.std().item() / math.sqrt(2 / fan_in) - 1) < 0.01
    assert abs(weights.mean().item()) < 0.001 * math.sqrt(2 / fan_in) * 10
    linear = model.classifier[2]  # 512 -> 256
    assert abs(linear.weight.detach().double().std().item() / math.sqrt(2 / 512) - 1) < 0.02
    assert all((m.bias == 0).all() for m in model.modules() if isinstance(m, nn.Linear))


def test_unknown_model_and_option_errors_suggest_the_fix():
    with pytest.raises(UnknownNameError, match=r"Did you mean .*'vgg16'"):
        create_model("vgg61")
    with pytest.raises(ModelOptionError, match="Did you mean 'width'"):
        create_model("vgg11", widht=0.5)
    with pytest.raises(ValueError, match="width must be a positive"):
        create_model("resnet18", width=0)
    with pytest.raises(ValueError, match="attention must be one of"):
        create_model("resnet18", attention="transformer")
    with pytest.raises(ValueError, match="stem must be"):
        create_model("resnet18", stem="imagnet")


def _importable(package):
    try:
        importlib.import_module(package)
    except Exception:
        return False
    return True


@pytest.mark.skipif(_importable("torchvision"), reason="torchvision is importable here")
def test_external_model_without_its_package_is_a_clear_error():
    with pytest.raises(ModelUnavailableError, match="needs torchvision"):
        create_model("tv:resnet18")


def test_torchvision_models_resolve_when_importable():
    pytest.importorskip("torchvision")
    model = create_model("tv:resnet18", num_classes=5)
    assert model.fc.out_features == 5


def test_timm_models_resolve_when_importable():
    pytest.importorskip("timm")
    model = create_model("timm:resnet18", num_classes=5, in_channels=1)
    assert model(torch.zeros(1, 1, 32, 32)).shape == (1, 5)
