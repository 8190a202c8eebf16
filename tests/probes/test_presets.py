"""Probe presets: "standardized" (default) and "dissertation" (SAGA, 100 epochs, raw features),
from Python, config and CLI, and named in the records and the report figure."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from layerscope import load
from layerscope.cli import main
from layerscope.errors import ConfigError, ProbeSettingsError
from layerscope.lab import load_config
from layerscope.lab.experiment import run_one
from layerscope.probes import ProbeSettings
from layerscope.probes.results import PROBE_PRESETS
from layerscope.registry import MODELS
from layerscope.report.figures import saturation_and_probes


class PresetNet(nn.Module):
    def __init__(self, num_classes=10, in_channels=1, width=1.0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 4, 3, padding=1, stride=2)
        self.head = nn.Linear(4, num_classes)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


if "preset_test_net" not in MODELS:
    MODELS.add("preset_test_net", PresetNet)


def test_presets_are_the_two_recipes():
    assert PROBE_PRESETS["standardized"] == ProbeSettings()
    dissertation = ProbeSettings.preset("dissertation")
    assert (dissertation.solver, dissertation.max_iter, dissertation.standardize) == (
        "saga", 100, False,
    )  # fmt: skip
    assert dissertation.preset_name == "dissertation"
    assert ProbeSettings.preset("dissertation", C=0.5).preset_name == "custom"
    with pytest.raises(
        ProbeSettingsError, match=r"Did you mean 'dissertation'.*preset\('dissertation'\)"
    ):
        ProbeSettings.preset("disertation")


def test_dissertation_preset_fits_raw_features_like_sklearn_saga():
    """Features on very different scales: the preset must hand them to SAGA unscaled."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 3)) * np.array([1.0, 5.0, 0.2])
    y = (X[:, 0] + 0.3 * X[:, 1] - 4 * X[:, 2] > 0).astype(int)
    probe = ProbeSettings.preset("dissertation", dtype="float64").probe().fit(X, y)
    reference = LogisticRegression(solver="saga", max_iter=100, tol=1e-4, random_state=0)
    reference.fit(X, y)
    np.testing.assert_allclose(probe.coef_, reference.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(probe.mean_, np.zeros(3))
    standardised = ProbeSettings(dtype="float64").probe().fit(X, y)
    assert np.allclose(standardised.scale_, X.std(0))


def test_config_preset_reaches_records_and_figure(tmp_path):
    torch.set_num_threads(1)
    base = {"model": "preset_test_net", "dataset": "digits", "resolution": 8, "epochs": 1,
            "batch_size": 256, "seed": 0, "logs_dir": str(tmp_path / "logs"), "device": "cpu",
            "run_id": "p", "probes": True, "probe_preset": "dissertation"}  # fmt: skip
    folder = run_one(load_config(base)[0], progress=False).run_dir
    df = load(folder)
    recipe = df[(df.phase == "probe") & df.layer.isna()].set_index("statistic").value
    assert recipe["probe_dissertation_preset"] == 1.0 and recipe["probe_standardized"] == 0.0
    title = saturation_and_probes(df).axes[0].get_title()
    assert "dissertation preset, raw features" in title
    # the CLI's default preset replaces the recipe records of the same phase
    assert main(["probe", str(folder), "--no-progress", "--no-report"]) == 0
    recipe = load(folder).query("phase == 'probe' and layer != layer").set_index("statistic")
    assert recipe.value["probe_standardized"] == 1.0
    assert recipe.value["probe_dissertation_preset"] == 0.0


def test_cli_preset_and_config_errors(tmp_path, capsys):
    with pytest.raises(ConfigError, match="probe_preset"):
        load_config({"model": "preset_test_net", "probe_preset": "raw"})
    with pytest.raises(SystemExit):
        main(["probe", str(tmp_path), "--preset", "raw"])
    assert "invalid choice: 'raw'" in capsys.readouterr().err
