"""Projecting finished run folders: records, rerun, report section, several runs, the CLI."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from layerscope import load
from layerscope.cli import main
from layerscope.lab import load_config, load_run_model, project_run, project_runs
from layerscope.lab.experiment import run_one
from layerscope.lab.runs import train_split_without_augmentation
from layerscope.projection import read_sweep
from layerscope.registry import MODELS


class ProjectNet(nn.Module):
    def __init__(self, num_classes=10, in_channels=1, width=1.0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 8, 3, padding=1)
        self.norm = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 12, 3, padding=1, stride=2)
        self.head = nn.Linear(12, num_classes)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.norm(self.conv(x)))))
        return self.head(x.mean((2, 3)))


if "project_test_net" not in MODELS:
    MODELS.add("project_test_net", ProjectNet)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two finished two-epoch runs (seeds 0 and 1), copied by the tests that use them."""
    root = tmp_path_factory.mktemp("runs")
    torch.set_num_threads(1)
    configs = load_config({
        "model": "project_test_net", "dataset": "digits", "resolution": 8, "epochs": 2,
        "batch_size": 128, "seed": [0, 1], "logs_dir": str(root / "logs"), "device": "cpu",
        "run_id": "s{seed}", "metrics": ["accuracy"],
    })  # fmt: skip
    return [run_one(cfg, progress=False).run_dir for cfg in configs]


def copy_runs(sources, tmp_path):
    targets = []
    for source in sources:
        target = tmp_path / source.name
        shutil.copytree(source, target)
        targets.append(target)
    return targets


def test_project_run_records_replaces_and_reports(trained, tmp_path):
    folder = copy_runs(trained[:1], tmp_path)[0]
    before = load(folder)
    assert "Projected networks" not in (folder / "report.html").read_text()
    table = project_run(folder, deltas=[0.8, 0.95, 0.99], seeds=range(2), progress=False)
    df = load(folder)
    rows = df[df.phase == "projection"]
    assert set(rows.epoch) == {1}  # the checkpoint's epoch
    layers = {info["name"]: info["index"] for info in json.loads((folder / "layers.json")
                                                                    .read_text())}  # fmt: skip
    layer_rows = rows[rows.layer.notna()]
    assert set(layer_rows.layer) == set(layers) == {"conv", "conv2", "head"}
    assert all(layers[r.layer] == r.layer_index for r in layer_rows.itertuples())
    # the unprojected accuracy is the trainer's test accuracy of the last epoch
    trainer = df.query("statistic == 'test_accuracy' and epoch == 1").value.item()
    assert table.unprojected_accuracy.iloc[0] == pytest.approx(trainer, abs=1e-9)
    stored = read_sweep(df)
    assert len(stored) == len(table) == 3 * 3
    assert stored.relative_accuracy.tolist() == pytest.approx(table.relative_accuracy.tolist())
    project_run(folder, deltas=[0.8, 0.95, 0.99], seeds=range(2), progress=False, report=False)
    again = load(folder)
    assert (again.phase == "projection").sum() == len(rows)  # replaced, not added
    assert len(again[again.phase != "projection"]) == len(before)
    page = (folder / "report.html").read_text()
    assert "Projected networks" in page and "projection_relative" in page
    assert "(projection)" not in page  # model-level sweep values stay out of the epoch table
    assert (folder / "figures" / "projection_dimensions.png").is_file()


def test_fitting_sees_the_training_split_without_augmentation_in_eval_mode(trained):
    model, data, cfg = load_run_model(trained[0], device="cpu")
    norm = dict(model.norm.named_buffers())
    before = {k: v.clone() for k, v in norm.items()}
    table = project_run(trained[0], deltas=[0.9], baselines=["pca"], progress=False,
                        report=False)  # fmt: skip
    # the same fit by hand: k from the covariance of conv's outputs on the plain train split
    fit = DataLoader(train_split_without_augmentation(data), batch_size=cfg.batch_size)
    with torch.no_grad():
        outputs = torch.cat([model.eval().conv(x) for x, _ in fit]).double()
    samples = outputs.permute(0, 2, 3, 1).reshape(-1, 8)
    eigenvalues = torch.linalg.eigvalsh(torch.cov(samples.T, correction=0)).flip(0)
    share = torch.cumsum(eigenvalues, 0) / eigenvalues.sum()
    assert table["k[conv]"].item() == int((share < 0.9).sum()) + 1
    assert all(torch.equal(before[k], v) for k, v in norm.items())


def test_several_runs_give_the_relevant_eigenspace_and_the_cli_prints_it(trained, tmp_path,
                                                                         capsys):  # fmt: skip
    folders = copy_runs(trained, tmp_path)
    tables, found = project_runs(folders, deltas=[0.5, 0.99], baselines=["pca"], progress=False,
                                 report=False)  # fmt: skip
    assert set(tables) == {str(f) for f in folders}
    assert found.table.delta.tolist() == [0.99, 0.5] and set(found.table.n) == {2}
    differences = [t.set_index("delta").loc[0.5, "unprojected_accuracy"]
                   - t.set_index("delta").loc[0.5, "accuracy"] for t in tables.values()]  # fmt: skip
    assert found.table.mean_difference.iloc[1] == pytest.approx(sum(differences) / 2)
    csv = tmp_path / "relevance.csv"
    code = main(["project", *map(str, folders), "--deltas", "0.5", "0.99", "--seeds", "2",
                 "--no-progress", "--no-report", "--table", str(csv)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "rel. pca" in out and "rel. random" in out
    assert "relevant eigenspace over 2 runs" in out and "selected delta" in out
    assert csv.is_file() and "mean_difference" in csv.read_text()


def test_cli_errors_are_one_line(trained, tmp_path, capsys):
    assert main(["project", str(tmp_path), "--no-progress"]) == 2
    assert "is not a run folder" in capsys.readouterr().err
    folder = copy_runs(trained[:1], tmp_path)[0]
    assert main(["project", str(folder), "--deltas", "1.5", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("layerscope project: error:") and "(0, 1]" in err
    assert "\n" not in err
    assert main(["project", str(folder), "--table", "t.csv"]) == 2
    assert "two or more run folders" in capsys.readouterr().err
