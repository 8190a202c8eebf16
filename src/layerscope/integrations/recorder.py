"""What the framework callbacks share: two Trackers on one model, driven by a framework's hooks.

A framework decides when its loops run; the callbacks only learn about it from hooks, and those
do not come in the order of a hand-written loop (Lightning ends the validation epoch before the
training epoch; the Hugging Face Trainer ends the epoch before evaluating it, and with
``eval_strategy="steps"`` evaluates in the middle of an epoch and then trains on). A single
Tracker requires the phases of an epoch one after another, so :class:`EpochRecorder` keeps two
on the same model, writing into the same sinks:

- ``training``: phase ``"train"``, the weight statistics and the epoch's scalars, and the run
  folder's ``run.json`` and ``layers.json``;
- ``evaluation``: the evaluation phases (``"eval"``, ``"test"``); every evaluation in an epoch
  feeds that epoch's statistics, as every training batch does.

Under ``torch.distributed`` (a process group initialised, as Lightning's ``ddp`` strategies and
``torchrun`` do) both trackers merge the ranks' statistics at every epoch end and only rank 0
writes (:mod:`layerscope.tracking.distributed`); every rank must then end the same epochs,
which the framework's hooks, called on every rank, do.

Nothing is recorded outside a *window* opened by :meth:`EpochRecorder.record` (a phase and the
0-based epoch it belongs to): forward passes of a sanity check, a model summary or the user's
own code are not. Both trackers are paused otherwise.

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> recorder = EpochRecorder(model, options=TrackerOptions(weights=False))
    >>> for epoch in range(2):
    ...     recorder.record("train", epoch); _ = model(torch.randn(16, 4))
    ...     recorder.record("eval", epoch); _ = model(torch.randn(8, 4))
    ...     recorder.record("train", epoch); _ = model(torch.randn(16, 4))   # training goes on
    ...     recorder.pause(); _ = model(torch.randn(100, 4))                  # not recorded
    ...     recorder.end_epoch(epoch, loss=1.0)
    >>> recorder.close()
    >>> df = recorder.dataframe()
    >>> df[df.statistic == "samples"].groupby(["epoch", "phase"]).value.max().to_dict()
    {(0, 'eval'): 8.0, (0, 'train'): 32.0, (1, 'eval'): 8.0, (1, 'train'): 32.0}
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from layerscope.errors import PhaseError
from layerscope.store.records import Record
from layerscope.store.runs import records_frame
from layerscope.store.sinks import close_all, make_sink
from layerscope.tracking.distributed import any_rank, is_writer, world
from layerscope.tracking.extensions import TrackerCallback
from layerscope.tracking.options import TrackerOptions
from layerscope.tracking.phases import TRAIN
from layerscope.tracking.tracker import Tracker

__all__ = ["EpochRecorder", "keep_settings", "numeric_scalars"]


def _pending(tracker: Tracker) -> bool:
    """Whether ``tracker`` recorded anything since its last ``end_epoch()`` (a running or
    written phase): its phase clock knows; ``end_epoch()`` with nothing pending is an error."""
    return tracker._clock.pending


class _Collect:
    """A Tracker callback that keeps the records handed to it (for the user's callbacks)."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def on_epoch_end(self, tracker: Tracker, records: Sequence[Record]) -> None:
        self.records.extend(records)

    def on_close(self, tracker: Tracker, records: Sequence[Record]) -> None:
        self.records.extend(records)


class EpochRecorder:
    """A training and an evaluation :class:`~layerscope.Tracker` on ``model``, sharing sinks.

    Args:
        model: the module to record (its recordable layers, by module path).
        run_dir: the run folder (``None``: records in memory only, :meth:`dataframe`).
        run: the run's name in the records (default: ``run_dir``'s name).
        options: :class:`~layerscope.TrackerOptions` for both trackers (the evaluation one
            records no weights).
        callbacks: Tracker callbacks (e.g. :class:`layerscope.report.ReportWriter`), told at every
            epoch end about the records of both trackers.
        start_epoch: the first epoch number (the run folder must hold none from there on).
        metadata: facts stored in ``run.json``.
    """

    def __init__(
        self,
        model: nn.Module,
        run_dir: str | Path | None = None,
        *,
        run: str | None = None,
        options: TrackerOptions | None = None,
        callbacks: Sequence[TrackerCallback] = (),
        start_epoch: int = 0,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        options = options if options is not None else TrackerOptions()
        self._world = world(None)  # merged over the ranks when a process group exists
        self.writer = is_writer(self._world)  # rank 0 alone writes
        names = options.sinks
        if names is None:
            names = ("sqlite",) if run_dir is not None else ()
        if run_dir is not None and self.writer:
            Path(run_dir).mkdir(parents=True, exist_ok=True)
        self._sinks = [make_sink(spec, run_dir) for spec in names] if self.writer else []
        shared = dataclasses.replace(options, sinks=tuple(self._sinks))
        self._callbacks = list(callbacks)
        self._collected = _Collect()
        self._pauses: dict[int, contextlib.ExitStack] = {}
        self._window: tuple[str, int] | None = None
        self._window_stack = contextlib.ExitStack()
        self.training: Tracker | None = None
        self.evaluation: Tracker | None = None
        try:
            self.training = Tracker(model, run_dir, run=run, options=shared,
                                    callbacks=[self._collected], start_epoch=start_epoch,
                                    metadata=metadata)  # fmt: skip
            self.evaluation = Tracker(model, None, run=self.training.run,
                                      options=dataclasses.replace(shared, weights=False),
                                      callbacks=[self._collected], start_epoch=start_epoch)  # fmt: skip
            for tracker in self._trackers:
                self._pause(tracker)
        except BaseException:
            self.abort()
            raise

    @property
    def _trackers(self) -> list[Tracker]:
        return [t for t in (self.evaluation, self.training) if t is not None]

    @property
    def closed(self) -> bool:
        return self.training is None

    # ------------------------------------------------------------------ windows
    def _pause(self, tracker: Tracker) -> None:
        if id(tracker) not in self._pauses:
            stack = contextlib.ExitStack()
            stack.enter_context(tracker.paused())
            self._pauses[id(tracker)] = stack

    def _resume(self, tracker: Tracker) -> None:
        stack = self._pauses.pop(id(tracker), None)
        if stack is not None:
            stack.close()

    def record(self, phase: str, epoch: int) -> None:
        """Record the next forward passes as ``phase`` (``"train"``, ``"eval"``, ``"test"``, ...)
        of the 0-based ``epoch``, until the next :meth:`record` or :meth:`pause`."""
        if self._window == (phase, epoch):
            return
        self.pause()
        tracker = self.training if phase == TRAIN else self.evaluation
        if tracker.epoch != epoch:
            if _pending(tracker):  # what it holds belongs to an earlier epoch: write it there
                if self._world is not None:  # ending it takes all ranks: refuse, don't hang
                    raise PhaseError(
                        f"{phase!r} batches of epoch {epoch} begin while those of epoch "
                        f"{tracker.epoch} were not written: the framework's hooks came in an "
                        f"order this callback does not know (please report it)"
                    )
                tracker.end_epoch()
            tracker.begin_epoch(epoch)
        self._window_stack.enter_context(tracker.phase(phase))
        self._resume(tracker)
        self._window = (phase, epoch)

    def pause(self) -> None:
        """Record nothing until the next :meth:`record`."""
        self._window_stack.close()
        for tracker in self._trackers:
            self._pause(tracker)
        self._window = None

    @property
    def window(self) -> tuple[str, int] | None:
        """The phase and epoch being recorded now, or ``None`` while paused."""
        return self._window

    # ------------------------------------------------------------------ epochs
    def end_epoch(self, epoch: int, **scalars: float) -> None:
        """Write what both trackers hold for ``epoch`` and the epoch's ``scalars``; pause."""
        self.pause()
        # Under torch.distributed every rank ends the same epochs (each end merges the ranks).
        if any_rank(self._world, _pending(self.evaluation)):
            self.evaluation.end_epoch()
        training = self.training
        if training.epoch != epoch and not _pending(training):
            training.begin_epoch(epoch)
        if any_rank(self._world, _pending(training) or bool(scalars)):
            training.end_epoch(**scalars)
        new, self._collected.records = self._collected.records, []
        for callback in self._callbacks if self.writer else ():
            callback.on_epoch_end(training, new)

    def close(self) -> None:
        """Write a pending epoch, remove every hook, tell the callbacks, close the sinks."""
        if self.closed:
            return
        self.pause()
        if any_rank(self._world, _pending(self.evaluation) or _pending(self.training)):
            self.end_epoch(max(self.training.epoch, self.evaluation.epoch))
        training = self.training
        try:
            for tracker in self._trackers:
                self._resume(tracker)
                tracker.close()
            new, self._collected.records = self._collected.records, []
            for callback in self._callbacks if self.writer else ():
                callback.on_close(training, new)
        finally:
            self._records = training.records + self.evaluation.records
            self._drop()

    def abort(self, error: BaseException | None = None) -> None:
        """Remove every hook and close the sinks after an error; the phases in progress are
        dropped, finished ones stay written."""
        with contextlib.suppress(Exception):
            self._window_stack.close()
        trackers = self._trackers
        error = error if error is not None else RuntimeError("aborted")
        try:
            for tracker in trackers:
                tracker.__exit__(type(error), error, error.__traceback__)
        finally:
            self._records = [r for t in trackers for r in t.records]
            self._drop()

    def _drop(self) -> None:
        self._pauses.clear()
        self._window = None
        close_all(self._sinks)
        self.training = self.evaluation = None

    def dataframe(self) -> pd.DataFrame:
        """Every record written so far, as a tidy DataFrame."""
        records = self._records if self.closed else (
            self.training.records + self.evaluation.records)  # fmt: skip
        return records_frame(sorted(records, key=lambda r: r.epoch))


def keep_settings(callback: Any, run_dir, run, options, callbacks, metadata, option_values) -> None:
    """Store a framework callback's Tracker settings on it (``run_dir``, ``run``, ``options``
    built from ``option_values``, ``callbacks``, ``metadata``): both callbacks take the same.

    Example:
        >>> class Holder: ...
        >>> holder = Holder()
        >>> keep_settings(holder, "runs/a", None, None, (), None, {"delta": 0.9})
        >>> holder.run_dir.as_posix(), holder.options.delta
        ('runs/a', 0.9)
    """
    callback.run_dir = Path(run_dir) if run_dir is not None else None
    callback.run = run
    callback.options = TrackerOptions.create(options, **option_values)
    callback.callbacks = list(callbacks)
    callback.metadata = dict(metadata or {})


def numeric_scalars(values: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers among ``values`` (numbers, one-element tensors), as floats.

    Frameworks log strings, lists and whole tensors beside the numbers; those are left out.

    Example:
        >>> numeric_scalars({"loss": torch.tensor(0.5), "acc": 1, "name": "x", "v": torch.ones(3)})
        {'loss': 0.5, 'acc': 1.0}
    """
    out = {}
    for name, value in values.items():
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                continue
            value = value.detach().item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            out[str(name)] = float(value)
    return out
