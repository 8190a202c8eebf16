"""What decides a probe (:class:`ProbeSettings`), what it found (:class:`ProbeResults`), and how
its results become records (phase ``"probe"``; statistics ``probe_train_acc`` /
``probe_test_acc`` per layer, and the model's own ``model_train_acc`` / ``model_test_acc``)."""

from __future__ import annotations

import difflib
import os
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd

from layerscope.errors import ProbeSettingsError, fix, toml_lines
from layerscope.probes.estimator import LogisticProbe
from layerscope.probes.reduction import DEFAULT_REDUCTION, Reduction
from layerscope.probes.solvers import DEFAULT_SOLVER, PROBE_SOLVERS
from layerscope.store.records import Record
from layerscope.store.sqlite import SQLiteSink

__all__ = [
    "PROBE_PHASE",
    "PROBE_PRESETS",
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

    Defaults (the ``"standardized"`` preset): the torch L-BFGS solver, sklearn's C = 1 and
    tol = 1e-4, standardised float32 features. ``ProbeSettings.preset("dissertation")`` is the
    dissertation's recipe (6.2.5, 8.3.1): SAGA for 100 epochs on raw, unstandardised features.

    Example:
        >>> ProbeSettings(solver="saga").check().probe()
        LogisticProbe(C=1.0, solver='saga', tol=0.0001, max_iter=None, standardize=True)
        >>> ProbeSettings.preset("dissertation").probe()
        LogisticProbe(C=1.0, solver='saga', tol=0.0001, max_iter=100, standardize=False)
        >>> ProbeSettings().preset_name, ProbeSettings(C=2.0).preset_name
        ('standardized', 'custom')
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

    @classmethod
    def preset(cls, name: str, **changes) -> ProbeSettings:
        """The settings of preset ``name`` (:data:`PROBE_PRESETS`), with ``changes`` applied."""
        if name not in PROBE_PRESETS:
            close = difflib.get_close_matches(str(name), list(PROBE_PRESETS), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            good = close[0] if close else "standardized"
            raise ProbeSettingsError(
                f"unknown probe preset {name!r}; choose one of {sorted(PROBE_PRESETS)}.{hint} "
                + fix(
                    python=f"(ProbeSettings.preset({good!r}))",
                    config=toml_lines("probe_preset", good),
                    cli=f"(--preset {good})",
                )
            )
        return replace(PROBE_PRESETS[name], **changes)

    @property
    def preset_name(self) -> str:
        """The name of the preset these settings equal, else ``"custom"``."""
        return next((n for n, p in PROBE_PRESETS.items() if p == self), "custom")

    def describe(self) -> str:
        """One line for reports and command output.

        Example:
            >>> ProbeSettings.preset("dissertation").describe()
            'dissertation preset: saga, 100 epochs, raw features, C=1'
        """
        iterations = "solver default" if self.max_iter is None else f"{self.max_iter} epochs"
        if self.solver != "saga" and self.max_iter is not None:
            iterations = f"{self.max_iter} iterations"
        features = "standardised features" if self.standardize else "raw features"
        return (f"{self.preset_name} preset: {self.solver}, {iterations}, {features}, "
                f"C={self.C:g}")  # fmt: skip

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


#: Named probe settings. ``"standardized"`` (the default) standardises features, which
#: conditions the problem and makes C mean the same for every layer; ``"dissertation"`` is the
#: recipe of the dissertation (6.2.5, 8.3.1): sklearn's SAGA for 100 epochs on raw features. On
#: low-variance layers raw features can score far lower (docs/probes.md).
PROBE_PRESETS: dict[str, ProbeSettings] = {
    "standardized": ProbeSettings(),
    "dissertation": ProbeSettings(solver="saga", max_iter=100, standardize=False),
}


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
        >>> [(x.statistic, x.value) for x in results.records(epoch=3)]  # doctest: +NORMALIZE_WHITESPACE
        [('probe_train_acc', 0.9), ('probe_test_acc', 0.8), ('model_test_acc', 0.85),
         ('probe_standardized', 1.0), ('probe_dissertation_preset', 0.0)]
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
        """Tidy records of whole-layer probes, of the model's accuracies, and of the recipe:
        model-level ``probe_standardized`` (1 or 0) and ``probe_dissertation_preset`` (1 when
        the settings are the ``"dissertation"`` preset), which the report names."""
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
        recipe = {
            "probe_standardized": float(self.settings.standardize),
            "probe_dissertation_preset": float(self.settings.preset_name == "dissertation"),
        }
        for statistic, value in recipe.items():
            rows.append(Record(run, epoch, phase, None, None, statistic, value, now))
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
        (5, 5)
        >>> from layerscope.store import load
        >>> len(load(path))
        5
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
