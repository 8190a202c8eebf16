"""The command line: help, errors without tracebacks, and each command's happy path."""

from __future__ import annotations

import numpy as np

from layerscope.cli import main


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
