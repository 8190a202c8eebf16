"""TrackerOptions: spelled once, checked in Python syntax, shared with configs and run.json."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from layerscope.errors import OptionError, OptionTypeError, UnknownNameError
from layerscope.tracking import Tracker, TrackerOptions


def test_keywords_and_an_options_object_are_the_same():
    model = nn.Linear(3, 2)
    a = Tracker(model, delta=0.9, exclude="x*", weights=False)
    b = Tracker(model, options=TrackerOptions(delta=0.9, exclude=("x*",), weights=False))
    assert a.options == b.options
    a.close(), b.close()
    c = Tracker(model, options=TrackerOptions(delta=0.9), weights=False)  # keywords override
    assert c.options.delta == 0.9 and c.options.weights is False
    c.close()


@pytest.mark.parametrize(
    ("values", "error", "match"),
    [
        ({"detla": 0.9}, OptionTypeError, "unknown Tracker option 'detla'. Did you mean 'delta'"),
        ({"delta": 2}, OptionError, r"Tracker option delta=2 must be in \(0, 1\]"),
        ({"every_n_batches": 0}, OptionError, "every_n_batches=0 must be >= 1"),
        ({"every_n_batches": 1.5}, OptionTypeError, "every_n_batches=1.5 should be int"),
        ({"precision": "double"}, OptionTypeError, "one of 'float64', 'mixed'"),
        ({"downsample": (4, 0)}, OptionError, "must be >= 1"),
        ({"statistics": ["saturaton"]}, UnknownNameError, "Did you mean 'saturation'"),
        ({"statistics": ["covariance"]}, OptionError, "not a scalar"),
        ({"sinks": ["parquet"]}, UnknownNameError, "unknown sink 'parquet'"),
        ({"weights": "yes"}, OptionTypeError, "weights='yes' should be bool"),
    ],
)
def test_bad_options_are_named_in_python_syntax(values, error, match):
    with pytest.raises(error, match=match):
        TrackerOptions.create(**values)


def test_run_json_records_every_option(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3))
    with Tracker(model, tmp_path, include=[nn.Conv2d], downsample=4) as tracker:
        model(torch.randn(2, 1, 6, 6))
    options = json.loads((tmp_path / "run.json").read_text())["options"]
    assert options == tracker.options.to_dict()
    assert options["include"] == ["Conv2d"] and options["downsample"] == 4
    assert set(options) == {f for f in TrackerOptions.__dataclass_fields__}
