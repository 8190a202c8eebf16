"""A fix an error message suggests can be typed where the user is: the config syntax in the
too-wide-layer message is valid TOML that the config accepts."""

from __future__ import annotations

import re

import pytest
from torch import nn

from layerscope.errors import LayerTooWideError
from layerscope.lab import load_config
from layerscope.tracking.layers import check_widths


def test_the_too_wide_message_gives_config_lines_that_load(tmp_path):
    with pytest.raises(LayerTooWideError) as raised:
        check_widths([("classifier.0", nn.Linear(4, 9000))], max_features=8192)
    message = str(raised.value)
    assert "Tracker(..., max_features=9000)" in message  # the Python keyword
    snippets = re.findall(r"in a config: (tracker\.\w+ = (?:\[[^\]]*\]|[^;)\s]+))", message)
    assert len(snippets) == 2, message
    for snippet in snippets:
        path = tmp_path / "c.toml"
        path.write_text(f'model = "mlp"\n{snippet}\n')
        (cfg,) = load_config(path)
        key = snippet.partition(" = ")[0]
        option = getattr(cfg.tracker, key.split(".")[1])
        expected = ("classifier.0",) if key.endswith("exclude") else 9000
        assert option == expected, (snippet, option)


@pytest.mark.parametrize("key, value", [("max_features", 9000), ("max_samples", 500),
                                        ("sinks", ["jsonl"]), ("every_n_batches", 2)])  # fmt: skip
def test_tracker_options_errors_mention_are_config_keys(key, value):
    (cfg,) = load_config({"model": "mlp", "tracker": {key: value}})
    expected = tuple(value) if isinstance(value, list) else value
    assert getattr(cfg.tracker, key) == expected
