"""The README's main job: the demo trains, tracks and writes a run folder."""

from __future__ import annotations

from layerscope import load
from layerscope.cli import main


def test_demo_command_writes_a_run_folder_and_prints_a_summary(tmp_path, capsys):
    assert main(["demo", "--epochs", "1", "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert f"run folder: {run_dir}" in out
    assert "saturation (train)" in out and "Conv2d" in out
    assert (run_dir / "report.html").is_file()
    df = load(run_dir)
    assert set(df.phase) == {"train", "eval", "weights", "epoch"}
    accuracy = df.query("statistic == 'test_accuracy'").value.item()
    assert 0.0 <= accuracy <= 1.0
    # 4 conv + 2 linear layers, train and eval
    assert len(df.query("statistic == 'saturation'")) == 12
