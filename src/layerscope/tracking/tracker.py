"""The Tracker: hooks on every recordable layer, statistics per phase and epoch (SPEC C3).

The user's loop talks to one object (after Delve's Tracker, dissertation 6.1.2)::

    with Tracker(model, run_dir="runs/demo") as tracker:      # 1. attach
        for epoch in range(epochs):
            train(...); evaluate(...)                        # recorded automatically
            tracker.end_epoch(loss=loss, accuracy=acc)       # 2. statistics written
    # 3. leaving the block closes it: hooks removed, store flushed

Phases (:mod:`layerscope.tracking.phases`): a forward pass with ``model.training`` set is phase
``"train"``, otherwise ``"eval"`` (or the name given by ``with tracker.phase("test"):``). When a
phase ends its statistics are computed from every recorded batch, written, flushed, and its
accumulators dropped, so a crash loses at most the phase in progress. Training only, evaluation
only (``close()`` writes the pending phase as epoch 0) and several named evaluation sets per
epoch just work.

What the Tracker does not do: draw figures or write reports. The owner of a run folder does that
(the experiment runner, the demo, or the user with ``layerscope.write_report(run_dir)``); a
live report is a callback, ``Tracker(..., callbacks=[layerscope.report.ReportWriter()])``, told
about the new records at every epoch end.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from layerscope._versions import package_versions
from layerscope.errors import OptionError, OptionTypeError, PhaseError
from layerscope.stats.base import StreamingStatistic
from layerscope.stats.samples import downsample
from layerscope.stats.spectrum import SpectrumStatistics
from layerscope.store.folder import write_layers, write_run_info
from layerscope.store.records import Record, make_records
from layerscope.store.runs import records_frame
from layerscope.store.sinks import Sink, close_all, make_sink, with_readable_store
from layerscope.tracking.distributed import any_rank, bare_model, is_writer, merge_phases, world
from layerscope.tracking.extensions import (
    StatisticFactory,
    TrackerCallback,
    covariance_statistic,
    layer_values,
)
from layerscope.tracking.guards import refuse_existing_records, scalar_values
from layerscope.tracking.hooks import Hooks
from layerscope.tracking.layers import (
    CHANNELS_FIRST_TYPES,
    LayerInfo,
    check_widths,
    describe_layers,
    features_tensor,
    select_layers,
)
from layerscope.tracking.options import TrackerOptions
from layerscope.tracking.phases import (
    EPOCH_PHASE,
    EVAL,
    RESERVED_PHASES,
    TRAIN,
    WEIGHTS_PHASE,
    PhaseClock,
)
from layerscope.tracking.weights import WeightSnapshots

__all__ = ["Tracker"]


class Tracker:
    """Record per-layer statistics of a model's outputs during training and evaluation.

    Args:
        model: the network. Hooks go on its recordable layers (see
            :func:`~layerscope.tracking.layers.select_layers`); nothing is written onto modules.
        run_dir: folder for the store, ``run.json`` and ``layers.json``. ``None`` keeps records
            in memory only (``tracker.dataframe()``).
        run: the run's name in the records; default: ``run_dir``'s name, or ``"run"``.
        options: a :class:`~layerscope.tracking.options.TrackerOptions`; single options may be
            given as keywords instead (``Tracker(model, delta=0.9, exclude=["fc"])``), see that
            class for all of them (statistics, delta, include, exclude, precision, device,
            downsample, every_n_batches, max_batches, max_samples, max_features, weights, sinks).
        callbacks: objects with ``on_epoch_end(tracker, records)`` and ``on_close(tracker,
            records)``, e.g. :class:`layerscope.report.ReportWriter` for a live report.
        statistic_factory: builds each layer's accumulator (default
            :func:`covariance_statistic`).
        start_epoch: number of the first epoch (to continue a run).
        metadata: JSON-serialisable facts about the run, stored in ``run.json``.
        distributed: ``None`` merges all ranks' statistics at each epoch end when a process
            group is initialised (:mod:`~layerscope.tracking.distributed`); ``False`` never.

    Example:
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> with Tracker(model) as tracker:
        ...     for epoch in range(2):
        ...         _ = model(torch.randn(64, 4))            # a training batch
        ...         tracker.end_epoch(loss=1.0 / (epoch + 1))
        >>> df = tracker.dataframe()
        >>> sorted(df.query("statistic == 'saturation'").layer.unique())
        ['0', '2']
        >>> df.query("statistic == 'loss'").value.tolist()
        [1.0, 0.5]
    """

    def __init__(
        self,
        model: nn.Module,
        run_dir: str | Path | None = None,
        *,
        run: str | None = None,
        options: TrackerOptions | None = None,
        callbacks: Sequence[TrackerCallback] = (),
        statistic_factory: StatisticFactory = covariance_statistic,
        start_epoch: int = 0,
        metadata: Mapping[str, Any] | None = None,
        distributed: bool | None = None,
        **option_values: Any,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise OptionTypeError(f"Tracker needs a torch.nn.Module, got {type(model).__name__}")
        model = bare_model(model)  # DDP's layers keep the bare model's names
        self._world = world(distributed)
        self._writer = is_writer(self._world)  # rank 0 (or no process group) writes files
        self._deferred: list[str] = []  # finished phases waiting for the ranks' merge
        self.options = TrackerOptions.create(options, **option_values)
        self._clock = PhaseClock(
            start_epoch, self.options.every_n_batches, self.options.max_batches
        )
        self.model = model
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.run = run or (self.run_dir.name if self.run_dir is not None else "run")
        self.metadata = dict(metadata or {})
        self._statistic_factory = statistic_factory
        self._callbacks = list(callbacks)
        self._selected = select_layers(model, self.options.include, self.options.exclude)
        check_widths(self._selected, self.options.max_features)
        self._modules = dict(self._selected)
        self._order: list[str] = []  # forward order, learnt from the hooks
        self._widths: dict[str, int] = {}
        self._accumulators: dict[tuple[str, str], StreamingStatistic] = {}
        self._phase_override: str | None = None
        self._paused = 0
        self._batch_state: tuple[str, bool] | None = None
        self._closed = False
        self.records: list[Record] = []
        self._reported = 0  # records already handed to the callbacks
        self.latest: dict[tuple[str, str], SpectrumStatistics] = {}
        self._sinks: list[Sink] = []
        self._hooks = Hooks()
        try:
            self._open_sinks()
            weights = self.options.weights and self._writer  # replicated: rank 0 measures
            self._weights = WeightSnapshots(self._selected) if weights else None
            self._attach()
            self._write_run_file()
        except BaseException:
            self._hooks.remove()
            close_all(self._sinks)
            raise

    @property
    def epoch(self) -> int:
        """The number of the epoch being recorded."""
        return self._clock.epoch

    # ------------------------------------------------------------------ setup
    def _open_sinks(self) -> None:
        sinks = self.options.sinks if self._writer else ()  # rank 0 alone writes
        if sinks is None:
            sinks = ("sqlite",) if self.run_dir is not None else ()
        if self.run_dir is not None and self._writer:
            refuse_existing_records(self.run_dir, self.run, self.epoch)
            sinks = with_readable_store(sinks, self.run_dir)  # tensorboard adds to sqlite
        for spec in sinks:
            self._sinks.append(make_sink(spec, self.run_dir))

    def _attach(self) -> None:
        # Hooks run outside torch.compile's graph (a graph break per recorded layer): they
        # update Python-side state, which cannot be traced.
        disable = torch.compiler.disable
        self._hooks.forward_pre(self.model, disable(self._on_batch_start))
        for name, module in self._selected:
            self._hooks.forward(module, disable(self._make_layer_hook(name)))
        # Registered last, so it runs after a layer hook on the model itself.
        self._hooks.forward(self.model, disable(self._on_batch_end))

    # ------------------------------------------------------------------ hooks
    def _phase_of(self, module: nn.Module) -> str:
        if self._phase_override is not None:
            return self._phase_override
        return TRAIN if module.training else EVAL

    def _on_batch_start(self, module: nn.Module, args: tuple) -> None:
        phase = self._phase_of(module)
        if self._paused or self._closed:
            self._batch_state = (phase, False)
            return
        self._enter_phase(phase)
        self._batch_state = (phase, self._clock.next_batch(phase))

    def _on_batch_end(self, module: nn.Module, args: tuple, output: object) -> None:
        self._batch_state = None

    def _enter_phase(self, phase: str) -> None:
        previous = self._clock.enter(phase)
        if previous is not None:
            self._finish_phase(previous)

    def _make_layer_hook(self, name: str):
        def hook(module: nn.Module, args: tuple, output: object) -> None:
            state = self._batch_state
            if state is None:  # a submodule called outside the model's forward
                if self._paused or self._closed:
                    return
                state = (self._phase_of(module), True)
                self._enter_phase(state[0])
            phase, record = state
            if record:
                with torch.no_grad():
                    self._update(name, module, phase, output)

        return hook

    def _update(self, name: str, module: nn.Module, phase: str, output: object) -> None:
        found = features_tensor(module, output)
        if found is None:
            return
        tensor, feature_dim = found
        size = self.options.downsample
        if size is not None and isinstance(module, CHANNELS_FIRST_TYPES) and tensor.dim() > 2:
            tensor = downsample(tensor, size, self.options.downsample_method)
        accumulator = self._accumulators.get((phase, name))
        if accumulator is None:
            width = tensor.shape[feature_dim]
            if name not in self._widths:
                self._widths[name] = width
                self._order.append(name)
            accumulator = self._statistic_factory(width, name, self.options)
            self._accumulators[(phase, name)] = accumulator
        accumulator.update(tensor, feature_dim=feature_dim)

    # ------------------------------------------------------------------ phases and epochs
    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[Tracker]:
        """Record the forward passes inside the block as phase ``name`` (e.g. ``"test"``).

        Example:
            >>> model = nn.Linear(3, 3)
            >>> with Tracker(model, weights=False) as tracker:
            ...     with tracker.phase("validation"):
            ...         _ = model(torch.randn(10, 3))
            ...     with tracker.phase("test"):
            ...         _ = model(torch.randn(10, 3))
            ...     tracker.end_epoch()
            >>> sorted(tracker.dataframe().phase.unique())
            ['test', 'validation']
        """
        if not isinstance(name, str) or not name or name in RESERVED_PHASES:
            raise OptionError(
                f"phase names are non-empty strings other than "
                f"{' and '.join(map(repr, RESERVED_PHASES))}, got {name!r}"
            )
        previous, self._phase_override = self._phase_override, name
        try:
            yield self
        finally:
            self._phase_override = previous

    @contextlib.contextmanager
    def paused(self) -> Iterator[Tracker]:
        """Forward passes inside the block are not recorded."""
        self._paused += 1
        try:
            yield self
        finally:
            self._paused -= 1

    def _finish_phase(self, phase: str) -> None:
        """Compute, write and flush ``phase``'s statistics (distributed: at the ranks' merge)."""
        self._clock.finished(phase)
        if self._world is not None:
            self._deferred.append(phase)
        else:
            self._write_phase(phase)

    def _write_phase(self, phase: str) -> None:
        layers, saturations = [], []
        for index, name in enumerate(self._order):
            accumulator = self._accumulators.pop((phase, name), None)
            if accumulator is None:
                continue
            values, self.latest[(phase, name)] = layer_values(
                accumulator, self.options, f"layer {name!r}, epoch {self.epoch}, phase {phase!r}"
            )
            layers.append((name, index, values))
            has_weights = any(p.requires_grad for p in self._modules[name].parameters())
            if "saturation" in values and has_weights:
                saturations.append(values["saturation"])
        # s_mu: mean saturation of layers with trainable parameters (dissertation 8.4).
        model = {"average_saturation": sum(saturations) / len(saturations)} if saturations else {}
        self._emit(make_records(self.run, self.epoch, phase, time.time(), layers=layers,
                                model=model))  # fmt: skip

    def _merge_ranks(self) -> list[str]:
        """Merge the finished phases of all ranks (every rank calls it), write and return them."""
        phases = merge_phases(self._world, self._deferred, self._accumulators, self._order,
                              self._widths, self._statistic_factory, self.options)  # fmt: skip
        for phase in phases:
            self._write_phase(phase)
        return phases

    def _emit(self, rows: Sequence[Record]) -> None:
        self.records.extend(rows)
        for sink in self._sinks:
            sink.write(rows)
            sink.flush()

    def _new_records(self) -> list[Record]:
        new = self.records[self._reported :]
        self._reported = len(self.records)
        return new

    def log(self, phase: str = EPOCH_PHASE, *, epoch: int | None = None, **scalars: float) -> None:
        """Record user scalars (loss, accuracy, time, ...) for the current epoch (or ``epoch``).

        Example:
            >>> tracker = Tracker(nn.Linear(2, 2), weights=False)
            >>> tracker.log(phase="eval", accuracy=0.9)
            >>> tracker.records[-1].statistic, tracker.records[-1].phase
            ('accuracy', 'eval')
            >>> tracker.close()
        """
        if self._closed:
            raise PhaseError("this Tracker is closed; create a new one to record more")
        values = scalar_values(scalars)
        epoch = self.epoch if epoch is None else epoch
        self._emit(make_records(self.run, epoch, phase, time.time(), model=values))

    def begin_epoch(self, epoch: int) -> None:
        """Number the epoch about to start (optional: the tracker counts from ``start_epoch``).

        Example:
            >>> model = nn.Linear(2, 2)
            >>> with Tracker(model, weights=False) as tracker:
            ...     tracker.begin_epoch(1)                  # 1-based epochs, say
            ...     _ = model(torch.randn(4, 2))
            ...     tracker.end_epoch()
            >>> tracker.dataframe().epoch.unique().tolist()
            [1]
        """
        self._clock.begin_epoch(epoch)

    def end_epoch(self, epoch: int | None = None, **scalars: float) -> None:
        """End the epoch: finish the running phase, record weight statistics and ``scalars``.

        Args:
            epoch: the number of the epoch ending (default: the tracker's counter, which
                starts at ``start_epoch`` and counts up).
            **scalars: user values for the epoch (``loss=..., accuracy=...``), phase ``"epoch"``.

        Raises:
            PhaseError: no batch was recorded and no scalar given since the last
                ``end_epoch()`` (it was called twice, or the model never ran).
        """
        if self._closed:
            raise PhaseError("this Tracker is closed; end_epoch() must come before close()")
        self._clock.number_ending_epoch(epoch)
        if self._clock.current is not None:
            self._finish_phase(self._clock.current)
        merged = self._merge_ranks()
        if not self._clock.pending and not merged and not scalars:
            raise PhaseError(
                f"end_epoch() for epoch {self.epoch}: nothing was recorded since the last "
                f"end_epoch() (was it called twice? did the model run forward passes? is the "
                f"tracker attached to the model being trained?)"
            )
        if self._weights is not None:
            layers = [(name, self._index(name), values)
                      for name, values in self._weights.step().items()]  # fmt: skip
            self._emit(make_records(self.run, self.epoch, WEIGHTS_PHASE, time.time(),
                                    layers=layers))  # fmt: skip
        if scalars:
            self.log(EPOCH_PHASE, **scalars)
        if self.run_dir is not None and self._writer:
            write_layers(self.run_dir, self.layers)
        new = self._new_records()
        for callback in self._callbacks if self._writer else ():
            callback.on_epoch_end(self, new)
        self._clock.end_epoch()

    def _index(self, name: str) -> int | None:
        return self._order.index(name) if name in self._widths else None

    def set_initial_weights(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Measure distance from initialisation against these weights (a model ``state_dict``),
        e.g. the run's epoch-0 weights when continuing it from a checkpoint."""
        if self._weights is None and self._writer:
            raise OptionError("this Tracker does not record weights (weights=False)")
        if self._weights is not None:
            self._weights.set_initial(dict(state_dict))

    # ------------------------------------------------------------------ outputs
    @property
    def layers(self) -> list[LayerInfo]:
        """Recorded layers in forward order (layers not yet seen in a forward pass last)."""
        seen = [(name, self._modules[name]) for name in self._order]
        unseen = [(n, m) for n, m in self._selected if n not in self._widths]
        return describe_layers(seen + unseen, self._widths)

    def covariance(self, layer: str, phase: str | None = None):
        """The running covariance (``CovarianceResult``) of ``layer`` in the current phase."""
        phase = phase or self._clock.current
        accumulator = self._accumulators.get((phase, layer))
        if accumulator is None:
            running = sorted(f"{p}/{name}" for p, name in self._accumulators) or ["none"]
            raise OptionError(
                f"no covariance is accumulating for layer {layer!r} in phase {phase!r}; "
                f"accumulating now (phase/layer): {', '.join(running)}"
            )
        return accumulator.compute()

    def dataframe(self):
        """Every record written by this tracker, as a tidy pandas DataFrame."""
        return records_frame(self.records)

    def _write_run_file(self) -> None:
        if self.run_dir is None or not self._writer:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_run_info(self.run_dir, {
            "run": self.run,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "model": type(self.model).__name__,
            "options": self.options.to_dict(),
            "versions": package_versions(),
            "metadata": self.metadata,
        })  # fmt: skip

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Finish a pending phase, remove every hook, tell the callbacks, close the sinks.

        Safe to call twice. Batches recorded after the last ``end_epoch()`` are written as the
        current epoch (with a warning if ``end_epoch()`` was used before: it was probably
        forgotten once). An evaluation-only session needs no ``end_epoch()`` at all.
        """
        if self._closed:
            return
        try:
            if any_rank(self._world, self._clock.pending):  # then every rank ends the epoch
                if self._clock.epochs_ended and self._clock.pending:
                    warnings.warn(
                        f"batches recorded after the last end_epoch() were written as epoch "
                        f"{self.epoch} at close(); call tracker.end_epoch() after every epoch",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                self.end_epoch()
            new = self._new_records()
            for callback in self._callbacks if self._writer else ():
                callback.on_close(self, new)
        finally:
            self._hooks.remove()
            self._closed = True
            close_all(self._sinks)

    def _abort(self) -> None:
        """Close after an exception: keep finished phases, drop the one in progress."""
        if self._closed:
            return
        self._accumulators.clear()
        self._clock.current = None
        self._hooks.remove()
        self._closed = True
        close_all(self._sinks)

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()

    def __del__(self) -> None:  # hooks must not outlive the tracker
        with contextlib.suppress(Exception):
            self._hooks.remove()

    def __repr__(self) -> str:
        return (
            f"Tracker({type(self.model).__name__}, layers={len(self._selected)}, "
            f"run={self.run!r}, epoch={self.epoch}, closed={self._closed})"
        )
