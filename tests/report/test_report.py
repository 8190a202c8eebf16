"""Figures and report.html from a tracked run."""

from __future__ import annotations

import torch
from torch import nn

from layerscope import Tracker, load
from layerscope.report.figures import saturation_by_layer, saturation_heatmap
from layerscope.report.html import layer_table, write_report
from layerscope.report.live import ReportWriter

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tracked_run(run_dir, epochs=2):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    with Tracker(model, run_dir, callbacks=[ReportWriter()]) as tracker:  # a live report
        for epoch in range(epochs):
            model.train()
            model(torch.randn(8, 1, 6, 6))
            model.eval()
            model(torch.randn(8, 1, 6, 6))
            tracker.end_epoch(loss=1.0 / (epoch + 1))
    return tracker


def test_run_folder_has_store_figures_and_self_contained_report(tmp_path):
    run_dir = tmp_path / "run"
    tracked_run(run_dir)
    for name in ("overview", "saturation_by_layer", "saturation_heatmap_train",
                 "saturation_heatmap_eval", "intrinsic_dimension"):  # fmt: skip
        assert (run_dir / "figures" / f"{name}.png").read_bytes().startswith(PNG_MAGIC)
    page = (run_dir / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 5
    assert "<td class='name'>0</td>" in page and "<td class='name'>3</td>" in page
    assert "loss" in page and "Conv2d" in page
    assert (run_dir / "layers.json").is_file() and (run_dir / "run.json").is_file()


def test_layer_table_holds_the_latest_epoch(tmp_path):
    tracker = tracked_run(tmp_path / "run")
    df = load(tmp_path / "run")
    table = layer_table(df, [vars(info) for info in tracker.layers])
    latest = df[(df.epoch == 1) & (df.statistic == "saturation") & (df.phase == "eval")]
    assert table.loc["3", "saturation (eval)"] == latest.set_index("layer").value["3"]
    assert list(table.index) == ["0", "3"]
    assert "relative_weight_change" in table.columns


def test_figures_of_empty_records_say_so(tmp_path):
    tracker = tracked_run(tmp_path / "run", epochs=1)
    empty = tracker.dataframe().iloc[0:0]
    text = [t.get_text() for t in saturation_by_layer(empty).axes[0].texts]
    assert text == ["no saturation recorded yet"]
    assert (
        "phase 'test'"
        in saturation_heatmap(tracker.dataframe(), "test").axes[0].texts[0].get_text()
    )


def test_write_report_reads_the_folder_alone(tmp_path):
    tracked_run(tmp_path / "run")
    (tmp_path / "run" / "report.html").unlink()
    path = write_report(tmp_path / "run")
    assert path.read_text().count("<img") == 5


def test_index_over_runs_has_one_row_per_run_and_the_s_mu_figure(tmp_path, capsys):
    from layerscope.cli import main
    from layerscope.report.index import run_summary

    for width in (1.0, 0.5):
        model = nn.Sequential(nn.Linear(4, max(1, int(8 * width))), nn.ReLU(),
                              nn.Linear(max(1, int(8 * width)), 2))  # fmt: skip
        with Tracker(model, tmp_path / f"w{width}", metadata={"width": width}) as tracker:
            model(torch.randn(32, 4))
            model.eval()
            model(torch.randn(16, 4))
            tracker.end_epoch(test_accuracy=0.5 + width / 4)
    summary = run_summary(tmp_path).set_index("folder")
    assert sorted(summary.index) == ["w0.5", "w1.0"]
    assert summary.loc["w0.5", "test_accuracy"] == 0.625
    df = load(tmp_path / "w0.5")
    s_mu = df.query("statistic == 'average_saturation' and phase == 'eval'").value.item()
    assert summary.loc["w0.5", "s_mu (eval)"] == s_mu
    assert main(["report", str(tmp_path)]) == 0
    page = (tmp_path / "index.html").read_text()
    assert "href='w0.5/report.html'" in page and "data:image/png;base64," in page
    assert "w0.5" in capsys.readouterr().out
    assert "status" in page and "recorded (1 epoch)" in page  # the status column
    (tmp_path / "w0.5" / "report.html").unlink()
    assert main(["report", str(tmp_path), "--index-only"]) == 0
    assert not (tmp_path / "w0.5" / "report.html").exists()  # only the index was written
