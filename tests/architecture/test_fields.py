"""Receptive fields: dissertation figures, reference values, empirical gradients, the traps of
rfa-toolbox 1.7.0, both tracers, borders, truncation and what-if advice."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from layerscope.architecture import (
    ReceptiveField,
    ReceptiveFieldError,
    receptive_field,
    truncate,
)
from layerscope.errors import TraceError
from layerscope.models import VGG_CONFIGS, create_model
from layerscope.tracking.layers import describe_layers, select_layers

# -- independent references ---------------------------------------------------------------------


def sequential_reference(config, dilation=1):
    """Eq. 9 by hand for a VGG configuration: (input r, output r) of every convolution."""
    r, jump, rows = 1, 1, []
    for item in config:
        if item == "M":
            r, jump = r + jump, jump * 2
        else:
            rows.append((r, r + 2 * dilation * jump))
            r = rows[-1][1]
    return rows


def empirical_extents(model, layers, size, in_channels=3):
    """Extent (per axis) of the non-zero input gradient of a central output of each layer.

    Upsampling layers see different numbers of inputs at even and odd positions, so the largest
    extent over the central position and its neighbour is taken. The model is linearised
    (ReLU -> identity, max -> average pooling) so that no gradient is zero by chance, and run in
    float64; an extent must not touch the image edge.
    """
    model = copy.deepcopy(model)
    for name, module in list(model.named_modules()):
        parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
        leaf = name.rpartition(".")[2]
        if isinstance(module, nn.ReLU):
            setattr(parent, leaf, nn.Identity())
        elif isinstance(module, nn.MaxPool2d):
            assert module.dilation in (1, (1, 1))
            setattr(parent, leaf, nn.AvgPool2d(module.kernel_size, module.stride, module.padding))
    model = model.double().eval()
    sizes = (size, size) if isinstance(size, int) else size
    x = torch.randn(1, in_channels, *sizes, dtype=torch.float64, requires_grad=True)
    captured = {}
    handles = [
        model.get_submodule(layer).register_forward_hook(
            lambda m, i, o, layer=layer: captured.setdefault(layer, o)
        )
        for layer in layers
    ]
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    result = {}
    for layer in layers:
        y, extents = captured[layer], [0] * len(sizes)
        for shift in (0, 1):
            centre = tuple(s // 2 + shift for s in y.shape[2:])
            output = y[(0, slice(None), *centre)].sum()
            (gradient,) = torch.autograd.grad(output, x, retain_graph=True)
            hits = np.nonzero(gradient[0].abs().sum(0).numpy())
            for axis, positions in enumerate(hits):
                assert positions.min() > 0 and positions.max() < sizes[axis] - 1, "clipped"
                extents[axis] = max(extents[axis], int(positions.max() - positions.min() + 1))
        result[layer] = tuple(extents)
    return result


def empirical_extent(model, layer, size, in_channels=3):
    return empirical_extents(model, [layer], size, in_channels)[layer]


# -- the dissertation's figures and the reference values --------------------------------


@pytest.mark.parametrize(
    ("name", "border"), [("vgg11", 6), ("vgg13", 7), ("vgg16", 8), ("vgg19", 8)]
)
def test_vgg_border_layers_at_32_px_match_figure_52(name, border):
    rf = receptive_field(create_model(name, width=1 / 16), 32)
    reference = sequential_reference(VGG_CONFIGS[name])
    convs = [f for f in rf.fields_ if f.type == "Conv2d"]
    assert [(f.input_r_max, f.r_max) for f in convs] == reference
    assert all(f.r_min == f.r_max for f in convs)  # sequential: one path
    expected = next(i for i, (r_in, _) in enumerate(reference) if r_in > 32) + 1
    assert expected == border  # the hand computation agrees with the figure
    # Convention: dissertation layer numbers are 1-based positions among recorded layers.
    assert rf.border_min_.index + 1 == border
    assert rf.border_max_ == rf.border_min_
    assert rf.border_min_.type == "Conv2d"


def test_dilated_vgg19_border_at_layer_5_figure_53b():
    rf = receptive_field(create_model("vgg19", width=1 / 16, dilation=3), 32)
    convs = [f for f in rf.fields_ if f.type == "Conv2d"]
    assert [(f.input_r_max, f.r_max) for f in convs] == sequential_reference(
        VGG_CONFIGS["vgg19"], dilation=3
    )
    assert convs[0].r_max == 7  # 3x3 dilated by 3 covers 7 pixels
    assert rf.border_min_.index + 1 == 5


def test_resnet18_without_skips_border_at_layer_5_figure_53a():
    rf = receptive_field(create_model("resnet18", width=1 / 16, skip=False), 32)
    # conv1 7/2 -> 7, maxpool 3/2 -> 11, then 3x3 convs add 2 * 4 each: 19, 27, 35 ...
    assert [f.r_max for f in rf.fields_[:5]] == [7, 19, 27, 35, 43]
    assert rf.border_min_.name == "layer1.1.conv2" and rf.border_min_.index + 1 == 5
    assert rf.border_max_ == rf.border_min_


def test_reference_values_resnet18_resnet50_vgg16():
    resnet18 = receptive_field(create_model("resnet18", width=1 / 16), 224)
    assert resnet18["layer4.1.conv2"].r_max == 435
    resnet50 = receptive_field(create_model("resnet50", width=1 / 16), 224)
    assert resnet50["layer4.2.conv2"].r_max == 427
    assert resnet50["layer4.2.conv3"].r_max == 427
    vgg16 = receptive_field(create_model("vgg16", width=1 / 16), 32, trace_size=224)
    assert vgg16["features.40"].r_max == 196  # conv5_3
    assert vgg16["features.43"].r_max == 212  # pool5
    assert vgg16["features.43"].type == "MaxPool2d"


def test_resnet_r_min_follows_the_skip_paths():
    rf = receptive_field(create_model("resnet18", width=1 / 16), 32)
    # Through the skips, every block input has the stem's r = 11; conv2 adds 2 jumps to it.
    assert rf["layer4.1.conv1"].input_r_min == 11
    assert rf["layer4.1.conv2"].input_r_min == 11 + 2 * 32
    assert rf["layer3.1.conv2"].input_r_min == 11 + 2 * 16
    assert rf["layer2.0.downsample.0"].r_min == 11
    assert rf["layer4.1.conv2"].r_max == 435
    # b_min (10.2): the first layer of the run up to the output that all exceed I.
    assert rf.border_min_.name == "layer4.1.conv2"
    assert rf.border_max_.name == "layer1.1.conv2"


def test_recorded_layers_match_the_tracker_selection():
    model = create_model("resnet18_cifar", width=1 / 16)
    rf = receptive_field(model, 32)
    selected = select_layers(model)
    assert sorted(info.name for info in rf.layers_) == sorted(n for n, _ in selected)
    # forward order: a block's downsample runs after its conv2 (registration puts it last too)
    assert rf.layers_ == describe_layers(selected)
    assert [f.index for f in rf.fields_] == list(range(len(rf.layers_)))


# -- empirical receptive fields ------------------------------------------------------------------


def test_vgg11_r_max_equals_the_empirical_receptive_field():
    model = create_model("vgg11", width=1 / 16)
    rf = receptive_field(model, 32)
    convs = [f for f in rf.fields_ if f.type == "Conv2d"]
    measured = empirical_extents(model, [f.name for f in convs], 192)
    assert {f.name: f.r_max_axes for f in convs} == measured


def test_multipath_r_max_equals_the_empirical_receptive_field():
    model = create_model("resnet18_cifar", width=1 / 16)
    rf = receptive_field(model, 32)
    names = ["layer1.1.conv2", "layer2.0.downsample.0", "layer3.1.conv2", "layer4.1.conv2"]
    assert empirical_extents(model, names, 128) == {n: rf[n].r_max_axes for n in names}


class TwoPath(nn.Module):
    """Two blocks of a 3x3 path beside a 7x7 path (an MPNet in miniature), then a stride."""

    def __init__(self):
        super().__init__()
        self.a1, self.b1 = nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(1, 2, 7, padding=3)
        self.down = nn.Conv2d(2, 2, 3, stride=2, padding=1)
        self.a2, self.b2 = nn.Conv2d(2, 2, 3, padding=1), nn.Conv2d(2, 2, 7, padding=3)
        self.out = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        x = self.a1(x) + self.b1(x)
        x = self.down(x)
        x = self.a2(x) + self.b2(x)
        return self.out(x)


def test_two_path_toy_r_min_and_r_max_by_hand():
    model = TwoPath()
    rf = receptive_field(model, 16)
    # by hand: a1 3, b1 7 -> merge [3, 7]; down (3x3/2): [5, 9], jump 2;
    # a2 adds 2*2: [9, 13]; b2 adds 6*2: [17, 21]; merge [9, 21]; out adds 2*2: [13, 25]
    assert (rf["down"].r_min, rf["down"].r_max) == (5, 9)
    assert (rf["a2"].r_min, rf["a2"].r_max) == (9, 13)
    assert (rf["b2"].r_min, rf["b2"].r_max) == (17, 21)
    assert (rf["out"].input_r_min, rf["out"].input_r_max) == (9, 21)
    assert (rf["out"].r_min, rf["out"].r_max) == (13, 25)
    assert empirical_extent(model, "out", 64, in_channels=1) == (25, 25)
    # I = 16: out's input has r_min 9 <= 16 (no b_min) but r_max 21 > 16 (b_max)
    assert rf.border_min_ is None and rf.border_max_.name == "out"


# -- rfa-toolbox's traps --------------------------------------------------------------------------


def test_dilated_convolutions_are_15_not_7():
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, dilation=1, padding=1),
        nn.Conv2d(2, 2, 3, dilation=2, padding=2),
        nn.Conv2d(2, 2, 3, dilation=4, padding=4),
    )
    rf = receptive_field(model, 32)
    assert [f.r_max for f in rf.fields_] == [3, 7, 15]
    assert empirical_extent(model, "2", 40, in_channels=1) == (15, 15)


class FunctionalPools(nn.Module):
    def __init__(self, first_pool=F.max_pool2d):
        super().__init__()
        self.first_pool = first_pool
        self.c1 = nn.Conv2d(1, 2, 3, padding=1)
        self.c2 = nn.Conv2d(2, 2, 3, padding=1)
        self.c3 = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        x = self.first_pool(self.c1(x), 2)
        x = F.avg_pool2d(self.c2(x), kernel_size=3, stride=2, padding=1)
        return self.c3(x)


@pytest.mark.parametrize("tracer", ["fx", "hooks"])
def test_functional_pooling(tracer):
    rf = receptive_field(FunctionalPools(), 32, tracer=tracer)
    # c1 3; max_pool 2/2 -> 4 (jump 2); c2 +4 -> 8; avg_pool 3/2 +4 -> 12 (jump 4); c3 +8 -> 20
    assert [f.r_max for f in rf.fields_] == [3, 8, 20]
    pools = [f for f in rf.operations_ if "pool" in f.type]
    assert [(f.type, f.r_max) for f in pools] == [("max_pool2d", 4), ("avg_pool2d", 12)]
    # max pooling passes gradient to one input only: check its average-pooling twin
    twin = FunctionalPools(first_pool=F.avg_pool2d)
    assert [f.r_max for f in receptive_field(twin, 32, tracer=tracer).fields_] == [3, 8, 20]
    assert empirical_extent(twin, "c3", 64, in_channels=1) == (20, 20)


class Decoder(nn.Module):
    def __init__(self, mode):
        super().__init__()
        self.mode = mode
        self.down = nn.Conv2d(1, 2, 3, stride=2, padding=1)
        self.mid = nn.Conv2d(2, 2, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(2, 2, 3, stride=2, padding=1, output_padding=1)
        self.resize = nn.Upsample(scale_factor=2, mode="nearest")
        self.out = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        x = self.up(self.mid(self.down(x)))
        x = self.resize(x) if self.mode == "module" else F.interpolate(x, scale_factor=2.0)
        return self.out(x)


@pytest.mark.parametrize("mode", ["module", "functional"])
def test_conv_transpose_and_upsampling(mode):
    model = Decoder(mode)
    rf = receptive_field(model, 32)
    # down 3 (jump 2); mid +2*2 -> 7 (jump 4); transposed 3/2: odd outputs see 2 inputs, even
    # ones 1, so r_max +4 -> 11 (jump 2); nearest x2: 11 (jump 1); out +2 -> 13
    assert [rf[n].r_max for n in ("down", "mid", "up", "out")] == [3, 7, 11, 13]
    assert empirical_extent(model, "up", 64, in_channels=1) == (11, 11)
    # After a transposed convolution the largest windows alternate with smaller ones, so the
    # chain rule is an upper bound: out's neighbours pair an 11- with a 7-pixel window.
    assert empirical_extent(model, "out", 64, in_channels=1) == (11, 11)


def test_bilinear_upsampling_reaches_one_more_input():
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, stride=2, padding=1), nn.Upsample(scale_factor=2, mode="bilinear"),
        nn.Conv2d(2, 2, 3, padding=1),
    )  # fmt: skip
    rf = receptive_field(model, 32)
    # 3 (jump 2); bilinear mixes 2 neighbours: +2 -> 5 (jump 1); conv +2 -> 7
    assert rf["2"].r_max == 7
    assert empirical_extent(model, "2", 48, in_channels=1) == (7, 7)


def vgg16_fixed_head():
    """torchvision's VGG16 shape without adaptive pooling: only 224 px inputs fit its head."""
    layers, channels = [], 3
    for item in VGG_CONFIGS["vgg16"]:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(inplace=True)]
            channels = 4
    return nn.Sequential(
        nn.Sequential(*layers), nn.Flatten(), nn.Linear(4 * 7 * 7, 8), nn.ReLU(), nn.Linear(8, 10)
    )


def test_fixed_size_head_traced_at_its_own_input_size():
    model = vgg16_fixed_head()
    with pytest.raises(TraceError, match="trace_size"):
        receptive_field(model, 32)
    rf = receptive_field(model, 32, trace_size=224)
    assert rf["0.28"].r_max == 196 and rf["0.30"].r_max == 212  # conv5_3, pool5
    assert rf.border_min_.index + 1 == 8
    assert rf["2"].r_max == math.inf  # the flattened head sees everything


class DropPath(nn.Module):
    """timm's stochastic depth: Python control flow on ``self.training`` and a random mask."""

    def __init__(self, p=0.5):
        super().__init__()
        self.p = p

    def forward(self, x):
        if self.p == 0.0 or not self.training:
            return x
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - self.p)
        return x * mask / (1 - self.p)


class ResidualDropPath(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 2, 3, padding=1)
        self.conv = nn.Conv2d(2, 2, 5, padding=2)
        self.drop_path = DropPath()
        self.head = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.drop_path(self.conv(x))
        return self.head(x)


def test_drop_path_in_a_residual_branch_and_modes_restored():
    model = ResidualDropPath().train()
    rf = receptive_field(model, 32)
    assert (rf["head"].r_min, rf["head"].r_max) == (5, 9)
    assert model.training and model.drop_path.training


# -- tracers --------------------------------------------------------------------------------------


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 2, 3, padding=1)
        self.b = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        y = self.a(x)
        if y.sum() > -1e9:  # fx cannot trace a branch on values
            y = y + F.max_pool2d(y, 3, stride=1, padding=1)
        return self.b(y)


def test_hook_fallback_when_fx_fails():
    rf = receptive_field(DataDependent(), 32)
    assert rf.tracer_ == "hooks"
    assert any("torch.fx" in note for note in rf.notes_)
    # a 3; merge of a (3) and a 3x3 max pool of it (5); b adds 2
    assert (rf["b"].r_min, rf["b"].r_max) == (5, 7)
    with pytest.raises(TraceError, match=r"torch\.fx"):
        receptive_field(DataDependent(), 32, tracer="fx")


@pytest.mark.parametrize(
    ("name", "options"),
    [("vgg11", {}), ("resnet18", {}), ("mpnet18", {}), ("resnet18_cifar", {"attention": "cbam"}),
     ("conv_autoencoder", {})],
)  # fmt: skip
def test_fx_and_hook_tracers_agree(name, options):
    model = create_model(name, width=1 / 16, **options)
    fx_rf = receptive_field(model, 32, tracer="fx")
    hook_rf = receptive_field(model, 32, tracer="hooks")
    assert (fx_rf.tracer_, hook_rf.tracer_) == ("fx", "hooks")
    assert fx_rf.fields_ == hook_rf.fields_
    assert fx_rf.border_min_ == hook_rf.border_min_ and fx_rf.border_max_ == hook_rf.border_max_


def test_attention_gates_ignored_or_included():
    plain = receptive_field(create_model("resnet18_cifar", width=1 / 16), 32)
    se = receptive_field(create_model("resnet18_cifar", width=1 / 16, attention="se"), 32)
    for field in plain.fields_:
        assert se[field.name].r_max_axes == field.r_max_axes
        assert se[field.name].r_min_axes == field.r_min_axes
    # leaving the attention layers out of the sequence, as 10.1 does, gives the plain borders
    plain18 = receptive_field(create_model("resnet18", width=1 / 16), 32)
    se18, cbam18 = (
        receptive_field(
            create_model("resnet18", width=1 / 16, attention=kind), 32, exclude=["*.attention.*"]
        )
        for kind in ("se", "cbam")
    )
    assert (se18.border_min_, se18.border_max_) == (plain18.border_min_, plain18.border_max_)
    # CBAM's spatial attention is a local 7x7 path: it widens r_max (b_max moves forward) but
    # not r_min, so b_min, the predictor of the tail (10.3), stays
    assert cbam18.border_min_ == plain18.border_min_
    assert cbam18.border_max_.index < plain18.border_max_.index
    included = receptive_field(
        create_model("resnet18_cifar", width=1 / 16, attention="se"), 32, gates="include"
    )
    assert included["layer1.0.conv2"].r_max == plain["layer1.0.conv2"].r_max
    assert included["layer1.1.conv1"].input_r_max == math.inf  # after the first gate
    assert included["layer1.1.conv1"].input_r_min == plain["layer1.1.conv1"].input_r_min


# -- axes, shapes and odd cases -------------------------------------------------------------------


def test_non_square_kernels_and_other_dimensions():
    model = nn.Sequential(nn.Conv2d(1, 2, (1, 5)), nn.Conv2d(2, 2, (3, 1), stride=(2, 1)),
                          nn.Conv2d(2, 2, 3))  # fmt: skip
    rf = receptive_field(model, (24, 40))
    assert rf["0"].r_max_axes == (1, 5)
    assert rf["2"].r_max_axes == (3 + 2 * 2, 5 + 2)
    assert rf["2"].r_max == 7
    one_d = receptive_field(nn.Sequential(nn.Conv1d(2, 2, 5, stride=2), nn.Conv1d(2, 2, 3)), 20)
    assert [f.r_max_axes for f in one_d.fields_] == [(5,), (9,)]
    three_d = receptive_field(
        nn.Sequential(nn.Conv3d(1, 2, 3), nn.MaxPool3d(2), nn.Conv3d(2, 2, 3)), 12
    )
    assert three_d["2"].r_max_axes == (8, 8, 8)


def test_border_needs_every_axis_to_exceed_the_input():
    model = nn.Sequential(*(nn.Conv2d(1, 1, 9, padding=4) for _ in range(3)))  # r 9, 17, 25
    assert receptive_field(model, (16, 40)).border_min_ is None  # input r 17 > 16 but < 40
    assert receptive_field(model, (16, 16)).border_min_.name == "2"


def test_uneven_adaptive_pooling_is_announced():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.AdaptiveAvgPool2d(4),
                          nn.Conv2d(2, 2, 3, padding=1))  # fmt: skip
    even = receptive_field(model, 16)
    assert even["2"].r_max == 3 + 3 + 2 * 4  # window 4, step 4
    assert not even.notes_
    uneven = receptive_field(model, 18)
    assert any("adaptive pooling" in note for note in uneven.notes_)


def test_shared_module_called_twice():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, padding=1)

        def forward(self, x):
            return self.conv(self.conv(x))

    field = receptive_field(Twice(), 16, in_channels=2)["conv"]
    assert field.calls == 2
    assert (field.input_r_min, field.r_max) == (1, 5)


def test_bad_arguments_are_clear_errors():
    model = nn.Sequential(nn.Conv2d(1, 2, 3))
    with pytest.raises(ReceptiveFieldError, match="gates"):
        receptive_field(model, 8, gates="maybe")
    with pytest.raises(ReceptiveFieldError, match="input_size"):
        receptive_field(model, 0)
    with pytest.raises(KeyError, match="Did you mean '0'"):
        receptive_field(model, 8)["01"]
    with pytest.raises(ValueError, match="in_channels"):
        receptive_field(nn.Sequential(nn.Linear(4, 2)), 8)
    assert ReceptiveField(8).input_size == 8  # the constructor stores, fit computes


# -- truncation and what-if -----------------------------------------------------------------------


def test_truncate_vgg11_at_its_border():
    torch.manual_seed(0)
    model = create_model("vgg11", width=1 / 16).eval()
    before = copy.deepcopy(model.state_dict())
    rf = receptive_field(model, 32)
    small = truncate(model, rf).eval()
    border = int(rf.border_min_.name.split(".")[1])
    x = torch.randn(2, 3, 32, 32)
    features = model.features[:border](x)  # everything before the border layer
    expected = small.head[2](features.mean(dim=(2, 3)))
    torch.testing.assert_close(small(x), expected)
    stump = sum(p.numel() for p in model.features[:border].parameters())
    head = small.head[2]
    assert sum(p.numel() for p in small.parameters()) == stump + head.weight.numel() + 10
    assert head.out_features == 10 and head.in_features == features.shape[1]
    for key, value in model.state_dict().items():  # the original is untouched
        torch.testing.assert_close(value, before[key])


def test_truncate_resnet_mid_block_and_errors():
    model = create_model("resnet18", width=1 / 16)
    small = truncate(model, "layer1.1.conv2", input_size=32)
    assert small(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert not any(n.startswith(("layer2", "fc")) for n, _ in small.named_modules())
    with pytest.raises(ReceptiveFieldError, match=r"Did you mean 'layer1\.1\.conv2'"):
        truncate(model, "layer1.1.conv3", input_size=32)
    no_border = receptive_field(create_model("resnet18_cifar", width=1 / 16), 32)
    with pytest.raises(ReceptiveFieldError, match="no border layer"):
        truncate(model, no_border)
    with pytest.raises(ReceptiveFieldError, match="input_size"):
        truncate(model, "layer1.1.conv2")


def test_strides_to_remove_clear_the_border():
    model = create_model("vgg11", width=1 / 16)
    rf = receptive_field(model, 32)
    removed = rf.strides_to_remove()
    assert removed and all(model.get_submodule(n).__class__ is nn.MaxPool2d for n in removed)
    positions = {int(n.split(".")[1]) for n in removed}
    config = [c for c, i in zip(VGG_CONFIGS["vgg11"], _positions(model), strict=True)
              if i not in positions]  # fmt: skip
    assert all(r_in <= 32 for r_in, _ in sequential_reference(config))
    options = rf.downsampling_options()
    border = int(rf.border_min_.name.split(".")[1])
    pools = [f"features.{i}" for i, m in enumerate(model.features[:border])
             if isinstance(m, nn.MaxPool2d)]  # fmt: skip
    assert [o.name for o in options] == pools
    assert all(o.action == "remove the layer" for o in options)
    # removing a pool never brings the border forward; removing the first moves it back
    after = [1000 if o.border_min is None else int(o.border_min.split(".")[1]) for o in options]
    assert all(a >= border for a in after) and after[0] > border


def _positions(model):
    """Index in ``model.features`` of each VGG configuration item (conv or "M")."""
    return [i for i, m in enumerate(model.features) if isinstance(m, (nn.Conv2d, nn.MaxPool2d))]


def test_records_and_frame():
    rf = receptive_field(create_model("vgg11", width=1 / 16), 32)
    rows = rf.to_records()
    assert [r["border"] for r in rows].count("b_min,b_max") == 1
    assert sum(r["unproductive"] for r in rows) == len(rf.unproductive_) == len(rows) - 5
    frame = rf.to_frame(all_operations=True)
    assert list(frame["type"]).count("MaxPool2d") == 5
    assert frame["r_max"].iloc[-1] == math.inf


@pytest.mark.slow
def test_torchvision_shaped_resnet18_empirical_435():
    model = create_model("resnet18", width=1 / 16)
    assert empirical_extent(model, "layer4.1.conv2", 512) == (435, 435)


def test_torchvision_models_when_importable():
    torchvision = pytest.importorskip("torchvision")
    assert receptive_field(torchvision.models.resnet18(), 224)["layer4.1.conv2"].r_max == 435
    vgg16 = receptive_field(torchvision.models.vgg16(), 32, trace_size=224)
    assert vgg16["features.28"].r_max == 196 and vgg16["features.30"].r_max == 212
    resnet50 = receptive_field(torchvision.models.resnet50(), 224)
    assert resnet50["layer4.2.conv3"].r_max == 427


def test_recorded_blocks_use_the_hook_tracer():
    from layerscope.models import BasicBlock

    rf = receptive_field(create_model("resnet18", width=1 / 16), 32, include=[BasicBlock])
    assert rf.tracer_ == "hooks" and "container" in rf.notes_[0]
    assert [f.name for f in rf.fields_][:2] == ["layer1.0", "layer1.1"]
    # a block's output: r_min through its skip, r_max through both convolutions
    assert (rf["layer1.0"].r_min, rf["layer1.0"].r_max) == (11, 27)
    assert rf["layer4.1"].r_max == 435


def test_trace_size_note_only_when_the_traced_size_differs():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(2), nn.Conv2d(2, 2, 2))
    for same in (32, (32, 32)):
        rf = receptive_field(model, 32, trace_size=same)
        assert rf.trace_size_ == (32, 32)
        assert not any("traced at" in note for note in rf.notes_)
    other = receptive_field(model, 32, trace_size=64)
    assert other.trace_size_ == (64, 64)
    assert "traced at (64, 64): adaptive pooling" in " ".join(other.notes_)
    given = receptive_field(model, 32, example_input=torch.zeros(1, 1, 40, 40))
    assert given.trace_size_ == (40, 40) and any("traced at (40, 40)" in n for n in given.notes_)
