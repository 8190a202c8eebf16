"""A Hugging Face ``transformers.Trainer`` callback that records a Tracker (SPEC C14).

::

    from transformers import Trainer, TrainingArguments
    from layerscope.integrations.huggingface import LayerscopeCallback

    args = TrainingArguments("out", num_train_epochs=3, eval_strategy="epoch")
    trainer = Trainer(model, args, train_dataset=train, eval_dataset=test,
                      callbacks=[LayerscopeCallback("runs/bert")])
    trainer.train()

What is recorded when: the callback attaches to the model (``kwargs["model"]``) when training
begins and detaches when it ends. A forward pass in training mode is phase ``"train"``, one in
evaluation mode (the Trainer's evaluations) ``"eval"``, both of the 0-based integer epoch in
progress. The Trainer ends an epoch (``on_epoch_end``) *before* evaluating it, and its
``state.epoch`` is a float counting from 1 at the end of the first epoch; the callback writes
epoch ``e`` when epoch ``e + 1`` begins or training ends, so the evaluation after the end of the
epoch is still part of it. With ``eval_strategy="steps"`` every evaluation during an epoch feeds
that epoch's eval statistics. The values in ``state.log_history`` (loss, learning rate,
``eval_loss``, ...) become the epoch's scalars (phase ``"epoch"``): an entry logged at
``state.epoch`` = x belongs to epoch ceil(x) - 1, its last value wins.

The Trainer tells callbacks nothing when training fails: call ``callback.close()`` afterwards,
or use the callback as a context manager (``with LayerscopeCallback(...) as callback:``), to
remove the hooks after an exception. A ``trainer.evaluate()`` after ``train()`` is not recorded
(there is no hook before an evaluation starts); analyse the trained model with
``layerscope.analyze(model, loader)``, which unpacks dict batches. Under ``torchrun`` only the
main process (``state.is_world_process_zero``) writes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from layerscope.integrations.frameworks import joined_class, require
from layerscope.integrations.recorder import EpochRecorder, keep_settings, numeric_scalars
from layerscope.store.runs import records_frame
from layerscope.tracking.extensions import TrackerCallback
from layerscope.tracking.options import TrackerOptions

__all__ = ["LayerscopeCallback", "epoch_of_log"]


def epoch_of_log(epoch: float | None) -> int:
    """The 0-based epoch of a ``log_history`` entry logged at the Trainer's ``state.epoch``.

    The Trainer's epoch is the fraction of epochs done: 0.5 in the middle of the first, 1.0 at
    its end (and at the evaluation after it), 1.25 a quarter into the second.

    Example:
        >>> [epoch_of_log(x) for x in (0.0, 0.5, 1.0, 1.25, 2.0)]
        [0, 0, 0, 1, 1]
    """
    if epoch is None or epoch <= 0:
        return 0
    return math.ceil(epoch - 1e-9) - 1


class LayerscopeCallback:
    """Record layer statistics of the model a Hugging Face ``Trainer`` trains.

    A ``transformers.TrainerCallback``; ``transformers`` is imported when one is made.

    Args:
        run_dir: the run folder (``None``: in memory only, see :meth:`dataframe`).
        run: the run's name in the records (default: ``run_dir``'s name).
        options: a :class:`~layerscope.TrackerOptions`; or single options as keywords
            (``LayerscopeCallback("runs/x", include=["bert.encoder.*"])``).
        callbacks: Tracker callbacks, e.g. :class:`layerscope.report.ReportWriter`.
        metadata: facts stored in ``run.json``.

    Example:
        >>> callback = LayerscopeCallback(delta=0.9)
        >>> callback.options.delta, type(callback).__mro__[2].__name__
        (0.9, 'TrainerCallback')
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> LayerscopeCallback:
        if cls is LayerscopeCallback:
            base = require("transformers.trainer_callback", extra="huggingface",
                           what="layerscope.integrations.huggingface.LayerscopeCallback")  # fmt: skip
            cls = joined_class(LayerscopeCallback, (base.TrainerCallback,))
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
        self._router = None
        self._epoch: int | None = None
        self._logged = 0  # entries of state.log_history already turned into scalars
        self._records: list[pd.DataFrame] = []

    # ------------------------------------------------------------------ Trainer events
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        model = kwargs.get("model")
        if not isinstance(model, nn.Module):
            raise TypeError(
                f"LayerscopeCallback: the Trainer passed model={type(model).__name__}, not a "
                f"torch.nn.Module; it records PyTorch models only"
            )
        self.close()
        self._epoch, self._logged = None, len(state.log_history)
        self.recorder = EpochRecorder(
            model,
            self.run_dir,
            run=self.run or (self.run_dir.name if self.run_dir is not None else None),
            options=self.options,
            callbacks=self.callbacks,
            start_epoch=epoch_of_log(state.epoch),
            metadata={"framework": "transformers", **self.metadata},
        )
        # First among the pre-hooks, so that the trackers know the phase before they look.
        self._router = model.register_forward_pre_hook(self._route, prepend=True)

    def _route(self, module: nn.Module, args: tuple) -> None:
        if self._epoch is not None:
            self.recorder.record("train" if module.training else "eval", self._epoch)

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._epoch is not None:
            self._end_epoch(state)
        self._epoch = math.floor(state.epoch or 0.0)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._epoch is not None:
            self._end_epoch(state)
        self.close()

    def _end_epoch(self, state: Any) -> None:
        scalars: dict[str, float] = {}
        for entry in state.log_history[self._logged :]:
            if epoch_of_log(entry.get("epoch")) <= self._epoch:
                values = {k: v for k, v in entry.items() if k not in ("epoch", "step")}
                scalars.update(numeric_scalars(values))
                self._logged += 1
        self.recorder.end_epoch(self._epoch, **scalars)
        self._epoch = None

    # ------------------------------------------------------------------ the end
    def close(self) -> None:
        """Write what is pending, remove every hook, close the run's store (safe twice)."""
        recorder, self.recorder = self.recorder, None
        self._remove_router()
        if recorder is not None:
            try:
                recorder.close()
            finally:
                self._records.append(recorder.dataframe())

    def _remove_router(self) -> None:
        router, self._router, self._epoch = self._router, None, None
        if router is not None:
            router.remove()

    def __enter__(self) -> LayerscopeCallback:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc is None:
            self.close()
            return
        recorder, self.recorder = self.recorder, None
        self._remove_router()
        if recorder is not None:
            recorder.abort(exc)
            self._records.append(recorder.dataframe())

    def dataframe(self) -> pd.DataFrame:
        """The records this callback wrote in this process."""
        frames = [*self._records, *([self.recorder.dataframe()] if self.recorder else [])]
        frames = [f for f in frames if not f.empty]
        return pd.concat(frames, ignore_index=True) if frames else records_frame([])
