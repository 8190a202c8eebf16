"""The Hugging Face callback on the real Trainer: a tiny BERT built from a config (no download)
on synthetic tokens, 2 epochs, compared with numpy."""

from __future__ import annotations

import copy
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
import transformers.trainer
from numpy_reference import capture, saturation
from torch import nn
from torch.utils.data import DataLoader, Dataset
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

import layerscope as ls
from layerscope.errors import MissingDependencyError
from layerscope.integrations.huggingface import LayerscopeCallback

LENGTH, TRAIN, TEST = 8, 64, 32


@pytest.fixture(scope="module", autouse=True)
def _no_datasets_library():
    """pytest puts tests/ on sys.path, so tests/datasets/ reads as a namespace package called
    ``datasets``, which transformers takes for the Hugging Face datasets library (not installed
    here). Tell the Trainer the truth."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(transformers.trainer, "is_datasets_available", lambda: False)
        yield


LAYERS = ("bert.encoder.layer.0.attention.self.query", "bert.pooler.dense", "classifier")


class Tokens(Dataset):
    """Random token ids; the label says whether the first token is in the upper half."""

    def __init__(self, n: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, 50, (n, LENGTH), generator=generator)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(LENGTH, dtype=torch.long),
                "labels": (self.ids[i, 0] > 25).long()}  # fmt: skip


def tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16, num_labels=2)  # fmt: skip
    return BertForSequenceClassification(config)


def train(model, callbacks, folder, **arguments) -> Trainer:
    arguments = {"eval_strategy": "epoch", **arguments}
    args = TrainingArguments(
        str(folder), num_train_epochs=2, per_device_train_batch_size=16,
        per_device_eval_batch_size=8, logging_strategy="steps", logging_steps=1,
        save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True, seed=0, **arguments,
    )  # fmt: skip
    trainer = Trainer(model, args, train_dataset=Tokens(TRAIN, 0), eval_dataset=Tokens(TEST, 1),
                      callbacks=callbacks)  # fmt: skip
    trainer.train()
    return trainer


class Witness(TrainerCallback):
    """The Trainer's event order, the weights each evaluation ran with, training outputs."""

    def __init__(self, model) -> None:
        self.events: list[tuple] = []
        self.weights: list[dict] = []
        self.epoch = -1
        modules = dict(model.named_modules())
        self.outputs, self.handles = capture({n: modules[n] for n in LAYERS},
                                             lambda: model.training)  # fmt: skip
        self.train_outputs: dict[int, dict] = {}

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.epoch += 1

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        self.events.append(("epoch_end", state.epoch))
        self.weights.append(copy.deepcopy(model.state_dict()))
        self.train_outputs[self.epoch] = {n: list(v) for n, v in self.outputs.items()}
        for v in self.outputs.values():
            v.clear()

    def on_evaluate(self, args, state, control, **kwargs):
        self.events.append(("evaluate", state.epoch))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("huggingface")
    model = tiny_bert()
    witness = Witness(model)
    trainer = train(model, [LayerscopeCallback(folder / "run"), witness], folder / "out")
    for handle in witness.handles:
        handle.remove()
    return folder / "run", model, witness, trainer


def samples_by(frame, layer):
    rows = frame[(frame.statistic == "samples") & (frame.layer == layer)]
    return rows.groupby(["epoch", "phase"]).value.sum().to_dict()


def test_the_trainer_ends_an_epoch_before_evaluating_it(trained):
    _, _, witness, _ = trained
    assert witness.events == [("epoch_end", 1.0), ("evaluate", 1.0),
                              ("epoch_end", 2.0), ("evaluate", 2.0)]  # fmt: skip


def test_each_epoch_has_train_and_eval_under_a_0_based_integer_epoch(trained):
    run_dir, model, _, _ = trained
    frame = ls.load(run_dir)
    assert samples_by(frame, "classifier") == {(0, "train"): TRAIN, (0, "eval"): TEST,
                                               (1, "train"): TRAIN, (1, "eval"): TEST}  # fmt: skip
    tokens = {(0, "train"): TRAIN * LENGTH, (0, "eval"): TEST * LENGTH,
              (1, "train"): TRAIN * LENGTH, (1, "eval"): TEST * LENGTH}  # fmt: skip
    assert samples_by(frame, LAYERS[0]) == tokens  # every token of every sequence
    linear = {name for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    assert set(frame.layer.dropna()) == linear  # named by module path


def test_saturation_equals_a_hand_written_loop_over_the_same_batches(trained):
    run_dir, model, witness, _ = trained
    frame = ls.load(run_dir).query("statistic == 'saturation'")
    twin = copy.deepcopy(model).eval()
    modules = dict(twin.named_modules())
    for epoch in (0, 1):
        twin.load_state_dict(witness.weights[epoch])
        outputs, handles = capture({n: modules[n] for n in LAYERS}, lambda: True)
        with torch.no_grad():
            for batch in DataLoader(Tokens(TEST, 1), batch_size=8):
                twin(**batch)
        for handle in handles:
            handle.remove()
        for name in LAYERS:
            for phase, arrays in (("eval", outputs[name]),
                                  ("train", witness.train_outputs[epoch][name])):  # fmt: skip
                rows = (frame.epoch == epoch) & (frame.phase == phase) & (frame.layer == name)
                assert frame[rows].value.tolist() == [saturation(np.concatenate(arrays))]


def test_log_history_becomes_the_epoch_scalars(trained):
    run_dir, _, _, trainer = trained
    frame = ls.load(run_dir).query("phase == 'epoch'")
    history = trainer.state.log_history
    for epoch in (0, 1):
        evaluation = [e for e in history if "eval_loss" in e and e["epoch"] == epoch + 1.0]
        losses = [e["loss"] for e in history if "loss" in e and epoch < e["epoch"] <= epoch + 1]
        rows = frame[frame.epoch == epoch].set_index("statistic").value
        assert rows["eval_loss"] == pytest.approx(evaluation[0]["eval_loss"])
        assert rows["loss"] == pytest.approx(losses[-1])  # the epoch's last logged value
    assert "train_loss" in set(frame[frame.epoch == 1].statistic)


def test_steps_strategy_feeds_every_evaluation_of_an_epoch_into_it(tmp_path):
    callback = LayerscopeCallback(weights=False)
    train(tiny_bert(), [callback], tmp_path, eval_strategy="steps", eval_steps=2)
    # 4 steps an epoch, evaluations after steps 2 and 4 of each: two passes over the 32 texts
    assert samples_by(callback.dataframe(), "classifier") == {
        (0, "train"): TRAIN,
        (0, "eval"): 2 * TEST,
        (1, "train"): TRAIN,
        (1, "eval"): 2 * TEST,
    }


def test_analyze_unpacks_the_dict_batches_of_the_trained_model(trained):
    run_dir, model, *_ = trained
    table = ls.analyze(model, DataLoader(Tokens(TEST, 1), batch_size=8))
    frame = ls.load(run_dir).query("statistic == 'saturation' and epoch == 1 and phase == 'eval'")
    recorded = frame.set_index("layer").value
    assert int(table.loc["classifier", "samples"]) == TEST
    for name in LAYERS:  # the last evaluation ran with the final weights
        assert table.loc[name, "saturation"] == recorded[name]


def test_an_error_in_training_leaves_no_hook_with_the_context_manager(tmp_path):
    class Fail(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise RuntimeError("planned failure")

    model = tiny_bert()
    with pytest.raises(RuntimeError, match="planned failure"):
        with LayerscopeCallback(tmp_path / "run") as callback:
            train(model, [callback, Fail()], tmp_path / "out")
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert callback.recorder is None


def test_missing_transformers_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers.trainer_callback", None)
    monkeypatch.setattr(sys.modules["layerscope.integrations.frameworks"], "_JOINED", {})
    with pytest.raises(MissingDependencyError, match=r"pip install 'layerscope\[huggingface\]'"):
        LayerscopeCallback()
