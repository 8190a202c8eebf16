"""The trainer: run folders, checkpoints, skip, resume after SIGKILL, corrupt checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from torch import nn

from layerscope import load
from layerscope.errors import ConfigError
from layerscope.lab import load_config
from layerscope.lab.checkpoint import latest_checkpoint
from layerscope.lab.experiment import run_one
from layerscope.registry import MODELS

TINY = textwrap.dedent(
    """
    import time
    import torch
    from torch import nn
    from layerscope.registry import MODELS

    class TinyNet(nn.Module):
        def __init__(self, num_classes=10, in_channels=1, width=1.0, delay=0.0):
            super().__init__()
            channels = max(1, round(8 * width))
            self.conv = nn.Conv2d(in_channels, channels, 3, padding=1)
            self.head = nn.Linear(channels, num_classes)
            self.delay = delay

        def forward(self, x):
            if self.delay:
                time.sleep(self.delay)
            x = torch.relu(self.conv(x))
            return self.head(x.mean((2, 3)))

    if "tiny_test_net" not in MODELS:
        MODELS.add("tiny_test_net", TinyNet)
    """
)
exec(TINY)  # the same model in this process and in the subprocess


def config(tmp_path, **overrides):
    base = {
        "model": "tiny_test_net", "dataset": "digits", "resolution": 8, "epochs": 2,
        "batch_size": 128, "seed": 3, "logs_dir": str(tmp_path / "logs"), "device": "cpu",
        "run_id": "r",
    }  # fmt: skip
    base.update(overrides)
    return load_config(base)[0]


def test_a_run_writes_its_folder_and_a_rerun_skips_it(tmp_path):
    cfg = config(tmp_path)
    result = run_one(cfg, progress=False)
    folder = tmp_path / "logs" / "tiny_test_net" / "digits" / "8" / "r"
    assert result.status == "finished" and result.run_dir == folder
    saved = json.loads((folder / "config.json").read_text())
    assert saved == cfg.to_dict() and saved["seed"] == 3
    for name in ("run.json", "records.sqlite", "report.html", "done.json", "layers.json"):
        assert (folder / name).is_file(), name
    df = load(folder)
    assert sorted(df.epoch.unique()) == [0, 1]
    assert {"train_loss", "test_accuracy", "test_top5", "lr", "parameters", "flops"} <= set(
        df.statistic
    )
    params = df.query("statistic == 'parameters'").value.item()
    assert params == sum(p.numel() for p in MODELS.create("tiny_test_net").parameters())
    assert latest_checkpoint(folder / "checkpoints").epoch == 1
    again = run_one(cfg, progress=False)
    assert again.status == "skipped" and len(load(folder)) == len(df)


def test_live_report_false_writes_the_report_once_at_the_end(tmp_path, monkeypatch):
    # A grid of many short runs can skip the per-epoch report: with live_report = false no
    # epoch writes report.html, the finished run still has one, and the run id is unchanged.
    from layerscope.report import live

    written = []
    monkeypatch.setattr(live.ReportWriter, "_write", lambda self, *a: written.append(1))
    cfg = config(tmp_path, live_report=False, run_id=None)
    result = run_one(cfg, progress=False)
    assert written == [] and (result.run_dir / "report.html").is_file()
    assert config(tmp_path, run_id=None).run_id == cfg.run_id  # a technical key
    run_one(config(tmp_path, run_id="live"), progress=False)
    assert len(written) == 2  # the default: one report per epoch


def test_loss_is_the_per_sample_mean(tmp_path):
    cfg = config(tmp_path, epochs=1)
    run_one(cfg, progress=False)
    folder = tmp_path / "logs" / "tiny_test_net" / "digits" / "8" / "r"
    df = load(folder).set_index("statistic").value
    model = MODELS.create("tiny_test_net")
    state = latest_checkpoint(folder / "checkpoints").state["model"]
    model.load_state_dict(state)
    from layerscope.datasets import load_dataset

    data = load_dataset("digits", resolution=8, seed=3)
    images = torch.stack([data.test[i][0] for i in range(len(data.test))])
    labels = torch.tensor([data.test[i][1] for i in range(len(data.test))])
    with torch.no_grad():
        expected = nn.functional.cross_entropy(model.eval()(images), labels).item()
    assert df["test_loss"] == pytest.approx(expected, rel=1e-5)


def test_a_folder_with_another_config_is_refused(tmp_path):
    run_one(config(tmp_path, epochs=1), progress=False)
    with pytest.raises(ConfigError, match="differs in epochs"):
        run_one(config(tmp_path, epochs=2), progress=False)
    # Technical keys (workers, device, probes, ...) may change: same run, new settings.
    again = run_one(config(tmp_path, epochs=1, num_workers=1), progress=False)
    assert again.status == "skipped"
    assert json.loads((again.run_dir / "config.json").read_text())["num_workers"] == 1


def test_corrupt_newest_checkpoint_falls_back_to_the_previous(tmp_path):
    cfg = config(tmp_path, epochs=3)
    folder = tmp_path / "logs" / "tiny_test_net" / "digits" / "8" / "r"

    def crash_after_second_epoch(epoch):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_one(cfg, progress=False, after_epoch=crash_after_second_epoch)
    newest = folder / "checkpoints" / "epoch-0001.pt"
    newest.write_bytes(newest.read_bytes()[:100])  # truncated
    with pytest.warns(RuntimeWarning, match="epoch-0001.pt cannot be loaded"):
        result = run_one(cfg, progress=False)
    assert result.epochs_trained == 2  # epochs 1 and 2 again, from the checkpoint of epoch 0
    df = load(folder)
    assert sorted(df.epoch.unique()) == [0, 1, 2]
    assert len(df[(df.epoch == 1) & (df.statistic == "train_loss")]) == 1  # no duplicates


SCRIPT = TINY + textwrap.dedent(
    """
    import sys
    torch.set_num_threads(1)  # as tests/conftest.py does in this process: same float sums
    from layerscope.lab import load_config
    from layerscope.lab.experiment import run_one
    import json
    cfg = load_config(json.loads(sys.argv[1]))[0]
    run_one(cfg, progress=False, after_epoch=lambda e: print("epoch", e, flush=True))
    """
)


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")
def test_killed_during_epoch_2_of_4_then_resumed_equals_an_uninterrupted_run(tmp_path):
    common = {"epochs": 4, "model_kwargs": {"delay": 0.02}}
    killed = config(tmp_path / "killed", **common)
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, json.dumps(killed.to_dict())],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = process.stdout.readline()  # "epoch 0": epoch 1 of 4 is finished
        assert line.strip() == "epoch 0", line
        time.sleep(0.25)  # well inside epoch 2 (12 batches of >= 20 ms each)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
        process.stdout.close()
    folder = tmp_path / "killed" / "logs" / "tiny_test_net" / "digits" / "8" / "r"
    assert latest_checkpoint(folder / "checkpoints").epoch == 0
    assert not (folder / "done.json").exists()

    resumed = run_one(killed, progress=False)
    assert resumed.epochs_trained == 3
    reference = run_one(config(tmp_path / "straight", **common), progress=False)

    def final_weights(run):
        return latest_checkpoint(run.run_dir / "checkpoints").state["model"]

    a, b = final_weights(resumed), final_weights(reference)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    columns = ["epoch", "phase", "layer", "statistic", "value"]
    records = [
        load(run.run_dir)[columns]
        .query("statistic != 'seconds'")
        .sort_values(columns[:4])
        .reset_index(drop=True)
        for run in (resumed, reference)
    ]
    assert records[0].equals(records[1])


def test_resume_from_another_working_directory_continues_the_given_folder(tmp_path, monkeypatch):
    from layerscope.lab.experiment import resume_run

    cfg = config(tmp_path, epochs=3, logs_dir="logs")  # relative, as configs usually are
    monkeypatch.chdir(tmp_path)

    def crash(epoch):
        if epoch == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_one(cfg, progress=False, after_epoch=crash)
    folder = (tmp_path / "logs" / "tiny_test_net" / "digits" / "8" / "r").resolve()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = resume_run(folder, progress=False)
    assert result.run_dir == folder and result.epochs_trained == 2
    assert not (elsewhere / "logs").exists()
    assert sorted(load(folder).epoch.unique()) == [0, 1, 2]
    # The report rebuilt after the resume shows every epoch, not only the resumed ones.
    assert "<b>epochs recorded</b> 3" in (folder / "report.html").read_text()


def test_killed_after_the_last_checkpoint_finishes_without_duplicates(tmp_path):
    cfg = config(tmp_path, epochs=2)
    first = run_one(cfg, progress=False)
    (first.run_dir / "done.json").unlink()  # as if killed after the last checkpoint
    again = run_one(cfg, progress=False)
    assert again.status == "finished" and again.epochs_trained == 0
    assert again.metrics == first.metrics
    df = load(first.run_dir)
    assert len(df.query("statistic == 'parameters'")) == 1
    assert len(df.query("statistic == 'train_loss'")) == 2


def test_large_seeds_are_accepted(tmp_path):
    result = run_one(config(tmp_path, epochs=1, seed=2**62), progress=False)
    assert result.status == "finished"


def test_width_needs_a_model_with_a_width_factor_and_num_classes_comes_from_the_data(tmp_path):
    MODELS.add("no_width_net", lambda num_classes=10, in_channels=1: nn.Linear(1, num_classes))
    try:
        with pytest.raises(ConfigError, match="has no width factor"):
            config(tmp_path, model="no_width_net", width=0.5)
    finally:
        MODELS.remove("no_width_net")
    with pytest.raises(ConfigError, match="num_classes"):
        config(tmp_path, model_kwargs={"num_classes": 3})


def test_configured_sinks_add_to_the_store(tmp_path):
    result = run_one(config(tmp_path, epochs=1, tracker={"sinks": ["csv"]}), progress=False)
    assert (result.run_dir / "records.csv").is_file()
    assert (result.run_dir / "records.sqlite").is_file()  # resume and reports read it
