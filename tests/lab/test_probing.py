"""Probes on a trained run: records, cache, crash recovery, parallel workers, CLI, trainer, report."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits
from torch import nn

import layerscope.probes.training as probes_module
from layerscope import load
from layerscope.cli import main
from layerscope.datasets import load_dataset
from layerscope.lab import load_config, probe_run
from layerscope.lab.experiment import run_one
from layerscope.lab.runs import train_split_without_augmentation
from layerscope.probes import (
    LatentManifest,
    ProbeResult,
    ProbeResults,
    ProbeSettings,
    load_position_maps,
    manifest_path,
    train_probes,
)
from layerscope.registry import MODELS
from layerscope.report.figures import saturation_and_probes


class ProbeNet(nn.Module):
    def __init__(self, num_classes=10, in_channels=1, width=1.0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1, stride=2)
        self.head = nn.Linear(8, num_classes)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv(x))))
        return self.head(x.mean((2, 3)))


if "probe_test_net" not in MODELS:
    MODELS.add("probe_test_net", ProbeNet)


def config(tmp_path, **overrides):
    base = {"model": "probe_test_net", "dataset": "digits", "resolution": 8, "epochs": 1,
            "batch_size": 256, "seed": 1, "logs_dir": str(tmp_path / "logs"), "device": "cpu",
            "run_id": "p"}  # fmt: skip
    return load_config({**base, **overrides})[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished one-epoch run without probes, copied by the tests that use it."""
    tmp_path = tmp_path_factory.mktemp("run")
    torch.set_num_threads(1)
    return run_one(config(tmp_path), progress=False).run_dir


def copy_run(source, tmp_path):
    import shutil

    target = tmp_path / "run"
    shutil.copytree(source, target)
    return target


def test_probe_run_records_model_accuracy_and_report(trained, tmp_path):
    folder = copy_run(trained, tmp_path)
    found = probe_run(folder, progress=False)["avg4"]
    df = load(folder)
    probes = df[df.phase == "probe"]
    layers = json.loads((folder / "layers.json").read_text())
    by_name = {layer["name"]: layer["index"] for layer in layers}
    test_acc = probes[probes.statistic == "probe_test_acc"]
    assert sorted(test_acc.layer) == sorted(by_name)
    assert set(probes.epoch) == {0}  # the last epoch
    assert all(by_name[row.layer] == row.layer_index for row in test_acc.itertuples())
    # the model's own test accuracy, measured at extraction, equals the trainer's
    trainer_acc = df.query("statistic == 'test_accuracy' and epoch == 0").value.item()
    model_acc = probes.query("statistic == 'model_test_acc'").value.item()
    assert model_acc == pytest.approx(trainer_acc, abs=1e-9)
    # each probe's accuracy agrees with sklearn's lbfgs on the same stored features
    manifest = LatentManifest.read(manifest_path(folder / "latents", "p", "avg4"))
    y_train, y_test = manifest.labels("train"), manifest.labels("test")
    for layer in manifest.layers:
        scaler = StandardScaler().fit(manifest.features(layer.name, "train"))
        with threadpool_limits(1):  # sklearn's OpenMP threads crawl on a busy machine
            reference = LogisticRegression(tol=1e-7, max_iter=5000).fit(
                scaler.transform(manifest.features(layer.name, "train")), y_train
            )
        expected = reference.score(scaler.transform(manifest.features(layer.name, "test")), y_test)
        ours = test_acc[test_acc.layer == layer.name].value.item()
        assert abs(ours - expected) <= 3 / len(y_test), layer.name
    assert {r.layer for r in found.results} == set(by_name)
    page = (folder / "report.html").read_text()
    assert "saturation_and_probes" in page
    assert (folder / "figures/saturation_and_probes.png").is_file()


def test_rerun_reuses_latents_and_cache(trained, tmp_path, monkeypatch):
    folder = copy_run(trained, tmp_path)
    probe_run(folder, progress=False, report=False)
    manifest_file = manifest_path(folder / "latents", "p", "avg4")
    stamp = manifest_file.stat().st_mtime_ns
    before = load(folder)

    def refuse(task):
        raise AssertionError(f"{task.layer} was fitted again")

    monkeypatch.setattr(probes_module, "_fit_task", refuse)
    again = probe_run(folder, progress=False, report=False)["avg4"]
    assert all(r.cached for r in again.results)
    assert manifest_file.stat().st_mtime_ns == stamp  # not extracted again
    after = load(folder)
    assert len(after) == len(before)  # records replaced, not duplicated


def test_probing_some_layers_keeps_the_others_and_the_extraction(trained, tmp_path):
    folder = copy_run(trained, tmp_path)
    probe_run(folder, progress=False, report=False)
    stamp = manifest_path(folder / "latents", "p", "avg4").stat().st_mtime_ns
    before = load(folder).query("phase == 'probe'")
    probe_run(folder, layers=["conv2"], settings=ProbeSettings(C=0.01), progress=False,
              report=False)  # fmt: skip
    assert manifest_path(folder / "latents", "p", "avg4").stat().st_mtime_ns == stamp
    after = load(folder).query("phase == 'probe'")
    assert sorted(after.layer.dropna()) == sorted(before.layer.dropna())
    changed = after.query("layer == 'conv2' and statistic == 'probe_train_acc'").value.item()
    kept = after.query("layer == 'conv' and statistic == 'probe_train_acc'").value.item()
    assert kept == before.query("layer == 'conv' and statistic == 'probe_train_acc'").value.item()
    assert (
        changed != before.query("layer == 'conv2' and statistic == 'probe_train_acc'").value.item()
    )  # C = 0.01 regularises much more


def test_a_crash_loses_only_the_probe_in_progress(trained, tmp_path, monkeypatch):
    folder = copy_run(trained, tmp_path)
    fit = probes_module._fit_task
    calls = []

    def crash_on_second(task):
        calls.append(task.layer)
        if len(calls) == 2:
            raise KeyboardInterrupt  # a kill while the second probe trains
        return fit(task)

    monkeypatch.setattr(probes_module, "_fit_task", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        probe_run(folder, progress=False, report=False)
    assert len(list((folder / "probes/cache").glob("*.json"))) == 1
    assert load(folder).query("phase == 'probe'").empty  # no partial records

    refitted = []

    def count(task):
        refitted.append(task.layer)
        return fit(task)

    monkeypatch.setattr(probes_module, "_fit_task", count)
    results = probe_run(folder, progress=False, report=False)["avg4"]
    assert len(refitted) == len(results.results) - 1 and calls[0] not in refitted


@pytest.mark.slow  # two spawned workers import torch: several seconds
def test_parallel_workers_match_serial(trained, tmp_path):
    folder = copy_run(trained, tmp_path)
    serial = probe_run(folder, progress=False, report=False)["avg4"]
    manifest = LatentManifest.read(manifest_path(folder / "latents", "p", "avg4"))
    parallel = train_probes(manifest, n_jobs=2, progress=False)
    assert [(r.layer, r.train_acc, r.test_acc) for r in parallel.results] == [
        (r.layer, r.train_acc, r.test_acc) for r in serial.results
    ]
    assert not any(r.cached for r in parallel.results)


def test_position_probes_heatmap(trained, tmp_path):
    folder = copy_run(trained, tmp_path)
    found = probe_run(folder, reductions=["pos2"], layers=["conv*"], progress=False)["pos2"]
    maps = load_position_maps(folder / "probes/positions-pos2.json")
    assert list(maps) == ["conv", "conv2"]
    assert maps["conv"].test_acc.shape == (2, 2) and maps["conv"].rows == (2, 6)
    assert maps["conv2"].rows == (1, 3)  # the 4 x 4 map of the strided conv
    per_position = {r.position: r.test_acc for r in found.results if r.layer == "conv"}
    assert maps["conv"].test_acc[1, 0] == per_position[(6, 2)]
    assert maps["conv"].relative[1, 0] == pytest.approx(
        per_position[(6, 2)] / found.model_accuracy["test"]
    )
    assert load(folder).query("phase.str.startswith('probe')", engine="python").empty
    assert "positions_pos2_probes" in (folder / "report.html").read_text()


def test_training_split_is_extracted_without_augmentation():
    data = load_dataset("digits", resolution=8, crop_padding=2)
    assert data.train.pipeline.is_random
    plain = train_split_without_augmentation(data)
    assert not plain.pipeline.is_random and len(plain) == len(data.train)
    data.set_epoch(0)
    first = data.train[3][0]
    data.set_epoch(7)
    assert not torch.equal(first, data.train[3][0])  # the training split does augment
    np.testing.assert_array_equal(plain[3][0], data.test.pipeline(data.train.source.image(3)))


def test_trainer_runs_probes_and_finishes_them_on_rerun(tmp_path):
    cfg = config(tmp_path, probes=True)
    result = run_one(cfg, progress=False)
    df = load(result.run_dir)
    assert len(df.query("statistic == 'probe_test_acc'")) == 3
    # a crash after training: probe records and half the cache are gone
    cache = sorted((result.run_dir / "probes/cache").glob("*.json"))
    cache[0].unlink()
    with sqlite3.connect(result.run_dir / "records.sqlite") as connection:
        connection.execute("DELETE FROM records WHERE phase = 'probe'")
    again = run_one(cfg, progress=False)
    assert again.status == "skipped"
    restored = load(result.run_dir).query("statistic == 'probe_test_acc'")
    pd.testing.assert_frame_equal(
        restored[["layer", "value"]].reset_index(drop=True),
        df.query("statistic == 'probe_test_acc'")[["layer", "value"]].reset_index(drop=True),
    )


def test_cli_probe(trained, tmp_path, capsys):
    folder = copy_run(trained, tmp_path)
    code = main(["probe", str(folder), "--no-progress", "--threads", "1", "--no-report"])
    out = capsys.readouterr().out
    assert code == 0
    assert "conv2" in out and "model accuracy" in out and "test %" in out
    assert main(["probe", str(tmp_path / "missing")]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert main(["probe", str(folder), "--solver", "sag"]) == 2
    assert "Did you mean 'saga'" in capsys.readouterr().err


def test_figure_puts_probes_beside_saturation():
    rows = []
    for i, name in enumerate(["a", "b", "c"]):
        rows.append(("r", 4, "train", name, i, "saturation", 0.2 * (i + 1), 0.0))
        rows.append(("r", 4, "probe", name, i, "probe_test_acc", 0.5 + 0.1 * i, 0.0))
        rows.append(("r", 4, "probe", name, i, "probe_train_acc", 0.6 + 0.1 * i, 0.0))
    rows.append(("r", 4, "probe", None, None, "model_test_acc", 0.75, 0.0))
    df = pd.DataFrame(rows, columns=["run", "epoch", "phase", "layer", "layer_index",
                                     "statistic", "value", "wall_time"])  # fmt: skip
    figure = saturation_and_probes(df)
    left, right = figure.axes
    assert [t.get_text() for t in left.get_xticklabels()] == ["a", "b", "c"]
    assert right.get_ylabel() == "probe accuracy"
    lines = {line.get_label(): line for line in right.get_lines()}
    np.testing.assert_allclose(lines["probe test accuracy"].get_ydata(), [0.5, 0.6, 0.7])
    assert lines["model test accuracy (0.750)"].get_ydata()[0] == 0.75
    np.testing.assert_allclose(left.get_lines()[0].get_ydata(), [0.2, 0.4, 0.6])


def test_results_and_settings_are_checked_early():
    with pytest.raises(ValueError, match="C must be"):
        ProbeSettings(C=0).check()
    result = ProbeResult("fc", 0, 4, 0.9, 0.8, 12, True, "gradient", 0.1)
    records = ProbeResults("run", "gap", ProbeSettings(), (result,), {"test": 0.5}).records(2)
    assert {r.phase for r in records} == {"probe-gap"}
    assert [r.statistic for r in records] == ["probe_train_acc", "probe_test_acc",
                                              "model_test_acc", "probe_standardized",
                                              "probe_dissertation_preset"]  # fmt: skip


def test_unconverged_warning_names_each_stop_reason(trained, tmp_path, monkeypatch):
    folder = copy_run(trained, tmp_path)
    reasons = {"conv": "line search", "conv2": "max_iter", "head": "gradient"}

    def fake_fit(task):
        return {"train_acc": 0.5, "test_acc": 0.5, "n_iter": 3, "seconds": 0.0,
                "converged": reasons[task.layer] == "gradient",
                "stop_reason": reasons[task.layer]}  # fmt: skip

    monkeypatch.setattr(probes_module, "_fit_task", fake_fit)
    with pytest.warns(RuntimeWarning, match="before converging") as caught:
        probe_run(folder, progress=False, report=False)
    message = str(caught[0].message)
    assert "at line search: conv;" in message and "at max_iter: conv2)" in message
    assert "head" not in message
