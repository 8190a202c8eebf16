"""A live report: figures and ``report.html`` rewritten at every epoch end, at a constant cost.

:class:`ReportWriter` is a Tracker callback (``Tracker(..., callbacks=[ReportWriter()])``); the
experiment runner and the demo attach one. It keeps what the report shows in memory
(:class:`ReportRecords`: the latest value of every per-layer statistic, the saturation of every
epoch for the heatmaps, the model-level values of every epoch for the table), adds each epoch's
new records to it, and renders the page from that. The store is read once, when a continued
run first reports, so an epoch end costs the same at epoch 200 as at epoch 2: what grows is
only the epoch axis of the heatmaps and the rows of the per-epoch table.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from layerscope.errors import OptionError
from layerscope.report.html import write_report
from layerscope.report.sections import history_statistics
from layerscope.store.records import Record
from layerscope.store.runs import find_stores, load, records_frame

if TYPE_CHECKING:
    from layerscope.tracking.tracker import Tracker

__all__ = ["ReportRecords", "ReportWriter"]

#: Per-layer statistics whose every epoch the report shows (layer x epoch heatmaps); registered
#: sections add theirs (:func:`~layerscope.report.sections.history_statistics`).
HISTORY_STATISTICS = frozenset({"saturation"})


class ReportRecords:
    """The records a report needs, updated incrementally.

    Example:
        >>> records = ReportRecords()
        >>> records.add([Record("r", e, "train", "fc", 0, "saturation", 0.1 * e, 0.0)
        ...              for e in range(3)])
        >>> records.add([Record("r", e, "train", "fc", 0, "trace", float(e), 0.0) for e in range(3)])
        >>> records.frame().groupby("statistic").size().to_dict()   # every saturation, last trace
        {'saturation': 3, 'trace': 1}
    """

    def __init__(self) -> None:
        self._latest: dict[tuple, Record] = {}
        self._history: dict[tuple, Record] = {}
        self._kept = HISTORY_STATISTICS | history_statistics()

    def add(self, records: Iterable[Record]) -> None:
        for record in records:
            key = (record.run, record.phase, record.layer, record.statistic)
            if record.layer is None or record.statistic in self._kept:
                self._history[(*key, record.epoch)] = record
            else:
                previous = self._latest.get(key)
                if previous is None or record.epoch >= previous.epoch:
                    self._latest[key] = record

    def add_frame(self, frame: pd.DataFrame) -> None:
        """Add the records of a DataFrame of :func:`layerscope.load`'s shape."""
        columns = list(Record.__dataclass_fields__)
        self.add(Record(*[None if pd.isna(v) else v for v in row])
                 for row in frame[columns].itertuples(index=False, name=None))  # fmt: skip

    def frame(self) -> pd.DataFrame:
        return records_frame([*self._history.values(), *self._latest.values()])


class ReportWriter:
    """Tracker callback: rewrite ``figures/`` and ``report.html`` of the run folder at every
    epoch end (and at close, when records came after the last epoch end).

    Args:
        run_dir: where to write; default: the tracker's ``run_dir``.

    Example:
        >>> import tempfile, torch
        >>> from torch import nn
        >>> from layerscope.tracking import Tracker
        >>> model, folder = nn.Sequential(nn.Linear(3, 3)), tempfile.mkdtemp()
        >>> with Tracker(model, folder, callbacks=[ReportWriter()]) as tracker:
        ...     _ = model(torch.randn(16, 3))
        ...     tracker.end_epoch()
        >>> (Path(folder) / "report.html").is_file()
        True
    """

    def __init__(self, run_dir: str | os.PathLike | None = None) -> None:
        self.run_dir = run_dir
        self._records: ReportRecords | None = None

    def on_epoch_end(self, tracker: Tracker, records: Sequence[Record]) -> None:
        self._write(tracker, records)

    def on_close(self, tracker: Tracker, records: Sequence[Record]) -> None:
        if records:
            self._write(tracker, records)

    def _write(self, tracker: Tracker, records: Sequence[Record]) -> None:
        folder = self.run_dir if self.run_dir is not None else tracker.run_dir
        if folder is None:
            raise OptionError(
                "ReportWriter needs a run folder: give the Tracker a run_dir, or "
                "ReportWriter(run_dir=...)"
            )
        folder = Path(folder)
        if self._records is None:
            self._records = ReportRecords()
            stores = (
                [s for s in find_stores(folder) if s.parent == folder] if folder.is_dir() else []
            )
            if stores:  # the store holds these records too, and a continued run's earlier ones
                self._records.add_frame(load(stores[0]))
                records = ()
        self._records.add(records)
        write_report(folder, self._records.frame(), tracker.layers)
