"""Similarity figures: contents, atomic saving, and no global matplotlib state."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from layerscope.report.similarity import (
    MAX_TICK_LABELS,
    plot_similarity_matrix,
    plot_similarity_over_epochs,
    save_figure,
)
from layerscope.similarity import SimilarityMatrix, SimilarityOverEpochs


def matrix(size=3, nan=False) -> SimilarityMatrix:
    values = np.linspace(0, 1, size * size).reshape(size, size)
    if nan:
        values[1, :] = np.nan
    names = tuple(f"layer{i}" for i in range(size))
    return SimilarityMatrix(values, names, names, "cka", 500, "flatten")


def test_heatmap_shows_the_values_names_and_nan_cells(tmp_path):
    figure = plot_similarity_matrix(matrix(nan=True), path=tmp_path / "m.png", labels=("A", "B"))
    axes = figure.axes[0]
    image = axes.get_images()[0]
    data = image.get_array()
    assert data.mask[1].all() and not data.mask[0].any()  # NaN rows masked, shown as "bad"
    np.testing.assert_allclose(data[0], matrix().values[0])
    assert [t.get_text() for t in axes.get_yticklabels()] == ["layer0", "layer1", "layer2"]
    assert axes.get_ylabel() == "A layer" and axes.get_xlabel() == "B layer"
    texts = sorted(t.get_text() for t in axes.texts)
    assert texts.count("n/a") == 3 and "1.00" in texts
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"


def test_heatmap_thins_tick_labels_for_many_layers():
    figure = plot_similarity_matrix(matrix(size=100))
    axes = figure.axes[0]
    assert len(axes.get_xticks()) <= MAX_TICK_LABELS and not axes.texts  # no annotations


def test_over_epochs_draws_one_line_per_layer(tmp_path):
    values = np.array([[0.2, 0.5], [0.7, 0.9], [1.0, 1.0]])
    result = SimilarityOverEpochs(values, (1, 5, 9), ("conv", "fc"), "pwcca", 800, "pool", 9)
    figure = plot_similarity_over_epochs(result, path=tmp_path / "sub" / "epochs.svg")
    lines = figure.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["conv", "fc"]
    np.testing.assert_allclose(lines[1].get_ydata(), values[:, 1])
    np.testing.assert_allclose(lines[0].get_xdata(), [1, 5, 9])
    assert "epoch 9" in figure.axes[0].get_ylabel()
    assert (tmp_path / "sub" / "epochs.svg").read_text().lstrip().startswith("<?xml")


def test_save_is_atomic_and_leaves_nothing_behind_on_failure(tmp_path):
    target = tmp_path / "figure.png"
    target.write_bytes(b"old")
    figure = plot_similarity_matrix(matrix())
    with pytest.raises(ValueError):
        save_figure(figure, tmp_path / "figure.notaformat")
    with pytest.raises(ValueError, match="suffix"):
        save_figure(figure, tmp_path / "figure")
    assert target.read_bytes() == b"old"
    save_figure(figure, target)
    assert target.read_bytes()[:4] == b"\x89PNG"
    assert sorted(os.listdir(tmp_path)) == ["figure.png"]  # no temporary files left


def test_no_pyplot_and_no_global_state_change():
    code = textwrap.dedent(
        """
        import sys, tempfile, pathlib, matplotlib
        # dict.__getitem__: reading rcParams["backend"] normally would itself import pyplot.
        def snapshot():
            return {k: dict.__getitem__(matplotlib.rcParams, k) for k in dict.keys(matplotlib.rcParams)}
        before = snapshot()
        import numpy as np
        from layerscope.similarity import SimilarityMatrix
        from layerscope.report.similarity import plot_similarity_matrix
        m = SimilarityMatrix(np.eye(2), ("a", "b"), ("a", "b"), "cka", 10, "flatten")
        with tempfile.TemporaryDirectory() as folder:
            plot_similarity_matrix(m, path=pathlib.Path(folder) / "m.png")
        assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
        changed = [k for k, v in snapshot().items() if before.get(k) != v]
        assert not changed, changed
        print("ok")
        """
    )
    src = Path(__file__).resolve().parents[2] / "src"
    env = dict(os.environ, PYTHONPATH=f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    env.pop("MPLBACKEND", None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
