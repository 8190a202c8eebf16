"""The command line: help, errors without tracebacks, and each command's happy path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import layerscope
from layerscope.cli import main
from layerscope.commands import catalogue
from layerscope.commands.list import KINDS


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_spectrum_on_digits(capsys):
    assert main(["spectrum", "--delta", "0.9"]) == 0
    out = capsys.readouterr().out
    assert "1797 samples x 64 features" in out
    # 21 principal components explain 90% of the digits' pixel variance (independent check below).
    assert "intrinsic_dimension       21.0000" in out


def test_digits_reference_with_sklearn():
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA

    assert PCA(n_components=0.9, svd_solver="full").fit(load_digits().data).n_components_ == 21


def test_spectrum_bad_file_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((2, 3, 4)))
    assert main(["spectrum", str(path)]) == 2
    assert "expected a 2-D (samples, features) array" in capsys.readouterr().err


def test_list_registries(capsys):
    assert main(["list", "models", "vgg*"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()] == ["vgg11", "vgg13", "vgg16", "vgg19"]
    assert main(["list", "datasets"]) == 0
    assert "digits" in capsys.readouterr().out
    assert main(["list", "statistics", "sat*"]) == 0
    assert capsys.readouterr().out.startswith("saturation")
    assert main(["list", "optimizers", "nothing*"]) == 1


def test_run_dry_run_prints_the_expanded_grid(capsys):
    assert main(["run", "examples/vgg_width_sweep.toml", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("4 runs: model='vgg11', dataset='digits'")
    assert "width=1/8" in out and "logs/vgg11/digits/32/w0.125" in out


def test_run_with_a_bad_config_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('model = "vgg11"\nepocs = 3\n')
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "epocs" in err and "epochs" in err and "Traceback" not in err


def test_resume_of_a_folder_without_config(tmp_path, capsys):
    assert main(["resume", str(tmp_path)]) == 2
    assert "has no config.json" in capsys.readouterr().err


@pytest.mark.parametrize(
    "arguments",
    [["--help"], *(["list", kind] for kind in sorted(KINDS)), ["list", "models", "vgg1*"]],
)
def test_help_and_list_import_no_heavy_library(arguments):
    # `layerscope --help` and `layerscope list ...` must answer at once: no torch, numpy, pandas,
    # matplotlib, scipy or scikit-learn (checked in a fresh interpreter, where nothing is
    # imported yet; `list` reads layerscope.commands.catalogue).
    code = (
        "import sys\n"
        "from layerscope.cli import main\n"
        "try:\n"
        f"    main({arguments!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in ('torch', 'numpy', 'pandas', 'matplotlib', 'scipy', 'sklearn')"
        " if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    source = str(Path(layerscope.__file__).parent.parent)
    env = {**os.environ, "PYTHONPATH": source + os.pathsep + os.environ.get("PYTHONPATH", "")}
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert "HEAVY []" in completed.stdout
    if arguments == ["--help"]:
        assert "usage: layerscope" in completed.stdout
    elif arguments[-1] == "vgg1*":
        listed = [line.split()[0] for line in completed.stdout.splitlines()[:-1]]
        assert listed == ["vgg11", "vgg13", "vgg16", "vgg19"]
    else:
        listed = [line.split()[0] for line in completed.stdout.splitlines()[:-1]]
        assert listed == sorted(catalogue.ENTRIES[arguments[1]])
