"""``layerscope rf``: table, JSON, model options and errors."""

from __future__ import annotations

import json

import pytest

from layerscope.cli import main
from layerscope.commands.rf import parse_option


def test_table_marks_the_border(capsys):
    assert main(["rf", "vgg11", "--input", "32", "--set", "width=1/16"]) == 0
    out = capsys.readouterr().out
    assert "b_min: layer 6 (features.18)" in out
    assert "b_max: layer 6 (features.18)" in out
    row = next(line for line in out.splitlines() if line.startswith("6 "))
    assert "features.18" in row and "b_min,b_max" in row and "*" in row
    assert "Truncating at features.18" in out


def test_json_output(capsys):
    assert main(["rf", "resnet18", "--set", "skip=false", "--set", "width=0.0625", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["border_min"] == {"name": "layer1.1.conv2", "index": 4, "layer": 5}
    assert payload["options"] == {"skip": False, "width": 0.0625}
    last_conv = [row for row in payload["layers"] if row["type"] == "Conv2d"][-1]
    assert last_conv["r_max"] == 435
    assert payload["layers"][-1]["r_max"] == "global"
    assert payload["advice"]["parameters_truncated"] < payload["advice"]["parameters"]


def test_all_operations_and_no_advice(capsys):
    assert main(["rf", "vgg16", "--set", "width=1/16", "--all", "--no-advice"]) == 0
    out = capsys.readouterr().out
    assert "MaxPool2d" in out and "212" in out
    assert "Truncating" not in out


def test_unknown_model_and_bad_option(capsys):
    assert main(["rf", "vgg17"]) == 2
    assert "Did you mean" in capsys.readouterr().err
    assert main(["rf", "vgg11", "--set", "widht=2"]) == 2
    assert "Did you mean 'width'" in capsys.readouterr().err
    assert main(["rf", "vgg11", "--set", "width"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "expected"),
    [("width=1/4", ("width", 0.25)), ("skip=False", ("skip", False)), ("skip=true", ("skip", True)),
     ("attention=se", ("attention", "se")), ("dilation=3", ("dilation", 3)),
     ("attention=None", ("attention", None)), ("hidden=(64, 32)", ("hidden", (64, 32)))],
)  # fmt: skip
def test_parse_option(text, expected):
    assert parse_option(text) == expected
