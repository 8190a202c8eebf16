"""A PyTorch Lightning callback that records a Tracker while a ``Trainer`` fits (SPEC C14).

::

    import lightning as L                      # or: import pytorch_lightning as L
    from layerscope.integrations.lightning import LayerscopeCallback

    trainer = L.Trainer(max_epochs=10, callbacks=[LayerscopeCallback("runs/lit")])
    trainer.fit(module, train_loader, val_loader)

What is recorded when:

- ``fit``: the callback attaches to the LightningModule when fitting starts and detaches when it
  ends (also after an exception: no hook is left). Training batches are phase ``"train"`` and
  validation batches ``"eval"`` of epoch ``trainer.current_epoch`` (0-based). Lightning ends the
  validation epoch before the training epoch; both go under the same number, written at the end
  of the training epoch together with ``trainer.callback_metrics`` as the epoch's scalars
  (phase ``"epoch"``). The sanity check's validation batches are not recorded, nor is any
  forward pass outside Lightning's loops (a model summary's, your own).
- ``validate`` / ``test`` on their own: phase ``"eval"`` / ``"test"`` under
  ``trainer.current_epoch`` (after a fit of 2 epochs: 2), without weight statistics.

The callback subclasses the ``Callback`` of whichever of ``lightning`` and ``pytorch_lightning``
this process has imported (both, if both are), so it serves either ``Trainer``; if neither is
imported yet it imports ``lightning`` (or ``pytorch_lightning``). Under a distributed strategy
only rank 0 writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from layerscope.errors import MissingDependencyError
from layerscope.integrations.frameworks import imported, joined_class, require
from layerscope.integrations.recorder import EpochRecorder, keep_settings, numeric_scalars
from layerscope.store.runs import records_frame
from layerscope.tracking.extensions import TrackerCallback
from layerscope.tracking.options import TrackerOptions

__all__ = ["LayerscopeCallback"]

#: The two names under which Lightning 2.x is published, each with its own ``Callback``.
PACKAGES = {"lightning": "lightning.pytorch", "pytorch_lightning": "pytorch_lightning"}


def _callback_bases() -> tuple[type, ...]:
    """The ``Callback`` classes of the Lightning packages this process uses (imports one if none)."""
    what = "layerscope.integrations.lightning.LayerscopeCallback"
    bases = [require(module, extra="lightning", what=what).Callback
             for package, module in PACKAGES.items() if imported(package) is not None]  # fmt: skip
    if bases:
        return tuple(bases)
    try:
        return (require("lightning.pytorch", extra="lightning", what=what).Callback,)
    except MissingDependencyError:
        return (require("pytorch_lightning", extra="lightning", what=what).Callback,)


def _restore(state: dict[str, Any]) -> LayerscopeCallback:
    """Unpickle a callback (in a spawned process) onto the Lightning packages imported there."""
    callback = LayerscopeCallback.__new__(LayerscopeCallback)
    callback.__dict__.update(state)
    return callback


def _fitting(trainer: Any) -> bool:
    """Whether ``trainer.fit`` is running (``trainer.state.fn`` is a string enum)."""
    return trainer.state.fn == "fit"


class LayerscopeCallback:
    """Record layer statistics of the LightningModule while a Lightning ``Trainer`` runs.

    Args:
        run_dir: the run folder (``None``: in memory only, see :meth:`dataframe`).
        run: the run's name in the records (default: ``run_dir``'s name).
        options: a :class:`~layerscope.TrackerOptions`; or single options as keywords
            (``LayerscopeCallback("runs/x", delta=0.9, exclude=["head"])``).
        callbacks: Tracker callbacks, e.g. :class:`layerscope.report.ReportWriter`.
        metadata: facts stored in ``run.json``.

    Example:
        >>> callback = LayerscopeCallback(delta=0.9)      # options are checked here
        >>> callback.options.delta
        0.9
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> LayerscopeCallback:
        if cls is LayerscopeCallback:
            cls = joined_class(LayerscopeCallback, _callback_bases())
        return object.__new__(cls)

    def __init__(
        self,
        run_dir: str | Path | None = None,
        *,
        run: str | None = None,
        options: TrackerOptions | None = None,
        callbacks: Sequence[TrackerCallback] = (),
        metadata: Mapping[str, Any] | None = None,
        **option_values: Any,
    ) -> None:
        keep_settings(self, run_dir, run, options, callbacks, metadata, option_values)
        self.recorder: EpochRecorder | None = None
        self._records: list = []
        self._in_train_epoch = False

    def __reduce__(self):
        state = {k: v for k, v in self.__dict__.items() if k != "recorder"}
        return _restore, ({**state, "recorder": None},)

    # ------------------------------------------------------------------ sessions
    def _start(self, trainer: Any, module: Any, *, weights: bool) -> None:
        if self.recorder is not None:
            self._finish()
        options = TrackerOptions.create(self.options, weights=weights and self.options.weights)
        self.recorder = EpochRecorder(
            module,
            self.run_dir,
            run=self.run or (self.run_dir.name if self.run_dir is not None else None),
            options=options,
            callbacks=self.callbacks,
            start_epoch=trainer.current_epoch,
            metadata={"framework": "lightning", **self.metadata},
        )

    def _finish(self) -> None:
        recorder, self.recorder = self.recorder, None
        if recorder is not None:
            try:
                recorder.close()
            finally:
                self._records.append(recorder.dataframe())

    def _end_epoch(self, trainer: Any) -> None:
        self.recorder.end_epoch(trainer.current_epoch, **numeric_scalars(trainer.callback_metrics))

    # ------------------------------------------------------------------ fit
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self._start(trainer, pl_module, weights=True)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._in_train_epoch = True
        self.recorder.record("train", trainer.current_epoch)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._in_train_epoch = False
        self._end_epoch(trainer)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self._finish()

    # ------------------------------------------------------------------ validation and test
    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        if not _fitting(trainer):
            self._start(trainer, pl_module, weights=False)

    def on_validation_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking:
            self.recorder.pause()
        else:
            self.recorder.record("eval", trainer.current_epoch)

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self._in_train_epoch and not trainer.sanity_checking:
            self.recorder.record("train", trainer.current_epoch)  # training goes on
        else:
            self.recorder.pause()

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if not _fitting(trainer):
            self._end_epoch(trainer)
            self._finish()

    def on_test_start(self, trainer: Any, pl_module: Any) -> None:
        self._start(trainer, pl_module, weights=False)

    def on_test_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self.recorder.record("test", trainer.current_epoch)

    def on_test_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self.recorder.pause()

    def on_test_end(self, trainer: Any, pl_module: Any) -> None:
        self._end_epoch(trainer)
        self._finish()

    # ------------------------------------------------------------------ errors and the end
    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        recorder, self.recorder = self.recorder, None
        self._in_train_epoch = False
        if recorder is not None:
            recorder.abort(exception)
            self._records.append(recorder.dataframe())

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._finish()  # a stage that ended without its end hook (e.g. predict)

    def dataframe(self) -> pd.DataFrame:
        """The records this callback wrote in this process (every fit, validate and test)."""
        frames = list(self._records)
        if self.recorder is not None:
            frames.append(self.recorder.dataframe())
        frames = [f for f in frames if not f.empty]
        return pd.concat(frames, ignore_index=True) if frames else records_frame([])
