"""Where a relative ``logs_dir`` points: the config file's folder, the working directory for
``--set logs_dir=...`` and for a Python dict; the run id does not depend on it."""

from __future__ import annotations

from pathlib import Path

from layerscope.cli import main
from layerscope.lab.config import load_config, run_dir


def test_a_file_run_from_another_directory_writes_under_the_files_folder(
    tiny_run_config, tmp_path, monkeypatch
):
    path = tiny_run_config(tmp_path / "sweeps", 'logs_dir = "out"\nrun_id = "r"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["run", str(path), "--no-progress", "--quiet"]) == 0
    assert (tmp_path / "sweeps" / "out" / "mlp" / "digits" / "8" / "r" / "done.json").is_file()
    assert not (elsewhere / "out").exists()
    # relative config path, run from its parent: the same folder, found finished
    monkeypatch.chdir(tmp_path)
    (run,) = load_config(Path("sweeps") / "c.toml")
    assert run.logs_dir == "sweeps/out" and run_dir(run) == Path("sweeps/out/mlp/digits/8/r")


def test_the_default_logs_dir_and_sweeps_of_it_are_relative_to_the_file(
    tiny_run_config, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (run,) = load_config(tiny_run_config(tmp_path / "a"))
    assert Path(run.logs_dir) == tmp_path / "a" / "logs"
    path = tiny_run_config(
        tmp_path / "b", f'logs_dir = ["../x", "{(tmp_path / "abs").as_posix()}"]\n'
    )
    grid = load_config(Path("b") / path.name)
    assert [r.logs_dir for r in grid] == ["x", (tmp_path / "abs").as_posix()]


def test_set_logs_dir_is_relative_to_the_working_directory(
    tiny_run_config, tmp_path, monkeypatch, capsys
):
    path = tiny_run_config(tmp_path / "sweeps", 'logs_dir = "out"\nrun_id = "r"\n')
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert main(["run", str(path), "--set", "logs_dir=typed", "--no-progress", "--quiet"]) == 0
    assert (here / "typed" / "mlp" / "digits" / "8" / "r" / "done.json").is_file()
    assert not (tmp_path / "sweeps" / "typed").exists()
    assert main(["run", str(path), "--dry-run"]) == 0  # without --set: the file's folder
    assert (
        f"-> {(tmp_path / 'sweeps' / 'out').as_posix()}/mlp/digits/8/r" in capsys.readouterr().out
    )


def test_a_dict_config_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (run,) = load_config({"model": "mlp", "logs_dir": "out", "run_id": "r"})
    assert run.logs_dir == "out" and run_dir(run) == Path("out/mlp/digits/32/r")
    (default,) = load_config({"model": "mlp", "run_id": "r"})
    assert default.logs_dir == "logs"


def test_the_run_id_hash_does_not_depend_on_where_the_config_lies_or_runs(
    tiny_run_config, tmp_path, monkeypatch
):
    first = tiny_run_config(tmp_path / "one")
    second = tiny_run_config(tmp_path / "two" / "deeper")
    monkeypatch.chdir(tmp_path / "one")
    (a,) = load_config(first)
    monkeypatch.chdir(tmp_path / "two")
    (b,) = load_config(second)
    (c,) = load_config(first)
    (d,) = load_config({"model": "mlp", **{k: v for k, v in a.to_dict().items()
                                           if k != "run_id"}, "logs_dir": "elsewhere"})  # fmt: skip
    assert a.logs_dir != b.logs_dir
    assert len(a.run_id) == 8 and a.run_id == b.run_id == c.run_id == d.run_id
