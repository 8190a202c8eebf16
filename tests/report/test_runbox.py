"""The run box: which runs count as "beside" a run (their varying keys are highlighted), and the
status it shows."""

from __future__ import annotations

import json

from layerscope.report.runbox import sibling_configs, varying_keys
from layerscope.store.folder import RunStatus, read_status


def _run(folder, **config):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_runs_of_one_logs_dir_are_siblings(tmp_path):
    logs = tmp_path / "logs"
    base = {"model": "vgg11", "dataset": "digits", "resolution": 32}
    a = _run(logs / "vgg11" / "digits" / "32" / "a", **base, run_id="a", width=1.0)
    _run(logs / "vgg11" / "digits" / "16" / "b", **{**base, "resolution": 16}, run_id="b",
         width=0.5)  # fmt: skip
    _run(tmp_path / "elsewhere" / "c", model="mlp", run_id="c")  # outside logs: not counted
    siblings = sibling_configs(a)
    assert sorted(c["run_id"] for c in siblings) == ["a", "b"]
    assert varying_keys(siblings) == ["resolution", "width"]


def test_other_folders_look_only_beside_themselves(tmp_path):
    demo = tmp_path / "runs" / "demo"
    first = _run(demo / "20260101-000000", model="demo_cnn", run_id="x", seed=0)
    _run(demo / "20260101-000001", model="demo_cnn", run_id="y", seed=1)
    _run(tmp_path / "unrelated" / "z", model="mlp", run_id="z")
    assert sorted(c["run_id"] for c in sibling_configs(first)) == ["x", "y"]
    assert varying_keys(sibling_configs(first)) == ["seed"]


def test_status_of_a_failed_and_an_unfinished_run(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({"metadata": {"config": {"epochs": 5}}}))
    assert str(read_status(folder, epochs_recorded=2)) == "in progress (epoch 2 of 5)"
    (folder / "error.json").write_text(json.dumps({"epoch": 3, "message": "OSError: disk full"}))
    assert read_status(folder) == RunStatus("failed", 3, 5, "OSError: disk full")
    assert str(read_status(folder)) == "failed at epoch 3 of 5: OSError: disk full"
