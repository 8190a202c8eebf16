"""analyze(): one pass over a dataset, checked against numpy on the same outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from layerscope import analyze


def test_table_matches_numpy_and_restores_the_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3)).train()
    batches = [(torch.randn(50, 6), torch.zeros(50)) for _ in range(3)]
    table = analyze(model, batches, statistics=["saturation", "intrinsic_dimension"], delta=0.95)
    assert model.training
    assert list(table.index) == ["0", "2"]
    assert table.loc["0", "features"] == 12 and table.loc["0", "type"] == "Linear"
    with torch.no_grad():
        outputs = model[0](torch.cat([x for x, _ in batches])).double().numpy()
    centred = outputs - outputs.mean(0)
    eigenvalues = np.sort(np.linalg.eigvalsh(centred.T @ centred / len(outputs)))[::-1]
    k = int(np.argmax(np.cumsum(eigenvalues) / eigenvalues.sum() >= 0.95 * (1 - 1e-12))) + 1
    assert table.loc["0", "samples"] == 150
    assert table.loc["0", "intrinsic_dimension"] == k
    assert table.loc["0", "saturation"] == pytest.approx(k / 12)


def test_accepts_plain_tensors_and_dicts():
    model = nn.Sequential(nn.Linear(2, 2))
    assert analyze(model, [torch.randn(5, 2)]).loc["0", "samples"] == 5
    assert analyze(model, [{"input": torch.randn(4, 2)}]).loc["0", "samples"] == 4


def test_empty_data_is_a_clear_error_and_leaves_no_hooks():
    model = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="is `data` empty"):
        analyze(model, [])
    with pytest.raises(RuntimeError):
        analyze(model, [torch.randn(3, 5)])  # wrong input width: torch's own error
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_every_module_keeps_its_own_training_flag():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).train()
    model[1].eval()  # a frozen BatchNorm inside a model in training mode
    analyze(model, [torch.randn(8, 3)])
    assert model.training and model[0].training and not model[1].training


class Keywords(nn.Module):
    """A model called with keyword arguments, as a Hugging Face model is."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(4, 6)

    def forward(self, input_ids, attention_mask=None):
        return self.embed(input_ids * attention_mask)


def test_mapping_batches_are_unpacked_as_keywords_and_forward_says_otherwise():
    torch.manual_seed(0)
    model = Keywords()
    x, mask = torch.randn(40, 4), torch.ones(40, 4)
    batches = [{"input_ids": x[:20], "attention_mask": mask[:20]},
               {"input_ids": x[20:], "attention_mask": mask[20:]}]  # fmt: skip
    table = analyze(model, batches, statistics=["intrinsic_dimension"], delta=0.9)
    with torch.no_grad():
        outputs = model.embed(x).double().numpy()
    centred = outputs - outputs.mean(0)
    eigenvalues = np.sort(np.linalg.eigvalsh(centred.T @ centred / len(outputs)))[::-1]
    k = int(np.argmax(np.cumsum(eigenvalues) / eigenvalues.sum() >= 0.9 * (1 - 1e-12))) + 1
    assert table.loc["embed", "samples"] == 40
    assert table.loc["embed", "intrinsic_dimension"] == k
    halves = analyze(model, batches, forward=lambda model, batch: model(batch["input_ids"][:5], 1))
    assert halves.loc["embed", "samples"] == 10


def test_an_unsupported_batch_names_its_keys_and_the_fix():
    model = nn.Linear(4, 2)
    with pytest.raises(TypeError, match=r"keys \['image', 'label'\].*forward=lambda model, batch"):
        analyze(model, [{"image": torch.zeros(2, 4), "label": torch.zeros(2)}])
    assert not model._forward_hooks and not model._forward_pre_hooks
