"""The Lightning callback on the real framework: digits, 2 epochs, compared with numpy."""

from __future__ import annotations

import copy
import sys

import lightning as L
import numpy as np
import pytest
import torch
from numpy_reference import as_samples, capture, saturation
from torch import nn
from torch.utils.data import DataLoader

import layerscope as ls
from layerscope.errors import MissingDependencyError
from layerscope.integrations.lightning import LayerscopeCallback

LAYERS = ("net.0", "net.3", "net.5")


class DigitsModule(L.LightningModule):
    def __init__(self, fail_at_epoch: int | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(
            nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Flatten(),
            nn.Linear(6 * 8 * 8, 24), nn.ReLU(), nn.Linear(24, 10),
        )  # fmt: skip
        self.fail_at_epoch = fail_at_epoch

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, index):
        if self.current_epoch == self.fail_at_epoch:
            raise RuntimeError("planned failure")
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, index):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def test_step(self, batch, index):
        x, y = batch
        self.log("test_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


class Witness(L.Callback):
    """What the framework did, seen independently: hook order, weights before each validation."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.weights: dict[int, dict] = {}

    def on_validation_epoch_start(self, trainer, module):
        if not trainer.sanity_checking:
            self.weights[trainer.current_epoch] = copy.deepcopy(module.state_dict())

    def on_validation_epoch_end(self, trainer, module):
        self.events.append(("validation_epoch_end", trainer.current_epoch, trainer.sanity_checking))

    def on_train_epoch_end(self, trainer, module):
        self.events.append(("train_epoch_end", trainer.current_epoch))


def make_trainer(framework, callbacks, **kwargs):
    kwargs = {"devices": 1, **kwargs}
    return framework.Trainer(
        max_epochs=2, callbacks=callbacks, accelerator="cpu", logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        **kwargs,
    )  # fmt: skip


@pytest.fixture(scope="module")
def digits():
    splits = ls.load_dataset("digits", resolution=8, augment=False)
    return splits.train, splits.test


@pytest.fixture(scope="module")
def fitted(digits, tmp_path_factory):
    train, test = digits
    run_dir = tmp_path_factory.mktemp("lightning") / "run"
    module, witness, callback = DigitsModule(), Witness(), LayerscopeCallback(run_dir)
    modules = dict(module.named_modules())
    trainer = None

    def training_batch():  # the hand-written view of the same training batches
        return module.training and trainer is not None and not trainer.sanity_checking

    train_outputs, handles = capture({n: modules[n] for n in LAYERS}, training_batch)
    per_epoch: dict[int, dict[str, list]] = {}

    class SplitByEpoch(L.Callback):
        def on_train_epoch_end(self, trainer, module):
            per_epoch[trainer.current_epoch] = {n: list(v) for n, v in train_outputs.items()}
            for v in train_outputs.values():
                v.clear()

    trainer = make_trainer(L, [callback, witness, SplitByEpoch()], num_sanity_val_steps=2)
    generator = torch.Generator().manual_seed(0)
    trainer.fit(module, DataLoader(train, batch_size=100, shuffle=True, generator=generator),
                DataLoader(test, batch_size=50))  # fmt: skip
    for handle in handles:
        handle.remove()
    return run_dir, module, witness, callback, per_epoch, trainer


def layer_records(frame):
    return frame[frame.layer.notna() & ~frame.phase.isin(["weights"])]


def test_hook_order_is_the_one_the_callback_handles(fitted):
    _, _, witness, *_ = fitted
    assert witness.events == [
        ("validation_epoch_end", 0, True),  # the sanity check
        ("validation_epoch_end", 0, False),  # validation ends before the training epoch
        ("train_epoch_end", 0),
        ("validation_epoch_end", 1, False),
        ("train_epoch_end", 1),
    ]


def test_each_epoch_has_train_and_eval_under_current_epoch(fitted, digits):
    run_dir, *_ = fitted
    frame = ls.load(run_dir)
    samples = layer_records(frame).query("statistic == 'samples'")
    got = samples.groupby(["epoch", "phase", "layer"]).value.sum().to_dict()
    train, test = len(digits[0]), len(digits[1])
    expected = {}
    for epoch in (0, 1):
        for phase, n in (("train", train), ("eval", test)):
            expected |= {(epoch, phase, "net.0"): n * 64, (epoch, phase, "net.3"): n,
                         (epoch, phase, "net.5"): n}  # fmt: skip
    assert got == expected  # eval == 360 exactly: the 2 sanity batches are not in it


def test_saturation_equals_a_hand_written_loop_over_the_same_batches(fitted, digits):
    run_dir, module, witness, _, per_epoch, _ = fitted
    frame = ls.load(run_dir).query("statistic == 'saturation'")
    twin = copy.deepcopy(module).eval()
    modules = dict(twin.named_modules())
    for epoch in (0, 1):
        # eval: the weights each validation ran with, over the same 50-image batches
        twin.load_state_dict(witness.weights[epoch])
        outputs, handles = capture({n: modules[n] for n in LAYERS}, lambda: True)
        with torch.no_grad():
            for x, _ in DataLoader(digits[1], batch_size=50):
                twin(x)
        for handle in handles:
            handle.remove()
        for name in LAYERS:
            for phase, arrays in (("eval", outputs[name]), ("train", per_epoch[epoch][name])):
                rows = (frame.epoch == epoch) & (frame.phase == phase) & (frame.layer == name)
                assert frame[rows].value.tolist() == [saturation(np.concatenate(arrays))], (
                    epoch,
                    name,
                )


def test_callback_metrics_become_epoch_scalars(fitted, digits):
    run_dir, module, witness, *_ = fitted
    frame = ls.load(run_dir).query("phase == 'epoch'")
    assert sorted(frame.epoch.unique()) == [0, 1]
    assert {"train_loss", "val_loss"} <= set(frame.statistic)
    twin = copy.deepcopy(module).eval()
    for epoch in (0, 1):
        twin.load_state_dict(witness.weights[epoch])
        x = torch.stack([digits[1][i][0] for i in range(len(digits[1]))])
        y = torch.tensor([digits[1][i][1] for i in range(len(digits[1]))])
        with torch.no_grad():
            loss = nn.functional.cross_entropy(twin(x), y).item()
        logged = frame.query("epoch == @epoch and statistic == 'val_loss'").value.item()
        assert logged == pytest.approx(loss, rel=1e-5)


def test_no_hook_is_left_and_test_goes_under_current_epoch(fitted, digits):
    run_dir, module, *_, trainer = fitted
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in module.modules())
    assert trainer.current_epoch == 2  # the number of epochs fitted
    trainer.test(module, DataLoader(digits[1], batch_size=50), verbose=False)
    frame = ls.load(run_dir).query("phase == 'test'")
    assert frame.epoch.unique().tolist() == [2]
    assert frame.query("statistic == 'samples' and layer == 'net.3'").value.tolist() == [360]
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in module.modules())


def test_an_exception_detaches_and_keeps_finished_epochs(digits, tmp_path):
    train, test = digits
    module = DigitsModule(fail_at_epoch=1)
    trainer = make_trainer(L, [LayerscopeCallback(tmp_path / "run")], limit_train_batches=3,
                           limit_val_batches=2)  # fmt: skip
    with pytest.raises(RuntimeError, match="planned failure"):
        trainer.fit(module, DataLoader(train, batch_size=50), DataLoader(test, batch_size=50))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in module.modules())
    frame = ls.load(tmp_path / "run")
    assert sorted(set(zip(frame.epoch, frame.phase, strict=True))) == [
        (0, "epoch"), (0, "eval"), (0, "train"), (0, "weights")]  # fmt: skip


def test_validation_twice_an_epoch_feeds_one_eval_phase(digits):
    train, test = digits
    callback = LayerscopeCallback(weights=False)
    trainer = make_trainer(L, [callback], limit_train_batches=4, limit_val_batches=2,
                           val_check_interval=2, num_sanity_val_steps=0)  # fmt: skip
    trainer.fit(DigitsModule(), DataLoader(train, batch_size=25), DataLoader(test, batch_size=25))
    samples = callback.dataframe().query("statistic == 'samples' and layer == 'net.3'")
    got = samples.groupby(["epoch", "phase"]).value.sum().to_dict()
    assert got == {(0, "train"): 100, (0, "eval"): 100, (1, "train"): 100, (1, "eval"): 100}


def test_pytorch_lightning_trainer(digits):
    import pytorch_lightning as pl

    class Module(pl.LightningModule):
        training_step = DigitsModule.training_step
        validation_step = DigitsModule.validation_step
        configure_optimizers = DigitsModule.configure_optimizers
        forward = DigitsModule.forward

        def __init__(self):
            super().__init__()
            self.net = DigitsModule().net
            self.fail_at_epoch = None

    callback = LayerscopeCallback()
    assert isinstance(callback, pl.Callback) and isinstance(callback, L.Callback)
    trainer = make_trainer(pl, [callback], limit_train_batches=2, limit_val_batches=2)
    train, test = digits
    trainer.fit(Module(), DataLoader(train, batch_size=30), DataLoader(test, batch_size=20))
    samples = callback.dataframe().query("statistic == 'samples' and layer == 'net.5'")
    got = samples.groupby(["epoch", "phase"]).value.sum().to_dict()
    assert got == {(0, "train"): 60, (0, "eval"): 40, (1, "train"): 60, (1, "eval"): 40}


def test_missing_lightning_names_the_extra(monkeypatch):
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setattr(sys.modules["layerscope.integrations.frameworks"], "_JOINED", {})
    with pytest.raises(MissingDependencyError, match=r"pip install 'layerscope\[lightning\]'"):
        LayerscopeCallback()


def test_options_are_checked_when_the_callback_is_made():
    with pytest.raises(ValueError, match="delta"):
        LayerscopeCallback(delta=2.0)


def test_as_samples_layout():
    assert as_samples(torch.zeros(2, 3, 4, 5)).shape == (40, 3)
