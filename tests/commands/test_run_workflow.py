"""`layerscope run` as a batch job uses it: --set, --dry-run states, report paths, --quiet, logs
without progress frames, one-line warnings, and a closed pipe."""

from __future__ import annotations

import warnings

from layerscope.cli import _one_line_warnings, main
from layerscope.commands.run import apply_overrides
from layerscope.lab.console import quiet, say, show_bars


def _config(tiny_run_config, tmp_path):
    return tiny_run_config(tmp_path, f'run_id = "s{{seed}}"\nlogs_dir = "{tmp_path / "logs"}"\n')


def test_set_overrides_keys_and_sweeps(tiny_run_config, tmp_path, capsys):
    path = _config(tiny_run_config, tmp_path)
    assert main(["run", str(path), "--dry-run", "--set", "seed=[1, 2]", "--set",
                 "optimizer.lr=0.5"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert out.startswith("2 runs:") and "varying: seed" in out
    assert "run 1/2: new" in out and "run 2/2: new" in out and "/s2" in out
    assert out.count("data digits at 8 px: present") == 1  # one line per distinct dataset
    assert main(["run", str(path), "--dry-run", "--set", "dataset=cifar10", "--set",
                 f"dataset_kwargs={{'root': '{tmp_path}'}}"]) == 0  # fmt: skip
    assert "data cifar10 at 8 px: missing: " in capsys.readouterr().out
    assert apply_overrides({"optimizer": "sgd"}, ["optimizer.momentum=0"]) == {
        "optimizer": {"name": "sgd", "momentum": 0}
    }
    assert main(["run", str(path), "--set", "epocs=2"]) == 2
    err = capsys.readouterr().err
    assert "with --set epocs=2" in err and "epochs" in err


def test_a_run_prints_its_report_and_dry_run_says_where_each_run_stands(
    tiny_run_config, tmp_path, capsys
):
    path = _config(tiny_run_config, tmp_path)
    assert main(["run", str(path), "--no-progress"]) == 0
    captured = capsys.readouterr()
    folder = tmp_path / "logs" / "mlp" / "digits" / "8" / "s0"
    assert f"finished  {folder / 'report.html'}" in captured.out
    assert "epoch 1/1: train loss" in captured.err  # the epoch line, without progress bars
    assert "it/s" not in captured.err  # no tqdm frames in a redirected log
    assert main(["run", str(path), "--dry-run", "--set", "epochs=3"]) == 0
    assert "clashes: " in capsys.readouterr().out  # same folder (run_id), other epochs
    assert main(["run", str(path), "--dry-run"]) == 0
    assert "run 1/1: finished (a rerun skips it)" in capsys.readouterr().out
    (folder / "done.json").unlink()
    assert main(["run", str(path), "--dry-run"]) == 0
    assert "run 1/1: resumes at epoch 2 of 1" in capsys.readouterr().out
    assert main(["resume", str(folder), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "trained 0 epoch(s)" in captured.out


def test_quiet_and_bars():
    with quiet():
        say("hidden")
    assert not show_bars(True)  # stderr is not a terminal under pytest


def test_warnings_are_one_line():
    with _one_line_warnings():
        text = warnings.formatwarning("first\n  second", RuntimeWarning, "x.py", 3, "code")
    assert text == "layerscope: RuntimeWarning: first second\n"
    assert "x.py" in warnings.formatwarning("w", UserWarning, "x.py", 3)  # restored after


def test_a_closed_pipe_ends_with_one_line_not_a_traceback(monkeypatch, capsys):
    import layerscope.commands.list as listing

    def closed(args):
        raise BrokenPipeError(32, "Broken pipe")  # what print() raises after `| head`

    monkeypatch.setattr(listing, "run", closed)
    assert main(["list", "models"]) == 141
    err = capsys.readouterr().err
    assert err == "layerscope list: output closed early (broken pipe)\n"
