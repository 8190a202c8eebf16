"""EpochRecorder without a framework: windows, epochs, shared sinks, callbacks, errors."""

from __future__ import annotations

import numpy as np
import torch
from numpy_reference import saturation
from torch import nn

import layerscope as ls
from layerscope.integrations import EpochRecorder


class Seen:
    def __init__(self) -> None:
        self.calls: list[tuple[str, set]] = []

    def on_epoch_end(self, tracker, records):
        self.calls.append(("epoch_end", {(r.epoch, r.phase) for r in records}))

    def on_close(self, tracker, records):
        self.calls.append(("close", {(r.epoch, r.phase) for r in records}))


def test_interleaved_phases_go_to_their_epoch_and_the_store_once(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    seen = Seen()
    recorder = EpochRecorder(model, tmp_path / "run", callbacks=[seen])
    batches = {("train", 0): [], ("eval", 0): [], ("train", 1): [], ("eval", 1): []}
    with torch.no_grad():
        for epoch in (0, 1):
            for phase in ("train", "eval", "train", "eval", "train"):  # interleaved, as HF steps
                x = torch.randn(11, 5)
                recorder.record(phase, epoch)
                model(x)
                first = nn.functional.linear(x, model[0].weight, model[0].bias)  # no hooks
                batches[(phase, epoch)].append(first.double().numpy())
            recorder.pause()
            model(torch.randn(50, 5))  # not recorded
            recorder.end_epoch(epoch, loss=0.5 + epoch)
    recorder.close()
    frame = ls.load(tmp_path / "run")
    assert len(frame) == len(recorder.dataframe())  # one store, each record once
    for (phase, epoch), arrays in batches.items():
        rows = frame[(frame.epoch == epoch) & (frame.phase == phase) & (frame.layer == "0")]
        values = rows.set_index("statistic").value
        assert values["samples"] == 11 * len(arrays)
        assert values["saturation"] == saturation(np.concatenate(arrays))
    assert frame[frame.statistic == "loss"].value.tolist() == [0.5, 1.5]
    assert seen.calls == [
        ("epoch_end", {(0, "eval"), (0, "train"), (0, "weights"), (0, "epoch")}),
        ("epoch_end", {(1, "eval"), (1, "train"), (1, "weights"), (1, "epoch")}),
        ("close", set()),
    ]
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_nothing_is_recorded_before_a_window_and_abort_removes_the_hooks(tmp_path):
    model = nn.Linear(3, 3)
    recorder = EpochRecorder(model, tmp_path / "run")
    model(torch.randn(4, 3))  # a model summary, say: paused
    recorder.record("eval", 0)
    model(torch.randn(6, 3))
    recorder.abort(RuntimeError("boom"))
    assert not model._forward_hooks and not model._forward_pre_hooks
    assert recorder.closed and recorder.dataframe().empty  # the phase in progress is dropped
    recorder.close()  # safe after abort


def test_an_epoch_left_open_is_written_at_close():
    model = nn.Linear(3, 2)
    recorder = EpochRecorder(model, options=ls.TrackerOptions(weights=False))
    recorder.record("test", 4)
    model(torch.randn(9, 3))
    recorder.close()
    frame = recorder.dataframe()
    assert frame[frame.statistic == "samples"][["epoch", "phase", "value"]].values.tolist() == [
        [4, "test", 9.0]]  # fmt: skip
