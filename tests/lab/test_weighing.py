"""`layerscope weights RUN_DIR`: records over real epochs, rerun, report section, bad input."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from torch import nn

from layerscope import load
from layerscope.cli import main
from layerscope.errors import OptionError, RunFolderError, UnknownNameError
from layerscope.lab import load_config
from layerscope.lab.checkpoint import all_checkpoints, load_checkpoint
from layerscope.lab.experiment import run_one
from layerscope.lab.weighing import weights_run
from layerscope.registry import MODELS
from layerscope.weights import weight_spectra


class WeightNet(nn.Module):
    def __init__(self, num_classes=10, in_channels=1, width=1.0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 12, 3, padding=1, stride=2)
        self.hidden = nn.Linear(12, 16)
        self.head = nn.Linear(16, num_classes)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv(x))))
        return self.head(torch.relu(self.hidden(x.mean((2, 3)))))


if "weights_test_net" not in MODELS:
    MODELS.add("weights_test_net", WeightNet)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    torch.set_num_threads(1)
    (cfg,) = load_config({
        "model": "weights_test_net", "dataset": "digits", "resolution": 8, "epochs": 3,
        "batch_size": 128, "logs_dir": str(root / "logs"), "device": "cpu", "run_id": "w",
        "metrics": ["accuracy"], "checkpoints": {"keep": "all"},
    })  # fmt: skip
    return run_one(cfg, progress=False).run_dir


@pytest.fixture
def folder(trained, tmp_path):
    target = tmp_path / "w"
    shutil.copytree(trained, target)
    return target


@pytest.mark.slow
def test_records_files_and_report(folder):
    before = load(folder)
    tracker_rows = before[before.phase == "weights"]
    result = weights_run(folder, prune="hidden", graph="hidden", low_rank=True, progress=False)
    assert result.epochs == [0, 1, 2] == [e for e, _ in all_checkpoints(folder / "checkpoints")]
    df = load(folder)
    # the Tracker's weight records are still there, unchanged
    kept = df[(df.phase == "weights") & df.statistic.isin(tracker_rows.statistic.unique())]
    assert len(kept) == len(tracker_rows)
    # spectra per real epoch equal the metrics of that epoch's checkpoint
    model = WeightNet()
    model.load_state_dict(load_checkpoint(folder / "checkpoints" / "epoch-0001.pt").state["model"])
    expected = weight_spectra(model).set_index("layer")
    esd = df[(df.statistic == "esd_stable_rank") & (df.epoch == 1)].set_index("layer").value
    np.testing.assert_allclose(esd[expected.index], expected.stable_rank, rtol=1e-10)
    assert sorted(df[df.statistic == "rwc_cluster"].layer) == ["conv", "conv2", "head", "hidden"]
    pruning = df[df.statistic.str.startswith("pruning_accuracy[")]
    assert set(pruning.layer) == {"hidden"} and set(pruning.epoch) == {2}
    assert pruning.statistic.str.contains(r"\[random,4,").any()
    low = df[df.statistic == "low_rank_k"].set_index("layer").value
    assert sorted(low.index) == ["conv", "conv2", "head", "hidden"]
    graphs = sorted(p.name for p in (folder / "weights").glob("graph-hidden-*"))
    assert graphs == [f"graph-hidden-epoch-{e}.{x}" for e in range(3) for x in ("graphml", "json")]
    graph = json.loads((folder / "weights" / "graph-hidden-epoch-2.json").read_text())
    root = ET.parse(folder / "weights" / "graph-hidden-epoch-2.graphml").getroot()
    namespace = "{http://graphml.graphdrawing.org/xmlns}"
    assert len(root.findall(f".//{namespace}edge")) == len(graph["links"])
    page = (folder / "report.html").read_text()
    assert "Weight dynamics" in page and "weights_pruning" in page and "weights_esd_" in page
    # a rerun replaces its records, it does not add to them
    weights_run(folder, prune="hidden", low_rank=True, progress=False)
    again = load(folder)
    assert len(again[again.statistic.str.startswith("pruning_")]) == len(pruning)
    assert len(again[again.statistic == "esd_alpha"]) == len(df[df.statistic == "esd_alpha"])


def test_bad_input(folder, tmp_path):
    with pytest.raises(UnknownNameError, match="did you mean 'hidden'"):
        weights_run(folder, prune="hiden", progress=False)
    with pytest.raises(OptionError, match=r"\[checkpoints\]\n    keep = \"all\""):
        weights_run(folder, epochs=[7], progress=False)
    empty = tmp_path / "empty"
    shutil.copytree(folder, empty)
    shutil.rmtree(empty / "checkpoints")
    with pytest.raises(RunFolderError, match="no epoch checkpoints"):
        weights_run(empty, progress=False)


@pytest.mark.slow
def test_command_line(folder, capsys):
    assert main(["weights", str(folder), "--epochs", "1", "2", "--prune", "head",
                 "--no-progress", "--no-report"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "RWC clusters: k = " in out and "least hurting first" in out
    assert main(["weights", str(folder), "--prune", "nope", "--no-progress"]) == 2
    assert "did you mean" in capsys.readouterr().err
