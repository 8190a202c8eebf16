"""Border rules: "input" (10.2's wording on each layer's input) and "output" (figure 60's labels),
against receptive fields computed by hand from the ResNet layout and the dissertation's labels."""

from __future__ import annotations

import json

import pytest

from layerscope.architecture import ReceptiveFieldError, receptive_field
from layerscope.architecture.borders import check_border_rule
from layerscope.cli import main
from layerscope.models import create_model


def resnet_own_r_min(blocks_per_stage):
    """Eq. 9 by hand for a torchvision-shaped basic-block ResNet: the output r_min of every 3x3
    convolution, before the residual addition, in forward order (shortcuts left out).

    Every block input keeps the stem's r = 11 (7x7 stride-2 conv, then 3x3 stride-2 pooling)
    through the identity and 1x1 paths; the jump doubles at the first block of stages 2-4."""
    rows = [("conv1", 7)]
    jump = 4
    for stage, blocks in enumerate(blocks_per_stage, start=1):
        for block in range(blocks):
            stride = 2 if stage > 1 and block == 0 else 1
            r = 11 + 2 * jump  # conv1 of the block reads the block input (r_min 11)
            jump *= stride
            rows.append((f"layer{stage}.{block}.conv1", r))
            rows.append((f"layer{stage}.{block}.conv2", r + 2 * jump))
    return rows


def first_exceeding_to_the_end(rows, size):
    """1-based label of the first row from which on every row's r exceeds ``size``."""
    label = None
    for number in range(len(rows), 0, -1):
        if rows[number - 1][1] <= size:
            break
        label = number
    return label


@pytest.mark.parametrize(("name", "blocks", "label"), [
    ("resnet18", (2, 2, 2, 2), 11),
    ("resnet34", (3, 4, 6, 3), 17),
])  # fmt: skip
def test_output_rule_reproduces_figure_60(name, blocks, label):
    rows = resnet_own_r_min(blocks)
    assert first_exceeding_to_the_end(rows, 32) == label  # the reference agrees with the figure
    rf = receptive_field(create_model(name, width=0.0625), 32, border_rule="output")
    counted = [x.name for x in rf.counted_ if x.type == "Conv2d"]
    assert counted == [n for n, _ in rows]
    assert [rf[n].r_min for n in counted] == [r for _, r in rows]
    assert rf.border_number("min") == label
    assert rf.border_min_.name == rows[label - 1][0]


def test_input_rule_puts_resnet_b_min_at_the_last_convolution():
    rf = receptive_field(create_model("resnet18", width=0.0625), 32)
    assert rf.border_rule == "input" and rf.border_min_.name == "layer4.1.conv2"
    assert rf.border_number("min") == rf.border_min_.index + 1 == 20
    assert rf.counted_ == rf.layers_


def test_shortcut_layers_are_the_projection_shortcuts_only():
    rf = receptive_field(create_model("resnet50", width=0.0625), 32, border_rule="output")
    skipped = {x.name for x in rf.layers_} - {x.name for x in rf.counted_}
    expected = {f"layer{s}.0.downsample.0" for s in (1, 2, 3, 4)}
    assert skipped == expected  # main-path 1x1 convolutions (conv1, conv3) still count
    plain = receptive_field(create_model("vgg11", width=0.0625), 32, border_rule="output",
                            trace_size=224)  # fmt: skip
    assert plain.counted_ == plain.layers_


def test_sequential_networks_differ_by_one_layer():
    """Without skips the layer whose own r exceeds I sits just before the one whose input does
    (VGG11: figure 52 labels layer 6, the input rule)."""
    model = create_model("vgg11", width=0.0625)
    by_input = receptive_field(model, 32, trace_size=224)
    by_output = receptive_field(model, 32, trace_size=224, border_rule="output")
    assert by_input.border_number("min") == 6
    assert by_output.border_number("min") == 5
    assert by_output[by_output.border_min_.name].r_min > 32 >= by_output.fields_[3].r_min


def test_unknown_rule_names_the_choices_and_flag():
    with pytest.raises(ReceptiveFieldError, match=r"'input'.*'output'.*--border-rule"):
        receptive_field(create_model("vgg11", width=0.0625), 32, border_rule="outputs")
    with pytest.raises(ReceptiveFieldError, match="which must be"):
        receptive_field(create_model("vgg11", width=0.0625), 32, trace_size=224).border_number("x")
    assert check_border_rule("input") == "input"


def test_cli_border_rule(capsys):
    assert main(["rf", "resnet18", "--set", "width=0.0625", "--border-rule", "output",
                 "--no-advice"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "b_min: layer 11 (layer3.0.conv2)" in out
    shortcut = next(line for line in out.splitlines() if "layer2.0.downsample.0" in line)
    assert shortcut.startswith("- ")
    assert main(["rf", "resnet34", "--set", "width=0.0625", "--border-rule", "output",
                 "--json", "--no-advice"]) == 0  # fmt: skip
    payload = json.loads(capsys.readouterr().out)
    assert payload["border_rule"] == "output"
    assert payload["border_min"] == {"name": "layer3.0.conv2", "index": 17, "layer": 17}
