"""Latent extraction: reductions, forward order, file naming, eval mode, crash safety."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from layerscope.probes import (
    LatentManifest,
    LatentsError,
    Reduction,
    extract_latents,
    manifest_path,
    reduce_output,
)


def block_means(x: np.ndarray, size: int) -> np.ndarray:
    """Average (N, C, H, W) over size x size equal blocks (H, W divisible), by hand."""
    n, c, h, w = x.shape
    return x.reshape(n, c, size, h // size, size, w // size).mean(axis=(3, 5))


def test_reductions_against_numpy():
    conv = nn.Conv2d(2, 3, 1)
    out = torch.randn(5, 3, 8, 8)
    x = out.numpy()
    np.testing.assert_allclose(
        reduce_output(conv, out, "avg4").numpy(), block_means(x, 4).reshape(5, -1), atol=1e-6
    )
    np.testing.assert_allclose(reduce_output(conv, out, "gap").numpy(), x.mean((2, 3)), atol=1e-6)
    np.testing.assert_array_equal(  # legacy nearest: index floor(i * 8 / 4)
        reduce_output(conv, out, "nearest4").numpy(), x[:, :, ::2, ::2].reshape(5, -1)
    )
    np.testing.assert_array_equal(reduce_output(conv, out, "full").numpy(), x.reshape(5, -1))
    positions = reduce_output(conv, out, "pos2").numpy()  # centres of 2 x 2 cells: 2 and 6
    expected = np.stack([x[:, :, r, c] for r in (2, 6) for c in (2, 6)], axis=1)
    np.testing.assert_array_equal(positions, expected)


def test_sizes_are_maxima_never_upsampling():
    conv = nn.Conv2d(1, 2, 1)
    small = torch.randn(3, 2, 3, 3)
    assert reduce_output(conv, small, "avg4").shape == (3, 2 * 9)
    assert reduce_output(conv, small, "pos8").shape == (3, 9, 2)
    dense = nn.Linear(4, 6)
    assert reduce_output(dense, torch.randn(3, 6), "avg4").shape == (3, 6)


def test_sequences_become_one_vector_per_sample():
    lstm = nn.LSTM(4, 5)  # (T, N, H) output: batch second
    out = lstm(torch.randn(7, 2, 4))
    sequence = out[0].detach().numpy()  # (7, 2, 5)
    reduced = reduce_output(lstm, out, "gap").numpy()
    np.testing.assert_allclose(reduced, sequence.mean(0), rtol=1e-5)


@pytest.mark.parametrize("text", ["avg0", "bilinear4", "pos0", "avg", ""])
def test_bad_reductions(text):
    with pytest.raises(LatentsError, match="reduction"):
        Reduction.parse(text)


class Backwards(nn.Module):
    """Registration order differs from forward order; dropout and BatchNorm test eval mode."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(4 * 2 * 2, 3)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        x = self.drop(torch.relu(self.norm(self.conv(x))))
        return self.head(nn.functional.adaptive_avg_pool2d(x, 2).flatten(1))


def data(n=20, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 1, 6, 6, generator=generator), torch.arange(n) % 3)


def test_extraction_files_manifest_and_values(tmp_path):
    torch.manual_seed(0)
    model = Backwards()
    model.train()
    running = model.norm.running_mean.clone()
    train, test = data(20, 0), data(9, 1)
    found = extract_latents(model, {"train": train, "test": test}, tmp_path, run="r1",
                            reductions=["avg2", "gap"], batch_size=8, progress=False)  # fmt: skip
    assert model.training  # mode restored
    assert torch.equal(model.norm.running_mean, running)  # eval mode: statistics untouched
    manifest = LatentManifest.read(manifest_path(tmp_path, "r1", "avg2"))
    assert [(layer.name, layer.index) for layer in manifest.layers] == [("conv", 0), ("head", 1)]
    conv = manifest.layer("conv")
    assert conv.output_shape == (4, 6, 6) and conv.features == 4 * 2 * 2
    assert conv.files["train"].file == "r1__conv__avg2__train.npy"
    assert conv.files["test"].file == "r1__conv__avg2__test.npy"
    # values: the conv output of every test image, computed here without hooks, in eval mode
    model.eval()
    with torch.no_grad():
        inputs = torch.stack([test[i][0] for i in range(len(test))])
        expected = block_means(model.conv(inputs).numpy(), 2).reshape(len(test), -1)
        logits = model(inputs)
    np.testing.assert_allclose(manifest.features("conv", "test"), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(manifest.labels("test"), np.arange(9) % 3)
    accuracy = float((logits.argmax(1) == torch.arange(9) % 3).float().mean())
    assert manifest.model_accuracy("test") == pytest.approx(accuracy)
    path = tmp_path / conv.files["test"].file
    assert conv.files["test"].sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert isinstance(manifest.features("conv", "train"), np.memmap)
    assert found["gap"].features("conv", "train").shape == (20, 4)
    # deterministic (dropout off): a second extraction gives identical bytes
    again = extract_latents(model, {"train": train, "test": test}, tmp_path / "b", run="r1",
                            reductions=["avg2"], batch_size=5, progress=False)  # fmt: skip
    assert again["avg2"].layer("conv").files["train"].sha256 == conv.files["train"].sha256


def test_two_runs_share_a_folder_without_collisions(tmp_path):
    for run in ("a", "b"):
        extract_latents(Backwards(), {"train": data(), "test": data()}, tmp_path, run=run,
                        progress=False)  # fmt: skip
    a = LatentManifest.read(manifest_path(tmp_path, "a", "avg4"))
    b = LatentManifest.read(manifest_path(tmp_path, "b", "avg4"))
    a.check_files()
    b.check_files()
    assert {f.file for layer in a.layers for f in layer.files.values()}.isdisjoint(
        {f.file for layer in b.layers for f in layer.files.values()}
    )


class Failing(Dataset):
    def __init__(self, n, fail_at):
        self.inner, self.fail_at = data(n), fail_at

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, index):
        if index == self.fail_at:
            raise RuntimeError("disk gone")
        return self.inner[index]


def test_a_crash_leaves_no_manifest_and_no_files(tmp_path):
    with pytest.raises(RuntimeError, match="disk gone"):
        extract_latents(Backwards(), {"train": Failing(20, 13)}, tmp_path, batch_size=4,
                        progress=False)  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_file_is_detected(tmp_path):
    found = extract_latents(Backwards(), {"train": data()}, tmp_path, progress=False)["avg4"]
    path = tmp_path / found.layer("conv").files["train"].file
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(LatentsError, match="damaged"):
        LatentManifest.read(found.path).check_files()


def test_shared_module_is_refused(tmp_path):
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(self.fc(x))

    dataset = TensorDataset(torch.randn(6, 4), torch.arange(6) % 2)
    with pytest.raises(LatentsError, match="ran 2 times"):
        extract_latents(Twice(), {"train": dataset}, tmp_path, progress=False)
    assert not any(tmp_path.glob("*.manifest.json"))


def test_layer_filter_and_manifest_json(tmp_path):
    found = extract_latents(Backwards(), {"train": data()}, tmp_path, layers=["he*"],
                            progress=False)["avg4"]  # fmt: skip
    assert [layer.name for layer in found.layers] == ["head"]
    raw = json.loads(found.path.read_text())
    assert raw["format"] == "layerscope-latents-1" and raw["reduction"] == "avg4"
    with pytest.raises(LatentsError, match="matches none"):
        extract_latents(Backwards(), {"train": data()}, tmp_path, layers=["nope"], progress=False)


def test_each_module_gets_its_own_training_flag_back(tmp_path):
    model = Backwards().train()
    model.norm.eval()  # a frozen BatchNorm inside a model that trains
    running = model.norm.running_mean.clone()
    extract_latents(model, {"train": data()}, tmp_path, progress=False)
    flags = {name: module.training for name, module in model.named_modules()}
    assert flags == {"": True, "head": True, "conv": True, "norm": False, "drop": True}
    assert torch.equal(model.norm.running_mean, running)


def hooks_left(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.mark.parametrize("options", [{"batch_size": 0}, {"num_workers": -1}])
def test_bad_loader_options_raise_before_any_hook_or_file(tmp_path, options):
    model = Backwards()
    with pytest.raises(LatentsError, match=next(iter(options))):
        extract_latents(model, {"train": data()}, tmp_path, progress=False, **options)
    assert hooks_left(model) == 0
    assert list(tmp_path.iterdir()) == []


def test_a_failing_loader_leaves_no_hook(tmp_path, monkeypatch):
    import layerscope.probes.latents as latents

    def broken(*args, **kwargs):
        raise RuntimeError("no loader")

    monkeypatch.setattr(latents, "DataLoader", broken)
    model = Backwards()
    with pytest.raises(RuntimeError, match="no loader"):
        extract_latents(model, {"train": data()}, tmp_path, progress=False)
    assert hooks_left(model) == 0


def test_a_failing_second_split_leaves_no_file_and_no_hook(tmp_path):
    model = Backwards()
    with pytest.raises(RuntimeError, match="disk gone"):
        extract_latents(model, {"train": data(), "test": Failing(9, 5)}, tmp_path,
                        batch_size=4, progress=False)  # fmt: skip
    assert hooks_left(model) == 0
    assert list(tmp_path.iterdir()) == []  # the finished train split's files are gone too


def test_a_failed_rerun_keeps_the_previous_extraction_whole(tmp_path):
    model = Backwards()
    first = extract_latents(model, {"train": data(), "test": data(9, 1)}, tmp_path,
                            progress=False)["avg4"]  # fmt: skip
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    torch.nn.init.ones_(model.conv.weight)  # the rerun would write other values
    with pytest.raises(RuntimeError, match="disk gone"):
        extract_latents(model, {"train": data(), "test": Failing(9, 5)}, tmp_path,
                        batch_size=4, progress=False)  # fmt: skip
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before
    LatentManifest.read(first.path).check_files()


def test_full_and_pos_keep_a_layer_output_that_an_inplace_op_overwrites_next(tmp_path):
    # "full" is a view of the layer's output and "pos" an index of it; an in-place ReLU runs
    # right after the hook, so the stored values must be copied inside the hook, pre-ReLU.
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(inplace=True), nn.Flatten(),
                          nn.Linear(3 * 6 * 6, 3))  # fmt: skip
    test = data(7, 2)
    found = extract_latents(model, {"test": test}, tmp_path, run="r", reductions=["full", "pos"],
                            include=[nn.Conv2d], batch_size=4, progress=False)  # fmt: skip
    with torch.no_grad():
        expected = model[0](torch.stack([test[i][0] for i in range(len(test))])).numpy()
    assert (expected < 0).any()  # the ReLU would have changed them
    stored = found["full"].features("0", "test")
    np.testing.assert_allclose(stored, expected.reshape(7, -1), rtol=1e-6, atol=1e-7)
    positions = np.asarray(found["pos"].features("0", "test"))  # (positions, N, C), all 36
    by_position = expected.reshape(7, 3, 36).transpose(2, 0, 1)  # row-major positions
    np.testing.assert_allclose(positions, by_position, rtol=1e-6, atol=1e-7)
