"""``layerscope similarity RUN_A RUN_B``: two tiny trained runs compared layer by layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from layerscope.cli import main
from layerscope.datasets import load_dataset
from layerscope.lab import load_config
from layerscope.lab.experiment import run_one
from layerscope.lab.runs import load_run_model
from layerscope.registry import MODELS
from layerscope.similarity import layer_similarity


class PairNet(nn.Module):
    def __init__(self, num_classes=10, in_channels=1, width=1.0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 6, 3, padding=1)
        self.head = nn.Linear(6, num_classes)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


if "similarity_pair_test_net" not in MODELS:
    MODELS.add("similarity_pair_test_net", PairNet)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two one-epoch runs of the same architecture from different seeds."""
    folders = []
    for seed in (1, 2):
        cfg = load_config({
            "model": "similarity_pair_test_net", "dataset": "digits", "resolution": 8,
            "epochs": 1, "batch_size": 128, "seed": seed, "device": "cpu", "run_id": f"s{seed}",
            "logs_dir": str(tmp_path_factory.mktemp("logs")), "tracker": {"max_batches": 1},
        })[0]  # fmt: skip
        folders.append(run_one(cfg, progress=False).run_dir)
    return folders


def by_hand(folder) -> nn.Module:
    """The run's model from its newest checkpoint file, without layerscope's loaders."""
    newest = sorted((folder / "checkpoints").glob("epoch-*.pt"))[-1]
    model = PairNet()
    model.load_state_dict(torch.load(newest, weights_only=True)["model"])
    return model


def printed_matrix(out: str, measure: str, rows: int) -> np.ndarray:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{measure} ("))
    body = lines[start + 2 : start + 2 + rows]  # after the title and the column header
    return np.array([[float(v) for v in line.split()[1:]] for line in body])


def test_two_runs_layer_by_layer_with_a_heatmap(runs, tmp_path, capsys):
    a, b = runs
    out = tmp_path / "figures" / "cka.png"
    args = ["similarity", str(a), str(b), "--max-batches", "2", "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "rows: s1 (similarity_pair_test_net), columns: s2" in text
    assert "test split of digits at 8 px" in text
    assert out.read_bytes()[:4] == b"\x89PNG"
    # the same comparison from the checkpoints read by hand, on the digits test split
    test = load_dataset("digits", resolution=8, seed=1).test
    loader = DataLoader(test, batch_size=128, shuffle=False)
    expected = layer_similarity(by_hand(a), by_hand(b), loader, max_batches=2)
    assert expected.num_samples == 256 and f"cka ({expected.num_samples} samples" in text
    np.testing.assert_allclose(printed_matrix(text, "cka", 2), expected.values, atol=5e-4)


def test_a_run_against_itself_and_every_measure(runs, tmp_path, capsys):
    a, _ = runs
    out = tmp_path / "m.svg"
    assert main(["similarity", str(a), str(a), "--measure", "all", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for measure in ("cka", "cca", "svcca", "pwcca"):
        values = printed_matrix(text, measure, 2)
        np.testing.assert_allclose(np.diag(values), 1.0, atol=5e-4)
        assert (tmp_path / f"m-{measure}.svg").is_file()


def test_load_run_model_gives_the_trained_weights(runs):
    model, data, cfg = load_run_model(runs[0], device="cpu")
    assert cfg.run_id == "s1" and data.num_classes == 10
    for mine, theirs in zip(model.state_dict().values(), by_hand(runs[0]).state_dict().values(),
                            strict=True):  # fmt: skip
        assert torch.equal(mine, theirs)


def test_run_errors_are_messages(runs, tmp_path, capsys):
    a, b = runs
    assert main(["similarity", str(a), str(b), "--measure", "cka_biased"]) == 2
    assert "cka is the unbiased minibatch CKA" in capsys.readouterr().err
    assert main(["similarity", str(a), str(b), "--out", str(tmp_path / "x.nope")]) == 2
    assert "image suffix" in capsys.readouterr().err
    assert main(["similarity", str(a), str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err
