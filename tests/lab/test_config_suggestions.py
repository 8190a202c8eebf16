"""A fix an error message suggests can be typed where the user is, and works when taken
literally: the config lines pasted into a config load and give the option, the keyword passed
in Python is accepted, the flag on the command line parses (layerscope.errors.fix)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from layerscope.cli import build_parser, main
from layerscope.errors import (
    ConfigError,
    DatasetNotFoundError,
    LatentsError,
    LayerTooWideError,
    OptionError,
    ProbeSettingsError,
    RunFolderError,
    toml_lines,
    user_context,
)
from layerscope.lab import load_config
from layerscope.lab.config_files import read_config_file
from layerscope.stats.covariance import StreamingCovariance
from layerscope.tracking import Tracker
from layerscope.tracking.layers import check_widths

BASE = 'model = "mlp"\nseed = 1\n\n[optimizer]\nname = "sgd"\n'  # a table already open


def config_blocks(message: str) -> list[str]:
    """The indented config lines under each "in the config..." / "at the top of the config..."."""
    blocks, current = [], None
    for line in message.splitlines():
        if re.search(r"(in|of) the config\b.*:$", line):
            current = []
            blocks.append(current)
        elif current is not None and line.startswith("    "):
            current.append(line)
        else:
            current = None
    return ["\n".join(b) for b in blocks if b]


def paste(tmp_path: Path, block: str, base: str = BASE) -> Path:
    """A config with ``block`` pasted where the message says (at the end, or at the top)."""
    path = tmp_path / "c.toml"
    top = bool(block.strip()) and not block.strip().startswith("[")
    path.write_text(f"{block}\n{base}" if top else f"{base}\n{block}\n")
    return path


def raised(exc, call, place="python"):
    with user_context(place), pytest.raises(exc) as info:
        call()
    return str(info.value)


# ------------------------------------------------------------------ the width limit
WIDE = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 9000))


def test_too_wide_in_a_config_gives_config_lines_that_fix_it(tmp_path):
    message = raised(LayerTooWideError, lambda: check_widths([("2", WIDE[2])], 8192), "config")
    assert "Tracker(" not in message
    exclude, limit = config_blocks(message)
    assert exclude.split() == ["[tracker]", "exclude", "=", '["2"]']
    for block in (exclude, limit):
        (cfg,) = load_config(paste(tmp_path, block))
        assert cfg.optimizer.name == "sgd"  # pasted after [optimizer]: still its own table
        Tracker(WIDE, options=cfg.tracker).close()  # the error is gone
    assert cfg.tracker.max_features == 9000


def test_too_wide_in_python_gives_the_keyword_that_fixes_it():
    message = raised(LayerTooWideError, lambda: Tracker(WIDE))
    assert "Tracker(..., max_features=9000)" in message and "[tracker]" not in message
    Tracker(WIDE, max_features=9000).close()
    Tracker(WIDE, exclude=["2"]).close()


def test_too_wide_from_a_configured_run_says_it_in_config_lines(tmp_path):
    from layerscope.lab.experiment import run_one

    base = ('model = "mlp"\nmodel_kwargs = {input_size = 8, hidden = {value = [9000]}}\n'
            f'resolution = 8\nepochs = 1\nbatch_size = 256\ndevice = "cpu"\n'
            f'logs_dir = "{tmp_path.as_posix()}/logs"\nmetrics = ["accuracy"]\n')  # fmt: skip
    (cfg,) = load_config(paste(tmp_path, "", base))
    with pytest.raises(LayerTooWideError) as info:
        run_one(cfg, progress=False)
    blocks = config_blocks(str(info.value))
    assert len(blocks) == 2 and "exclude = [" in blocks[0]
    (fixed,) = load_config(paste(tmp_path, blocks[0], base))
    assert run_one(fixed, progress=False).status == "finished"


def test_a_covariance_of_the_tracker_gives_the_same_fixes():
    def make():
        return StreamingCovariance(10, max_features=8, name="fc")

    assert "Tracker(..., max_features=10)" in raised(LayerTooWideError, make)
    blocks = config_blocks(raised(LayerTooWideError, make, "config"))
    assert [b.split()[-1] for b in blocks] == ['["fc"]', "10"]
    own = raised(LayerTooWideError, lambda: StreamingCovariance(10, max_features=8))
    assert "max_features=10" in own
    StreamingCovariance(10, max_features=10)


@pytest.mark.parametrize("key, value", [("max_features", 9000), ("max_samples", 500),
                                        ("sinks", ["jsonl"]), ("every_n_batches", 2),
                                        ("max_batches", 5), ("weights", False),
                                        ("downsample", 4), ("device", "cpu")])  # fmt: skip
def test_every_tracker_option_is_a_config_key(tmp_path, key, value):
    (cfg,) = load_config(paste(tmp_path, toml_lines(f"tracker.{key}", value).split(":\n", 1)[1]))
    expected = tuple(value) if isinstance(value, list) else value
    assert getattr(cfg.tracker, key) == expected


# ------------------------------------------------------------------ checkpoints
def test_weights_without_checkpoints_names_the_config_lines(tmp_path):
    from layerscope.lab.weighing import _choose_epochs

    message = raised(RunFolderError, lambda: _choose_epochs(tmp_path, None), "cli")
    (block,) = config_blocks(message)
    (cfg,) = load_config(paste(tmp_path, block))
    assert cfg.checkpoints.keep is None  # "all"


def test_rwc_from_records_names_the_config_lines(tmp_path):
    import pandas as pd

    from layerscope.weights.rwc import rwc_matrix

    message = raised(OptionError, lambda: rwc_matrix(pd.DataFrame(), formula="elementwise"))
    (block,) = config_blocks(message)
    assert load_config(paste(tmp_path, block))[0].checkpoints.keep is None


# ------------------------------------------------------------------ flags and keywords
def test_demo_epochs(capsys):
    from layerscope.demo import demo_config

    message = raised(OptionError, lambda: demo_config("r", epochs=0))
    assert "(epochs=3)" in message
    assert demo_config("r", epochs=3).epochs == 3
    assert "(--epochs 3)" in raised(OptionError, lambda: demo_config("r", epochs=0), "cli")
    assert build_parser().parse_args(["demo", "--epochs", "3"]).epochs == 3


def test_extend_run_epochs(tmp_path, capsys):
    from layerscope.lab.experiment import extend_run

    (cfg,) = load_config({"model": "mlp", "epochs": 2, "run_id": "r"})
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
    message = raised(OptionError, lambda: extend_run(tmp_path, 1))
    assert "give epochs=3 or more" in message
    assert extend_run(tmp_path, 3).epochs == 3
    assert main(["resume", str(tmp_path), "--epochs", "1"]) == 2
    assert "give --epochs 4 or more" in capsys.readouterr().err


def test_project_options(capsys):
    from layerscope.lab.projecting import project_runs
    from layerscope.projection.grids import resolve_deltas

    assert "alpha must be" in raised(OptionError, lambda: project_runs(["x"], alpha=2))
    assert main(["project", "x", "--alpha", "2"]) == 2
    assert "--alpha must be in (0, 1)" in capsys.readouterr().err
    message = raised(OptionError, lambda: resolve_deltas("7.5"))
    assert "deltas='7.3'" in message and "deltas=[0.9, 0.99]" in message
    assert resolve_deltas("7.3") and resolve_deltas([0.9, 0.99]) == (0.9, 0.99)
    message = raised(OptionError, lambda: resolve_deltas("7.5"), "cli")
    assert "--grid 7.3" in message and "--deltas 0.9 0.99" in message
    args = build_parser().parse_args(["project", "x", "--grid", "7.3", "--deltas", "0.9", "0.99"])
    assert args.grid == "7.3" and args.deltas == [0.9, 0.99]


def test_executor_fixes_in_each_syntax(tmp_path, capsys):
    from layerscope.lab.executors import ExecutorConfig

    def local():
        return ExecutorConfig.create({"name": "local", "jobs": 4})

    message = raised(ConfigError, local)
    spec = re.search(r"executor=(\{.*\})", message).group(1)
    assert ExecutorConfig.create(eval(spec)).jobs == 4
    (block,) = config_blocks(raised(ConfigError, local, "config"))
    path = paste(tmp_path, block)
    assert ExecutorConfig.create(read_config_file(path)["executor"]).name == "processes"
    flags = re.search(r"(--executor processes --jobs 4)", raised(ConfigError, local, "cli"))
    run = tmp_path / "run.toml"
    run.write_text('model = "mlp"\nmodel_kwargs = {input_size = 8}\nresolution = 8\n')
    assert main(["run", str(run), "--dry-run", *flags.group(1).split()]) == 0
    assert "executor processes" in capsys.readouterr().out
    (block,) = config_blocks(raised(ConfigError, lambda: ExecutorConfig.create({"jobs": 0}),
                                    "config"))  # fmt: skip
    assert ExecutorConfig.create(read_config_file(paste(tmp_path, block))["executor"]).jobs == 1
    address = raised(ConfigError, lambda: ExecutorConfig.create(
        {"name": "processes", "address": "tcp://h:1"}), "config")  # fmt: skip
    (block,) = config_blocks(address)
    assert read_config_file(paste(tmp_path, block))["executor"] == {
        "name": "dask", "address": "tcp://h:1"}  # fmt: skip


# ------------------------------------------------------------------ probes
def test_probe_preset_fixes(tmp_path):
    from layerscope.probes.results import ProbeSettings

    def bad():
        return ProbeSettings.preset("standardised")

    assert "ProbeSettings.preset('standardized')" in raised(ProbeSettingsError, bad)  # the closest
    (block,) = config_blocks(raised(ProbeSettingsError, bad, "config"))
    assert load_config(paste(tmp_path, block))[0].probe_preset == "standardized"
    assert "(--preset standardized)" in raised(ProbeSettingsError, bad, "cli")
    assert build_parser().parse_args(["probe", "x", "--preset", "standardized"]).preset


def test_probe_layers_and_damaged_latents():
    from layerscope.probes.manifest import match_layers

    def none():
        return match_layers(["features.0"], ["feature.*"])

    assert "layers=['features.*']" in raised(LatentsError, none)
    assert match_layers(["features.0"], ["features.*"]) == ["features.0"]
    message = raised(LatentsError, none, "cli")
    assert "--layers feature.*" in message and "--layers 'features.*'" in message
    assert build_parser().parse_args(["probe", "x", "--layers", "features.*"]).layers


def test_shared_module_latents_fix_in_a_config(tmp_path):
    from layerscope.probes.latents import extract_latents

    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared, nn.Linear(4, 3))
    data = {"train": [(torch.randn(4), 0) for _ in range(4)]}
    python = raised(LatentsError, lambda: extract_latents(model, data, tmp_path / "l",
                                                          progress=False))  # fmt: skip
    assert "exclude=['0']" in python
    extract_latents(model, data, tmp_path / "l2", exclude=["0"], progress=False)
    config = raised(LatentsError, lambda: extract_latents(model, data, tmp_path / "l3",
                                                          progress=False), "config")  # fmt: skip
    (block,) = config_blocks(config)
    assert load_config(paste(tmp_path, block))[0].tracker.exclude == ("0",)


def test_the_unconverged_probe_warning_names_flags_on_the_command_line():
    from types import SimpleNamespace

    from layerscope.probes.training import _warn_unconverged

    results = [SimpleNamespace(converged=False, position=None, stop_reason="max_iter", layer="a")]
    with user_context("cli"), pytest.warns(RuntimeWarning) as caught:
        _warn_unconverged(results, "lbfgs")
    text = str(caught[0].message)
    assert "--max-iter" in text and "-C 0.1" in text
    args = build_parser().parse_args(["probe", "x", "--max-iter", "1000", "-C", "0.1"])
    assert args.max_iter == 1000 and args.C == 0.1
    with pytest.warns(RuntimeWarning, match="raise max_iter"):
        _warn_unconverged(results, "lbfgs")


# ------------------------------------------------------------------ data folders
def test_a_missing_image_folder_gives_dataset_kwargs_lines(tmp_path):
    from layerscope.datasets import load_dataset

    def missing():
        return load_dataset("folder", root=str(tmp_path / "nope"), resolution=8)

    assert "root='FOLDER'" in raised(DatasetNotFoundError, missing)
    (block,) = config_blocks(raised(DatasetNotFoundError, missing, "config"))
    (cfg,) = load_config(paste(tmp_path, block))

    assert cfg.dataset_kwargs == {"root": "FOLDER"}
