"""Grids on real executors: a run failing by construction, a worker killed in the middle of a
run, results equal to sequential runs of the same configs (threads pinned to 1).

The grid has 4 tiny runs (``role`` in grid_models): ok, fail, kill, ok. Expected: 3 finished,
the failure reported with its type and first line (status.json, summary table, exit code 1),
the killed run resumed from its epoch-0 checkpoint with records equal to an uninterrupted run,
and no half-written file anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import grid_models  # noqa: F401  (registers grid_test_net here; workers import it themselves)
import numpy as np
import pytest

from layerscope import load
from layerscope.cli import main
from layerscope.errors import (
    ConfigError,
    ConfigKeyError,
    MissingDependencyError,
    UnknownNameError,
    user_context,
)
from layerscope.lab.config import load_config, run_dir
from layerscope.lab.executors import ExecutorConfig, _optional, make_executor
from layerscope.lab.grid import run_experiment
from layerscope.lab.jobs import read_status
from layerscope.lab.preflight import check_forward

ROLES = ["ok", "fail", "kill", "ok2"]


def grid(tmp_path: Path, logs: str, marker: Path) -> dict:
    return {
        "model": "grid_test_net", "dataset": "synthetic", "resolution": 8, "epochs": 2,
        "batch_size": 32, "seed": 1, "device": "cpu", "logs_dir": str(tmp_path / logs),
        "dataset_kwargs": {"train_size": 64, "test_size": 32, "num_classes": 4},
        "model_kwargs": {"role": ROLES, "marker": str(marker)},
        "metrics": ["accuracy"],
    }  # fmt: skip


def _frame(folder: Path):
    frame = load(folder)
    frame = frame[frame.statistic != "seconds"].drop(columns=["wall_time"])
    return frame.sort_values(["epoch", "phase", "layer", "statistic"]).reset_index(drop=True)


def check_grid(tmp_path: Path, logs: str, marker: Path, compare=("ok", "kill", "ok2")) -> None:
    """The 4-run grid's folders against sequential (local) runs of the same configs (those of
    the roles in ``compare``: each run costs seconds, mostly its report's figures)."""
    folders = [run_dir(cfg) for cfg in load_config(grid(tmp_path, logs, marker))]
    statuses = [read_status(folder) for folder in folders]
    assert [s["status"] for s in statuses] == ["finished", "failed", "finished", "finished"]
    failed = statuses[1]
    assert failed["error_type"] == "RuntimeError"
    assert failed["message"].startswith("this run fails by construction")
    assert not marker.exists()  # the killed run really was killed once
    for folder in folders:
        assert not list(folder.rglob("*.tmp")), "a half-written file was left"
    assert not (folders[1] / "done.json").exists()
    chosen = [i for i, role in enumerate(ROLES) if role in compare]
    configs = load_config(grid(tmp_path, "sequential", marker))
    reference = run_experiment([configs[i] for i in chosen], progress=False,
                               executor={"name": "local", "threads": 1})  # fmt: skip
    assert {r.status for r in reference} == {"finished"}
    for index, want in zip(chosen, reference, strict=True):
        folder = folders[index]
        assert (folder / "done.json").is_file()
        mine, theirs = _frame(folder), _frame(Path(want.run_dir))
        keys = ["epoch", "phase", "layer", "statistic"]
        assert mine[keys].equals(theirs[keys])
        np.testing.assert_allclose(mine.value.to_numpy(float), theirs.value.to_numpy(float),
                                   rtol=1e-12, atol=1e-12)  # fmt: skip


def test_processes_grid_through_the_command_line(tmp_path, capsys):
    marker = tmp_path / "kill-once"
    marker.touch()
    config = grid(tmp_path, "logs", marker)
    config["executor"] = {"name": "processes", "jobs": 2}  # the config key; flags add threads
    path = tmp_path / "grid.json"
    path.write_text(json.dumps(config))
    code = main(["run", str(path), "--threads", "1", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1
    assert "failed    " in out and "RuntimeError: this run fails by construction" in out
    assert out.strip().splitlines()[-1] == "3 finished, 1 failed, 0 skipped"
    check_grid(tmp_path, "logs", marker, compare=("kill",))
    # A rerun skips the finished runs and tries the failed one again.
    code = main(["run", str(path), "--executor", "local", "--no-progress"])
    assert code == 1
    assert capsys.readouterr().out.strip().splitlines()[-1] == "0 finished, 1 failed, 3 skipped"
    # Probes, one job per run: the failed run has no checkpoint, so its probe job fails alone.
    folders = [run_dir(cfg) for cfg in load_config(grid(tmp_path, "logs", marker))]
    code = main(["probe", str(folders[0]), str(folders[1]), "--executor", "processes",
                 "--jobs", "2", "--threads", "1", "--no-report", "--no-progress"])  # fmt: skip
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 1 and lines[-1] == "1 finished, 1 failed, 0 skipped"
    assert "RunFolderError" in lines[1] and "no usable checkpoint" in lines[1]
    probes = load(folders[0]).query("phase == 'probe'")
    assert {"probe_train_acc", "probe_test_acc"} <= set(probes.statistic)


@pytest.mark.slow
def test_dask_local_cluster_grid_with_a_failing_run_and_a_killed_worker(tmp_path):
    marker = tmp_path / "kill-once"
    marker.touch()
    configs = load_config(grid(tmp_path, "logs", marker))
    results = run_experiment(configs, progress=False,
                             executor={"name": "dask", "jobs": 2, "threads": 1})  # fmt: skip
    assert [r.status for r in results] == ["finished", "failed", "finished", "finished"]
    assert results[1].first_line == "this run fails by construction"
    check_grid(tmp_path, "logs", marker)


@pytest.mark.slow
def test_ray_local_grid_with_a_failing_run_and_a_killed_worker(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    marker = tmp_path / "kill-once"
    marker.touch()
    configs = load_config(grid(tmp_path, "logs", marker))
    results = run_experiment(configs, progress=False,
                             executor={"name": "ray", "jobs": 2, "threads": 1})  # fmt: skip
    assert [r.status for r in results] == ["finished", "failed", "finished", "finished"]
    assert results[1].first_line == "this run fails by construction"
    check_grid(tmp_path, "logs", marker)


def test_executor_settings_are_checked_with_the_fix_named():
    assert ExecutorConfig.create(None) == ExecutorConfig()
    assert ExecutorConfig.create({"name": "dask", "jobs": 2}, jobs=4, address=None).jobs == 4
    with pytest.raises(ConfigKeyError, match=r"Did you mean 'executor\.jobs'"):
        ExecutorConfig.create({"name": "dask", "job": 2})
    with user_context("cli"), pytest.raises(ConfigError, match="--executor processes --jobs 3"):
        ExecutorConfig.create("local", jobs=3)
    with user_context("cli"), pytest.raises(ConfigError, match="--executor dask --address tcp"):
        ExecutorConfig.create("processes", address="tcp://127.0.0.1:8786")  # (each syntax:
    # tests/lab/test_config_suggestions.py)
    with pytest.raises(UnknownNameError, match="Did you mean 'dask'"):
        make_executor("dusk")


def test_a_missing_engine_names_the_extra():
    with pytest.raises(MissingDependencyError, match=r"pip install 'layerscope\[ray\]'"):
        _optional("layerscope_engine_that_is_not_installed", "ray")


def test_dry_run_catches_vanishing_feature_maps(tmp_path, capsys):
    path = tmp_path / "vgg.toml"
    path.write_text('model = "vgg11"\nwidth = "1/4"\nresolution = [32, 4]\n'
                    f'logs_dir = "{tmp_path.as_posix()}/logs"\n')  # fmt: skip
    assert main(["run", str(path), "--dry-run"]) == 2
    error = capsys.readouterr().err
    assert "run 2 of 2" in error and "resolution=4" in error and "Output size is too small" in error
    with pytest.raises(ConfigError, match="raise `resolution`"):
        check_forward(load_config(path))
    assert not (tmp_path / "logs").exists()  # nothing started


def test_validation_names_the_fix_for_fixed_size_models_and_unbuildable_ones():
    base = {"model": "mlp", "dataset": "synthetic", "resolution": 8,
            "dataset_kwargs": {"train_size": 16, "test_size": 16}}  # fmt: skip
    with pytest.raises(ConfigError, match=r"model_kwargs = \{input_size = 8\}"):
        check_forward(load_config(base))
    check_forward(load_config({**base, "model_kwargs": {"input_size": 8}}))
    scalar = {**base, "model_kwargs": {"input_size": 8, "hidden": 3}}  # not a sequence
    with pytest.raises(ConfigError, match=r"run 1 of 1 .* cannot be built .*a list of lists"):
        check_forward(load_config(scalar))


@pytest.mark.slow
def test_dask_existing_scheduler_by_address(tmp_path, capsys):
    from distributed import LocalCluster

    config = grid(tmp_path, "logs", tmp_path / "no-marker")
    config["model_kwargs"]["role"] = "ok"
    path = tmp_path / "one.json"
    path.write_text(json.dumps(config))
    with LocalCluster(n_workers=1, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster:  # fmt: skip
        code = main(["run", str(path), "--executor", "dask", "--address",
                     cluster.scheduler_address, "--threads", "1", "--no-progress"])  # fmt: skip
    assert code == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "1 finished, 0 failed, 0 skipped"
    (folder,) = [run_dir(cfg) for cfg in load_config(config)]
    assert read_status(folder)["status"] == "finished" and (folder / "done.json").is_file()
