"""The Tracker: hooks on every recordable layer, statistics per phase and epoch (SPEC C3).

The user's loop talks to one object (after Delve's Tracker, dissertation 6.1.2)::

    with Tracker(model, run_dir="runs/demo") as tracker:      # 1. attach
        for epoch in range(epochs):
            train(...); evaluate(...)                        # recorded automatically
            tracker.end_epoch(loss=loss, accuracy=acc)       # 2. statistics written
    # 3. leaving the block closes it: hooks removed, store flushed, report written

Phases. A forward pass with ``model.training`` set is phase ``"train"``, otherwise the
evaluation phase (``"eval"``, or the name given by ``with tracker.phase("test"):``). A phase ends
when another phase starts or the epoch ends: its statistics are computed from every recorded
batch of the phase, written, flushed, and its covariances reset. So a crash loses at most the
phase in progress. Starting a phase that already ended in the same epoch is a mistake
(usually a forgotten ``end_epoch()``) and raises :class:`~layerscope.errors.PhaseError`.

Legitimate patterns that just work: training only; evaluation only (no ``end_epoch()`` needed:
``close()`` writes the pending phase as epoch 0); several named evaluation sets per epoch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from layerscope.errors import LayerTooWideError, PhaseError
from layerscope.stats.covariance import DEFAULT_MAX_FEATURES, StreamingCovariance, _format_bytes
from layerscope.stats.samples import DownsampleMethod, downsample
from layerscope.stats.spectrum import (
    DEFAULT_DELTA,
    DEFAULT_STATISTICS,
    SpectrumStatistics,
    compute_statistics,
    get_statistic,
)
from layerscope.store.atomic import atomic_write_text
from layerscope.store.records import Record
from layerscope.store.sinks import Sink, close_all, make_sink
from layerscope.tracking.layers import (
    CHANNELS_FIRST_TYPES,
    LayerInfo,
    describe_layers,
    features_tensor,
    output_features,
    select_layers,
)
from layerscope.tracking.weights import WeightSnapshots

__all__ = ["Tracker"]

TRAIN = "train"
EVAL = "eval"
WEIGHTS_PHASE = "weights"
EPOCH_PHASE = "epoch"


class Tracker:
    """Record per-layer statistics of a model's outputs during training and evaluation.

    Args:
        model: the network. Hooks go on its recordable layers (see
            :func:`~layerscope.tracking.layers.select_layers`); nothing is written onto modules.
        run_dir: folder for the store, ``layers.json``, figures and ``report.html``. ``None``
            keeps records in memory only (``tracker.dataframe()``).
        run: the run's name in the records; default: ``run_dir``'s name, or ``"run"``.
        statistics: scalar statistics per layer and phase (names from
            :func:`layerscope.stats.list_statistics`); default
            :data:`~layerscope.stats.DEFAULT_STATISTICS`.
        delta: variance fraction for intrinsic dimension and saturation (0.99).
        include, exclude: layer selection by name pattern or type.
        precision: ``"float64"`` or ``"mixed"`` (float32 batch Gram, float64 accumulation).
        device: where covariances live; default: beside each layer's output.
        downsample: shrink feature maps to at most this spatial size before accumulating
            (``None``: keep every position, as the dissertation's experiments do).
        downsample_method: ``"adaptive_avg"``, ``"nearest"`` or ``"bilinear"``.
        every_n_batches: record only every n-th batch of each phase.
        max_batches: record at most this many batches per phase and epoch.
        max_samples: cap the samples (rows / positions) taken from one batch of one layer.
        max_features: refuse layers wider than this (see
            :class:`~layerscope.stats.StreamingCovariance`).
        sinks: where records go: names (``"sqlite"``, ``"csv"``, ``"jsonl"``,
            ``"tensorboard"``, ``"memory"``) or sink objects. Default: ``["sqlite"]`` with a
            ``run_dir``, else nothing but the in-memory copy.
        weights: record relative weight change and distance from initialisation per epoch.
        figures: rewrite figures and ``report.html`` in ``run_dir`` at every epoch end.
        start_epoch: number of the first epoch (to continue a run).
        metadata: JSON-serialisable facts about the run, stored in ``run.json``.

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
        statistics: Sequence[str] | None = None,
        delta: float = DEFAULT_DELTA,
        include: Iterable[str | type] | None = None,
        exclude: Iterable[str | type] | None = None,
        precision: str = "float64",
        device: torch.device | str | None = None,
        downsample: int | tuple[int, ...] | None = None,
        downsample_method: DownsampleMethod = "adaptive_avg",
        every_n_batches: int = 1,
        max_batches: int | None = None,
        max_samples: int | None = None,
        max_features: int = DEFAULT_MAX_FEATURES,
        sinks: Sequence[str | Sink] | None = None,
        weights: bool = True,
        figures: bool = True,
        start_epoch: int = 0,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"Tracker needs a torch.nn.Module, got {type(model).__name__}")
        self._check_options(
            statistics, delta, precision, every_n_batches, max_batches, start_epoch, downsample
        )
        self.model = model
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.run = run or (self.run_dir.name if self.run_dir is not None else "run")
        self.statistics = tuple(statistics) if statistics is not None else DEFAULT_STATISTICS
        self.delta = delta
        self.precision = precision
        self.device = torch.device(device) if device is not None else None
        self.downsample = downsample
        self.downsample_method = downsample_method
        self.every_n_batches = every_n_batches
        self.max_batches = max_batches
        self.max_samples = max_samples
        self.max_features = max_features
        self.figures = figures and self.run_dir is not None
        self.epoch = start_epoch
        self.metadata = dict(metadata or {})

        self._selected = select_layers(model, include, exclude)
        self._check_widths()
        self._modules = dict(self._selected)
        self._order: list[str] = []  # forward order, learnt from the hooks
        self._widths: dict[str, int] = {}
        self._accumulators: dict[tuple[str, str], StreamingCovariance] = {}
        self._phase_override: str | None = None
        self._paused = 0
        self._batch_state: tuple[str, bool] | None = None
        self._current_phase: str | None = None
        self._finished_phases: set[str] = set()
        self._batches_seen: dict[str, int] = {}
        self._batches_recorded: dict[str, int] = {}
        self._epochs_ended = 0
        self._closed = False
        self.records: list[Record] = []
        self.latest: dict[tuple[str, str], SpectrumStatistics] = {}

        self._sinks: list[Sink] = []
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        try:
            self._open_sinks(sinks)
            self._weights = WeightSnapshots(self._selected) if weights else None
            self._attach()
            self._write_run_file()
        except BaseException:
            self._detach()
            close_all(self._sinks)
            raise

    # ------------------------------------------------------------------ setup
    @staticmethod
    def _check_options(
        statistics, delta, precision, every_n_batches, max_batches, start_epoch, size
    ) -> None:
        for name in statistics or ():
            spec = get_statistic(name)  # unknown names fail here, with suggestions
            if not spec.scalar:
                raise ValueError(
                    f"statistic {name!r} is not a scalar and cannot be recorded; compute it "
                    f"from tracker.covariance(layer) with layerscope.stats.compute_statistics"
                )
        if not 0.0 < delta <= 1.0:
            raise ValueError(f"delta must be in (0, 1], got {delta!r}")
        if precision not in ("float64", "mixed"):
            raise ValueError(f"precision must be 'float64' or 'mixed', got {precision!r}")
        if not isinstance(every_n_batches, int) or every_n_batches < 1:
            raise ValueError(f"every_n_batches must be an int >= 1, got {every_n_batches!r}")
        if max_batches is not None and (not isinstance(max_batches, int) or max_batches < 1):
            raise ValueError(f"max_batches must be an int >= 1 or None, got {max_batches!r}")
        if not isinstance(start_epoch, int) or start_epoch < 0:
            raise ValueError(f"start_epoch must be an int >= 0, got {start_epoch!r}")
        if size is not None and not (
            (isinstance(size, int) and size >= 1)
            or (isinstance(size, tuple) and all(isinstance(s, int) and s >= 1 for s in size))
        ):
            raise ValueError(
                f"downsample must be None, an int >= 1 or a tuple of them, got {size!r}"
            )

    def _check_widths(self) -> None:
        """Refuse too-wide layers now, before the first forward pass."""
        for name, module in self._selected:
            width = output_features(module)
            if width is not None and width > self.max_features:
                raise LayerTooWideError(
                    f"layer {name!r} ({type(module).__name__}) has {width} output features; its "
                    f"covariance needs {_format_bytes(width * width * 8)} per phase. Exclude it "
                    f"with exclude=[{name!r}] or raise max_features to {width}."
                )

    def _open_sinks(self, sinks: Sequence[str | Sink] | None) -> None:
        if sinks is None:
            sinks = ["sqlite"] if self.run_dir is not None else []
        if isinstance(sinks, (str, Sink)):
            sinks = [sinks]
        if self.run_dir is not None:
            self._refuse_existing_records()
        for spec in sinks:
            self._sinks.append(make_sink(spec, self.run_dir))

    def _refuse_existing_records(self) -> None:
        """A run folder must not already hold records of this run from ``start_epoch`` on."""
        from layerscope.store.runs import find_stores, load

        if not self.run_dir.is_dir():
            return
        stores = [s for s in find_stores(self.run_dir) if s.parent == self.run_dir]
        if not stores:
            return
        frame = load(stores[0])
        mine = frame[(frame.run == self.run) & (frame.epoch >= self.epoch)]
        if len(mine):
            first, last = mine.epoch.min(), mine.epoch.max()
            raise ValueError(
                f"run folder {self.run_dir} already holds {len(mine)} records of run "
                f"{self.run!r} from epoch {first} to {last}. Use a new run_dir, delete the "
                f"folder, pass start_epoch={last + 1} to continue after them, or remove them "
                f"first (SQLiteSink(path).discard_from({self.run!r}, {self.epoch}))."
            )

    def _attach(self) -> None:
        # Hooks run outside torch.compile's graph (a graph break per recorded layer): they
        # update Python-side state, which cannot be traced.
        disable = torch.compiler.disable
        self._handles.append(self.model.register_forward_pre_hook(disable(self._on_batch_start)))
        for name, module in self._selected:
            hook = disable(self._make_layer_hook(name))
            self._handles.append(module.register_forward_hook(hook))
        # Registered last, so it runs after a layer hook on the model itself.
        self._handles.append(self.model.register_forward_hook(disable(self._on_batch_end)))

    def _detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    # ------------------------------------------------------------------ hooks
    def _phase_of(self, module: nn.Module) -> str:
        if self._phase_override is not None:
            return self._phase_override
        return TRAIN if module.training else EVAL

    def _on_batch_start(self, module: nn.Module, args: tuple) -> None:
        if self._paused or self._closed:
            self._batch_state = (self._phase_of(module), False)
            return
        phase = self._phase_of(module)
        self._enter_phase(phase)
        seen = self._batches_seen.get(phase, 0)
        self._batches_seen[phase] = seen + 1
        recorded = self._batches_recorded.get(phase, 0)
        record = seen % self.every_n_batches == 0 and (
            self.max_batches is None or recorded < self.max_batches
        )
        if record:
            self._batches_recorded[phase] = recorded + 1
        self._batch_state = (phase, record)

    def _on_batch_end(self, module: nn.Module, args: tuple, output: object) -> None:
        self._batch_state = None

    def _enter_phase(self, phase: str) -> None:
        if phase == self._current_phase:
            return
        if phase in self._finished_phases:
            raise PhaseError(
                f"phase {phase!r} of epoch {self.epoch} already ended (another phase ran after "
                f"it); call tracker.end_epoch() at the end of every epoch, after its "
                f"evaluation. To run extra forward passes without recording them, wrap them in "
                f"`with tracker.paused():`."
            )
        if self._current_phase is not None:
            self._finish_phase(self._current_phase)
        self._current_phase = phase

    def _make_layer_hook(self, name: str):
        def hook(module: nn.Module, args: tuple, output: object) -> None:
            state = self._batch_state
            if state is None:  # a submodule called outside the model's forward
                if self._paused or self._closed:
                    return
                phase = self._phase_of(module)
                self._enter_phase(phase)
                state = (phase, True)
            phase, record = state
            if not record:
                return
            with torch.no_grad():
                found = features_tensor(module, output)
                if found is None:
                    return
                tensor, feature_dim = found
                if (
                    self.downsample is not None
                    and isinstance(module, CHANNELS_FIRST_TYPES)
                    and tensor.dim() > 2
                ):
                    tensor = downsample(tensor, self.downsample, self.downsample_method)
                accumulator = self._accumulators.get((phase, name))
                if accumulator is None:
                    accumulator = self._new_accumulator(phase, name, tensor.shape[feature_dim])
                accumulator.update(tensor, feature_dim=feature_dim)

        return hook

    def _new_accumulator(self, phase: str, name: str, width: int) -> StreamingCovariance:
        if name not in self._widths:
            self._widths[name] = width
            self._order.append(name)
        accumulator = StreamingCovariance(
            width,
            precision=self.precision,
            device=self.device,
            max_samples=self.max_samples,
            max_features=self.max_features,
            name=name,
        )
        self._accumulators[(phase, name)] = accumulator
        return accumulator

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
        if not isinstance(name, str) or not name or name in (WEIGHTS_PHASE, EPOCH_PHASE):
            raise ValueError(
                f"phase names are non-empty strings other than {WEIGHTS_PHASE!r} and "
                f"{EPOCH_PHASE!r}, got {name!r}"
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
        """Compute, write and flush the statistics of ``phase``; reset its covariances."""
        now = time.time()
        rows: list[Record] = []
        saturations = []
        index = {name: i for i, name in enumerate(self._order)}
        for name in self._order:
            accumulator = self._accumulators.pop((phase, name), None)
            if accumulator is None:
                continue
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = accumulator.compute()
            for warning in caught:
                warnings.warn(
                    f"epoch {self.epoch}, phase {phase!r}: {warning.message}",
                    warning.category,
                    stacklevel=3,
                )
            stats = compute_statistics(result, self.statistics, delta=self.delta)
            self.latest[(phase, name)] = stats
            rows.append(Record(self.run, self.epoch, phase, name, index[name], "samples",
                               float(result.count), now))  # fmt: skip
            if stats.reason:
                warnings.warn(
                    f"layer {name!r}, epoch {self.epoch}, phase {phase!r}: no statistics "
                    f"({stats.reason})",
                    RuntimeWarning,
                    stacklevel=3,
                )
                continue
            for statistic, value in stats.values.items():
                rows.append(Record(self.run, self.epoch, phase, name, index[name], statistic,
                                   float(value), now))  # fmt: skip
            if "zero_variance" in stats.flags:
                rows.append(Record(self.run, self.epoch, phase, name, index[name],
                                   "zero_variance", 1.0, now))  # fmt: skip
            has_weights = any(p.requires_grad for p in self._modules[name].parameters())
            if "saturation" in stats.values and has_weights:
                saturations.append(float(stats.values["saturation"]))
        if saturations:
            # s_mu: mean saturation of layers with trainable parameters (dissertation 8.4).
            rows.append(Record(self.run, self.epoch, phase, None, None, "average_saturation",
                               sum(saturations) / len(saturations), now))  # fmt: skip
        self._emit(rows)
        self._finished_phases.add(phase)
        if self._current_phase == phase:
            self._current_phase = None

    def _emit(self, rows: Sequence[Record]) -> None:
        self.records.extend(rows)
        for sink in self._sinks:
            sink.write(rows)
            sink.flush()

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
        now = time.time()
        rows = []
        for name, value in scalars.items():
            try:
                number = float(value.item() if isinstance(value, torch.Tensor) else value)
            except (TypeError, ValueError, RuntimeError):
                raise TypeError(
                    f"scalar {name!r} must be a number or a one-element tensor, got "
                    f"{type(value).__name__}"
                ) from None
            rows.append(Record(self.run, self.epoch if epoch is None else epoch, phase, None,
                               None, name, number, now))  # fmt: skip
        self._emit(rows)

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
        if not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
        if self._current_phase is not None or self._finished_phases:
            raise PhaseError(
                f"begin_epoch({epoch}) after batches of epoch {self.epoch} were recorded; call "
                f"it before the epoch's first batch, or end_epoch() first"
            )
        self.epoch = epoch

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
        if epoch is not None:
            if not isinstance(epoch, int) or epoch < 0:
                raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
            if epoch != self.epoch and self._finished_phases:
                raise PhaseError(
                    f"end_epoch(epoch={epoch}): phases {sorted(self._finished_phases)} of this "
                    f"epoch were already written as epoch {self.epoch}. Number epochs before "
                    f"their first batch with tracker.begin_epoch({epoch}), or let the tracker "
                    f"count (start_epoch= sets the first number)."
                )
            self.epoch = epoch
        if self._current_phase is None and not self._finished_phases and not scalars:
            raise PhaseError(
                f"end_epoch() for epoch {self.epoch}: nothing was recorded since the last "
                f"end_epoch() (was it called twice? did the model run forward passes? is the "
                f"tracker attached to the model being trained?)"
            )
        if self._current_phase is not None:
            self._finish_phase(self._current_phase)
        rows = []
        if self._weights is not None:
            now = time.time()
            index = {name: i for i, name in enumerate(self._order)}
            for name, values in self._weights.step().items():
                for statistic, value in values.items():
                    rows.append(Record(self.run, self.epoch, WEIGHTS_PHASE, name,
                                       index.get(name), statistic, value, now))  # fmt: skip
        self._emit(rows)
        if scalars:
            self.log(EPOCH_PHASE, **scalars)
        self._write_layers()
        if self.figures:
            self._write_figures()
        self._finished_phases.clear()
        self._batches_seen.clear()
        self._batches_recorded.clear()
        self._epochs_ended += 1
        self.epoch += 1

    def set_initial_weights(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Measure distance from initialisation against these weights (a model ``state_dict``),
        e.g. the run's epoch-0 weights when continuing it from a checkpoint."""
        if self._weights is None:
            raise ValueError("this Tracker does not record weights (weights=False)")
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
        phase = phase or self._current_phase
        accumulator = self._accumulators.get((phase, layer))
        if accumulator is None:
            running = sorted(f"{p}/{name}" for p, name in self._accumulators) or ["none"]
            raise KeyError(
                f"no covariance is accumulating for layer {layer!r} in phase {phase!r}; "
                f"accumulating now (phase/layer): {', '.join(running)}"
            )
        return accumulator.compute()

    def dataframe(self):
        """Every record written by this tracker, as a tidy pandas DataFrame."""
        import pandas as pd

        from layerscope.store.records import COLUMNS
        from layerscope.store.runs import _typed

        return _typed(pd.DataFrame([r.as_tuple() for r in self.records], columns=list(COLUMNS)))

    def _write_run_file(self) -> None:
        if self.run_dir is None:
            return
        from layerscope._versions import package_versions

        self.run_dir.mkdir(parents=True, exist_ok=True)
        info = {
            "run": self.run,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "model": type(self.model).__name__,
            "options": {
                "statistics": list(self.statistics),
                "delta": self.delta,
                "precision": self.precision,
                "downsample": self.downsample,
                "downsample_method": self.downsample_method,
                "every_n_batches": self.every_n_batches,
                "max_batches": self.max_batches,
                "max_samples": self.max_samples,
            },
            "versions": package_versions(),
            "metadata": self.metadata,
        }
        atomic_write_text(self.run_dir / "run.json", json.dumps(info, indent=2, default=str))

    def _write_layers(self) -> None:
        if self.run_dir is None:
            return
        payload = [dataclasses.asdict(info) for info in self.layers]
        atomic_write_text(self.run_dir / "layers.json", json.dumps(payload, indent=2))

    def _write_figures(self) -> None:
        """Rewrite figures and report.html: from the run folder's store when there is one, so a
        continued run shows its earlier epochs too; else from the records in memory."""
        from layerscope.report.html import write_report
        from layerscope.store.runs import find_stores

        stored = any(s.parent == self.run_dir for s in find_stores(self.run_dir))
        write_report(self.run_dir, None if stored else self.dataframe(), self.layers)

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Finish a pending phase, remove every hook, write the report, close the sinks.

        Safe to call twice. Batches recorded after the last ``end_epoch()`` are written as the
        current epoch (with a warning if ``end_epoch()`` was used before: it was probably
        forgotten once). An evaluation-only session needs no ``end_epoch()`` at all.
        """
        if self._closed:
            return
        try:
            pending = self._current_phase is not None or bool(self._finished_phases)
            if pending:
                if self._epochs_ended:
                    warnings.warn(
                        f"batches recorded after the last end_epoch() were written as epoch "
                        f"{self.epoch} at close(); call tracker.end_epoch() after every epoch",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                self.end_epoch()
        finally:
            self._detach()
            self._closed = True
            close_all(self._sinks)

    def _abort(self) -> None:
        """Close after an exception: keep finished phases, drop the one in progress."""
        if self._closed:
            return
        self._accumulators.clear()
        self._current_phase = None
        self._detach()
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
            self._detach()

    def __repr__(self) -> str:
        return (
            f"Tracker({type(self.model).__name__}, layers={len(self._selected)}, "
            f"run={self.run!r}, epoch={self.epoch}, closed={self._closed})"
        )
