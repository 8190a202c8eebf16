"""checkpoints.keep: the newest N epoch checkpoints, or all of them."""

from __future__ import annotations

import pytest

from layerscope.errors import ConfigError
from layerscope.lab.checkpoint import all_checkpoints, save_checkpoint
from layerscope.lab.config import RunConfig, load_config


@pytest.mark.parametrize(("keep", "left"), [(2, [3, 4]), (1, [4]), (None, [0, 1, 2, 3, 4])])
def test_save_keeps_the_newest(tmp_path, keep, left):
    for epoch in range(5):
        save_checkpoint(tmp_path, epoch, {"model": {}}, keep=keep)
    assert [epoch for epoch, _ in all_checkpoints(tmp_path)] == left


def test_config_key():
    (default,) = load_config({"model": "vgg11"})
    (every,) = load_config({"model": "vgg11", "checkpoints": {"keep": "all"}})
    assert default.checkpoints.keep == 2 and every.checkpoints.keep is None
    assert every.run_id == default.run_id  # keeping files does not change what a run computes
    assert RunConfig.from_dict(every.to_dict()) == every
    with pytest.raises(ConfigError, match=r"checkpoints\.keep"):
        load_config({"model": "vgg11", "checkpoints": {"keep": 0}})
