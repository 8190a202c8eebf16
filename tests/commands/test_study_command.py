"""``layerscope study``: listing, running scripts with their arguments, configs, errors."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from layerscope.cli import main
from layerscope.errors import UnknownNameError
from layerscope.lab.studies import find_study, list_studies, markdown_table, studies_folder
from layerscope.registry import MODELS

SCRIPT = '''"""Echo: writes its arguments."""
import json, sys
from pathlib import Path
if __name__ == "__main__":
    Path(sys.argv[sys.argv.index("--out") + 1]).write_text(json.dumps(sys.argv[1:]))
'''


class StudyNet(nn.Module):
    def __init__(self, num_classes=10, in_channels=1, width=1.0):
        super().__init__()
        self.head = nn.Linear(in_channels, num_classes)

    def forward(self, x):  # any input size: test_models runs every registered model
        return self.head(x.mean((2, 3)))


if "study_test_net" not in MODELS:
    MODELS.add("study_test_net", StudyNet)


@pytest.fixture
def folder(tmp_path):
    studies = tmp_path / "studies"
    studies.mkdir()
    (studies / "echo.py").write_text(SCRIPT)
    (studies / "_helper.py").write_text("")
    (studies / "tiny.toml").write_text(
        "# Tiny: one epoch of a linear model.\n"
        'model = "study_test_net"\ndataset = "digits"\nresolution = 8\nepochs = 1\n'
        f'logs_dir = "{(tmp_path / "logs").as_posix()}"\nrun_id = "t"\ndevice = "cpu"\n'
    )
    return studies


def test_list(folder, capsys):
    assert list_studies(folder) == {"echo": "Echo: writes its arguments.",
                                    "tiny": "Tiny: one epoch of a linear model."}  # fmt: skip
    assert main(["study", "--list", "--dir", str(folder)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["echo  Echo: writes its arguments.", "tiny  Tiny: one epoch of a linear model."]


@pytest.mark.parametrize("separator", [[], ["--"]])
def test_script_gets_the_arguments(folder, tmp_path, separator):
    target = tmp_path / "argv.json"
    argv = ["study", "--dir", str(folder), "echo", *separator, "--out", str(target), "--quick"]
    assert main(argv) == 0
    assert json.loads(target.read_text()) == ["--out", str(target), "--quick"]


def test_config_study_trains(folder, tmp_path):
    torch.set_num_threads(1)
    assert main(["study", "--dir", str(folder), "tiny"]) == 0
    assert (tmp_path / "logs" / "study_test_net" / "digits" / "8" / "t" / "done.json").is_file()


def test_errors(folder, capsys):
    assert main(["study", "--dir", str(folder), "ecko"]) == 2
    assert "Did you mean 'echo'?" in capsys.readouterr().err
    assert main(["study", "--dir", str(folder)]) == 2
    assert "layerscope study --list" in capsys.readouterr().err
    with pytest.raises(UnknownNameError, match="--dir"):
        studies_folder(folder / "missing")
    assert find_study("echo", folder).name == "echo.py"


def test_repository_studies_are_listed():
    """The studies shipped in examples/studies each say what they reproduce."""
    studies = list_studies()
    for name in (
        "width_saturation",
        "saturation_converges",
        "bottom_up",
        "rwc_clusters",
        "pruning_frame_potential",
        "low_rank_elbow",
    ):
        assert studies[name].startswith("Study ")


def test_markdown_table():
    table = markdown_table([{"a": 0.12345, "b": None}, {"a": 2, "b": "x"}], ["a", "b"])
    assert table.splitlines() == ["| a | b |", "| --- | --- |", "| 0.123 | - |", "| 2 | x |"]
