"""The README's main job: the demo trains, tracks and writes a run folder that every run-folder
command takes."""

from __future__ import annotations

import json

import pytest

from layerscope import load
from layerscope.cli import main
from layerscope.lab.runs import read_run_config, run_checkpoint


def test_demo_command_writes_a_run_folder_and_prints_a_summary(tmp_path, capsys):
    assert main(["demo", "--epochs", "1", "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert f"run folder: {run_dir}" in out
    assert "saturation (train)" in out and "Conv2d" in out
    assert (run_dir / "report.html").is_file()
    df = load(run_dir)
    assert set(df.phase) == {"train", "eval", "weights", "epoch", "run"}
    accuracy = df.query("statistic == 'test_accuracy'").value.item()
    assert 0.0 <= accuracy <= 1.0
    # 4 conv + 2 linear layers, train and eval
    assert len(df.query("statistic == 'saturation'")) == 12
    # A real run folder: its config rebuilds the model and the checkpoint loads into it.
    cfg = read_run_config(run_dir)
    assert (cfg.model, cfg.dataset, cfg.epochs, cfg.optimizer.lr) == ("demo_cnn", "digits", 1, 2e-3)
    assert run_checkpoint(run_dir).epoch == 0
    assert json.loads((run_dir / "done.json").read_text())["epochs"] == 1
    # Receptive fields for the report, against the closed form r_l = r_(l-1) + (k - 1) * jump
    # (3x3 convolutions, 2x2 pools): 3, 5, (pool 6) 10, (pool 12) 20, then global.
    architecture = json.loads((run_dir / "architecture.json").read_text())
    assert [f["r_max"] for f in architecture["fields"]] == [3, 5, 10, 20, "global", "global"]
    assert architecture["border_min"] is None  # 20 px < 32 px: no border layer
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "no border layer" in page and "r_max" in page
    (run_dir / "architecture.json").unlink()  # a folder from before: `report` writes it
    assert main(["report", str(run_dir)]) == 0
    assert (run_dir / "architecture.json").is_file()
    # The closing lines name the next commands with this folder.
    assert f"layerscope probe {run_dir.as_posix()}" in out
    assert f"layerscope resume {run_dir.as_posix()} --epochs" in out


@pytest.mark.slow
def test_probe_similarity_resume_and_report_work_on_the_demo_folder(tmp_path, capsys):
    assert main(["demo", "--epochs", "1", "--out", str(tmp_path), "--no-progress"]) == 0
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    run = str(run_dir)
    assert main(["probe", run, "--layers", "0", "17", "--no-progress"]) == 0
    probes = load(run_dir).query("phase == 'probe' and statistic == 'probe_test_acc'")
    assert sorted(probes.layer) == ["0", "17"]
    assert "probe" in (run_dir / "report.html").read_text(encoding="utf-8").lower()
    assert main(["similarity", run, run, "--max-batches", "1"]) == 0
    out = capsys.readouterr().out
    assert "cka" in out and "1.000" in out  # a layer against itself
    assert main(["resume", run, "--no-progress"]) == 0
    assert "is finished; nothing to train" in capsys.readouterr().out
    assert main(["resume", run, "--epochs", "2", "--no-progress"]) == 0
    assert "trained 1 epoch(s)" in capsys.readouterr().out
    assert read_run_config(run_dir).epochs == 2 and run_checkpoint(run_dir).epoch == 1
    assert sorted(set(load(run_dir).query("phase == 'epoch'").epoch)) == [0, 1]
    assert main(["resume", run, "--epochs", "1"]) == 2
    assert "--epochs N with N >= 2" in capsys.readouterr().err
    assert main(["report", run]) == 0
