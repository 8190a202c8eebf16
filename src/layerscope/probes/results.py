"""What decides a probe (:class:`ProbeSettings`), what it found (:class:`ProbeResults`), and how
its results become records (phase ``"probe"``; statistics ``probe_train_acc`` /
``probe_test_acc`` per layer, and the model's own ``model_train_acc`` / ``model_test_acc``)."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from layerscope.errors import ProbeSettingsError
from layerscope.probes.estimator import LogisticProbe
from layerscope.probes.reduction import DEFAULT_REDUCTION, Reduction
from layerscope.probes.solvers import DEFAULT_SOLVER, PROBE_SOLVERS
from layerscope.store.records import Record
from layerscope.store.sqlite import SQLiteSink

__all__ = [
    "PROBE_PHASE",
    "ProbeResult",
    "ProbeResults",
    "ProbeSettings",
    "probe_phase",
    "write_probe_records",
]

#: Phase of probe records with the default reduction; others get ``probe-<reduction>``.
PROBE_PHASE = "probe"


@dataclass(frozen=True)
class ProbeSettings:
    """Everything that decides a probe's result (and its cache key).

    Defaults: the torch L-BFGS solver, sklearn's C = 1 and tol = 1e-4, standardised float32
    features. ``solver="saga"`` with ``max_iter=100`` is the dissertation's recipe (6.2.5).

    Example:
        >>> ProbeSettings(solver="saga").check().probe()
        LogisticProbe(C=1.0, solver='saga', tol=0.0001, max_iter=None, standardize=True)
    """

    solver: str = DEFAULT_SOLVER
    C: float = 1.0
    tol: float = 1e-4
    max_iter: int | None = None
    standardize: bool = True
    dtype: str = "float32"
    random_state: int | None = 0

    def probe(self, device=None) -> LogisticProbe:
        return LogisticProbe(
            self.C,
            solver=self.solver,
            tol=self.tol,
            max_iter=self.max_iter,
            standardize=self.standardize,
            device=device,
            dtype=self.dtype,
            random_state=self.random_state,
        )

    def check(self) -> ProbeSettings:
        """Validate now (before any extraction or process starts); returns self.

        Example:
            >>> try:
            ...     ProbeSettings(dtype="float16").check()
            ... except ValueError as error:
            ...     print(error)
            dtype must be 'float32' or 'float64', got 'float16'
        """
        PROBE_SOLVERS.get(self.solver)
        self.probe()._check(np.zeros((2, 1)), np.zeros(2))
        if self.random_state is not None and (
            isinstance(self.random_state, bool) or not isinstance(self.random_state, int)
        ):  # it is part of the cache key, written as JSON
            raise ProbeSettingsError(
                f"random_state must be an int or None, got {self.random_state!r}"
            )
        return self


@dataclass(frozen=True)
class ProbeResult:
    """One probe: a layer's (or one of its positions') train and test accuracy.

    ``position`` is None for whole-layer probes, else the position's grid index (row, column);
    ``cached`` says the result came from the cache.
    """

    layer: str
    index: int
    features: int
    train_acc: float
    test_acc: float
    n_iter: int
    converged: bool
    stop_reason: str
    seconds: float
    position: tuple[int, ...] | None = None
    cached: bool = False


@dataclass(frozen=True)
class ProbeResults:
    """The probes of one extraction: results in forward order, and the model's accuracies.

    Example:
        >>> r = ProbeResult("fc", 0, 4, 0.9, 0.8, 12, True, "gradient", 0.1)
        >>> results = ProbeResults("run", "avg4", ProbeSettings(), (r,), {"test": 0.85})
        >>> results.table()[["layer", "test_acc"]].to_dict("records")
        [{'layer': 'fc', 'test_acc': 0.8}]
        >>> [(x.statistic, x.value) for x in results.records(epoch=3)][:2]
        [('probe_train_acc', 0.9), ('probe_test_acc', 0.8)]
    """

    run: str
    reduction: str
    settings: ProbeSettings
    results: tuple[ProbeResult, ...]
    model_accuracy: dict[str, float | None] = field(default_factory=dict)

    def __repr__(self) -> str:
        """A one-line summary (``table()`` has the probes).

        Example:
            >>> ProbeResults("run", "avg4", ProbeSettings(), (), {"test": 0.85})
            ProbeResults(run='run', reduction='avg4', 0 probes, model accuracy test 0.85)
        """
        accuracy = ", ".join(
            f"{k} {v:.4g}" for k, v in self.model_accuracy.items() if v is not None
        )
        return (f"ProbeResults(run={self.run!r}, reduction={self.reduction!r}, "
                f"{len(self.results)} probes" + (f", model accuracy {accuracy})" if accuracy else ")"))  # fmt: skip

    def _repr_html_(self) -> str:
        import html

        return f"<p>{html.escape(repr(self))}</p>" + self.table().to_html(index=False)

    def table(self) -> pd.DataFrame:
        """One row per probe, forward order (positions row-major within a layer)."""
        rows = [asdict(r) for r in self.results]
        columns = [f.name for f in ProbeResult.__dataclass_fields__.values()]
        return pd.DataFrame(rows, columns=columns)

    def records(self, epoch: int, phase: str | None = None, run: str | None = None) -> list[Record]:
        """Tidy records of whole-layer probes and of the model's accuracies."""
        phase = phase or probe_phase(self.reduction)
        run = run or self.run
        now = time.time()
        rows = []
        for r in self.results:
            if r.position is not None:
                continue
            rows.append(
                Record(run, epoch, phase, r.layer, r.index, "probe_train_acc", r.train_acc, now)
            )
            rows.append(
                Record(run, epoch, phase, r.layer, r.index, "probe_test_acc", r.test_acc, now)
            )
        for split, accuracy in self.model_accuracy.items():
            if accuracy is not None:
                rows.append(
                    Record(
                        run, epoch, phase, None, None, f"model_{split}_acc", float(accuracy), now
                    )
                )
        return rows


def probe_phase(reduction: str) -> str:
    """``"probe"`` for the default reduction (avg4), else ``"probe-<reduction>"``.

    Example:
        >>> probe_phase("avg4"), probe_phase("gap")
        ('probe', 'probe-gap')
    """
    name = Reduction.parse(reduction).name
    return PROBE_PHASE if name == DEFAULT_REDUCTION else f"{PROBE_PHASE}-{name}"


def write_probe_records(
    store: str | os.PathLike, results: ProbeResults, *, epoch: int, run: str | None = None
) -> int:
    """Replace the probe records of (run, phase) in a SQLite store, in one transaction: those
    of the probed layers and the model's accuracies (other layers' records stay).

    Returns the number of records written.

    Example:
        >>> import tempfile
        >>> r = ProbeResult("fc", 0, 4, 0.9, 0.8, 12, True, "gradient", 0.1)
        >>> results = ProbeResults("demo", "avg4", ProbeSettings(), (r,), {"test": 0.85})
        >>> from pathlib import Path
        >>> path = Path(tempfile.mkdtemp()) / "records.sqlite"
        >>> write_probe_records(path, results, epoch=1), write_probe_records(path, results, epoch=1)
        (3, 3)
        >>> from layerscope.store import load
        >>> len(load(path))
        3
    """
    rows = results.records(epoch, run=run)
    layers = sorted({r.layer for r in results.results})
    sink = SQLiteSink(store)
    try:
        sink.replace(rows, run=run or results.run, phase=probe_phase(results.reduction),
                     layers=layers)  # fmt: skip
    finally:
        sink.close()
    return len(rows)
