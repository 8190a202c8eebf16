"""Diverged runs: a NaN or infinite loss ends the run as "diverged" (folder, report, exit code),
and every JSON file the run folder holds is valid JSON."""

from __future__ import annotations

import json
import math

import pytest
from test_trainer import TINY

from layerscope.cli import main
from layerscope.errors import ConfigError
from layerscope.lab import load_config
from layerscope.lab.experiment import run_one
from layerscope.registry import MODELS
from layerscope.store import load
from layerscope.store.folder import read_status

exec(TINY)  # registers tiny_test_net


def _strict(path):
    """json.loads that rejects NaN / Infinity (not JSON) instead of accepting them."""

    def refuse(constant):
        raise ValueError(f"{path}: {constant} is not JSON")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def _config_file(tmp_path, **extra):
    lines = [
        'model = "tiny_test_net"', 'dataset = "digits"', "resolution = 8", "epochs = 3",
        "batch_size = 128", 'device = "cpu"', 'run_id = "r"', f'logs_dir = "{tmp_path / "logs"}"',
        "optimizer = {name = \"sgd\", lr = 1e30}", *extra,
    ]  # fmt: skip
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_lr_1e30_ends_diverged_with_a_non_zero_exit_and_a_report_that_says_so(tmp_path, capsys):
    path = _config_file(tmp_path)
    assert main(["run", str(path), "--no-progress"]) == 1
    captured = capsys.readouterr()
    folder = tmp_path / "logs" / "tiny_test_net" / "digits" / "8" / "r"
    assert "diverged" in captured.out and "1 of 1 run(s) diverged" in captured.err
    assert (
        "optimizer.lr (now 1e+30)" in captured.err and 'on_nonfinite = "continue"' in captured.err
    )
    done = _strict(folder / "done.json")
    assert done["status"] == "diverged" and done["epoch"] == 1 and done["epochs"] == 3
    assert done["metrics"]["train_loss"] is None  # NaN written as null, not as a bare NaN
    for json_file in folder.rglob("*.json"):
        _strict(json_file)
    status = read_status(folder)
    assert (status.state, status.epoch, status.epochs) == ("diverged", 1, 3)
    # Stopped at the first epoch: no checkpoint of non-finite weights, one epoch of records.
    assert not list((folder / "checkpoints").glob("epoch-*.pt"))
    assert sorted(set(load(folder).epoch)) == [0]
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert "status-diverged" in page and "diverged at epoch 1 of 3" in page
    # A rerun does not train again and still fails.
    assert main(["run", str(path), "--no-progress"]) == 1


def test_on_nonfinite_continue_trains_every_epoch_and_still_says_diverged(tmp_path):
    cfg = load_config({**_mapping(tmp_path), "on_nonfinite": "continue"})[0]
    result = run_one(cfg, progress=False)
    folder = result.run_dir
    assert result.status == "diverged" and result.epochs_trained == 3
    assert sorted(set(load(folder).epoch)) == [0, 1, 2]
    assert _strict(folder / "done.json")["epoch"] == 1
    assert (folder / "checkpoints" / "epoch-0002.pt").is_file()
    # NaN weights: every batch of the last epoch was rejected; the layer table says so.
    assert load(folder).query("statistic == 'saturation' and epoch == 2").empty
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert page.count("no statistics at epoch 3: every batch NaN/inf") == 2  # conv and head


def test_on_nonfinite_is_checked_and_does_not_change_the_run_id(tmp_path):
    with pytest.raises(ConfigError, match="on_nonfinite"):
        load_config({**_mapping(tmp_path), "on_nonfinite": "ignore"})
    plain = {k: v for k, v in _mapping(tmp_path).items() if k != "run_id"}
    first = load_config(plain)[0].run_id
    assert load_config({**plain, "on_nonfinite": "continue"})[0].run_id == first


def test_a_finite_run_is_finished_and_its_jsonl_store_is_valid_json(tmp_path):
    cfg = load_config({**_mapping(tmp_path), "optimizer": {"name": "sgd", "lr": 0.01},
                       "epochs": 1, "tracker": {"sinks": ["jsonl"]}})[0]  # fmt: skip
    result = run_one(cfg, progress=False)
    assert result.status == "finished" and read_status(result.run_dir).state == "finished"
    lines = (result.run_dir / "records.jsonl").read_text().splitlines()
    values = [json.loads(line, parse_constant=lambda c: 1 / 0)["value"] for line in lines]
    assert len(load(result.run_dir / "records.jsonl")) == len(values) > 0


def test_the_jsonl_sink_writes_infinities_as_valid_json_and_reads_them_back(tmp_path):
    from layerscope.store.lines import JSONLinesSink, read_jsonl
    from layerscope.store.records import Record

    sink = JSONLinesSink(tmp_path / "records.jsonl")
    rows = [Record("r", 0, "train", "a", 0, "log_determinant", v, 0.0)
            for v in (-math.inf, math.inf, math.nan, 1.5)]  # fmt: skip
    sink.write(rows)
    sink.close()
    text = (tmp_path / "records.jsonl").read_text()
    [json.loads(line, parse_constant=lambda c: 1 / 0) for line in text.splitlines()]
    values = read_jsonl(tmp_path / "records.jsonl").value.tolist()
    assert values[0] == -math.inf and values[1] == math.inf and math.isnan(values[2])
    assert values[3] == 1.5


def _mapping(tmp_path):
    return {"model": "tiny_test_net", "dataset": "digits", "resolution": 8, "epochs": 3,
            "batch_size": 128, "device": "cpu", "run_id": "r", "logs_dir": str(tmp_path / "logs"),
            "optimizer": {"name": "sgd", "lr": 1e30}}  # fmt: skip


class _Failing:
    """Builds tiny_test_net models whose forward fails from the n-th call on."""

    def __init__(self, after):
        self.after = after

    def __call__(self, **kwargs):
        from torch import nn

        model = MODELS.get("tiny_test_net")(**kwargs)
        calls = {"n": 0}

        def hook(module, args):
            calls["n"] += 1
            if calls["n"] > self.after:
                raise RuntimeError("simulated device failure")

        model.register_forward_pre_hook(hook)
        assert isinstance(model, nn.Module)
        return model


def test_a_failed_run_leaves_error_json_and_a_report_that_says_failed(tmp_path):
    MODELS.add("failing_test_net", _Failing(after=20))  # 15 batches an epoch: fails in epoch 2
    try:
        cfg = load_config({**_mapping(tmp_path), "model": "failing_test_net",
                           "optimizer": {"name": "sgd", "lr": 0.01}})[0]  # fmt: skip
        with pytest.raises(RuntimeError, match="simulated device failure"):
            run_one(cfg, progress=False)
    finally:
        MODELS.remove("failing_test_net")
    folder = tmp_path / "logs" / "failing_test_net" / "digits" / "8" / "r"
    error = _strict(folder / "error.json")
    assert error["epoch"] == 2 and "simulated device failure" in error["message"]
    assert str(read_status(folder)).startswith("failed at epoch 2 of 3: RuntimeError")
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert "status-failed" in page and "simulated device failure" in page
