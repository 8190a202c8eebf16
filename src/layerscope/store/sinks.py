"""Where records go (SPEC C4): sinks with ``write``, ``flush`` and ``close``.

Only sinks have side effects. ``write`` hands over records; ``flush`` makes everything written so
far durable (the tracker flushes at the end of every phase and epoch); ``close`` flushes and
releases the file, and is safe to call twice.

Crash safety: :class:`SQLiteSink`, the default store, commits one transaction per flush; SQLite's
journal rolls back a transaction cut short by a crash, so a killed process loses at most the
records since the last flush and never corrupts earlier ones. :class:`CSVSink` and
:class:`JSONLinesSink` append whole lines at each flush and fsync; a crash can leave at most one
partial last line, which :func:`layerscope.load` ignores.

Why SQLite for the default: it ships with Python, is transactional, survives SIGKILL, needs no
server, and is queryable with plain SQL (``sqlite3 records.sqlite "select ..."``) by people who do
not use layerscope.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from layerscope.store.records import COLUMNS, Record

__all__ = [
    "CSVSink",
    "JSONLinesSink",
    "MemorySink",
    "SQLiteSink",
    "Sink",
    "TensorBoardSink",
    "close_all",
    "make_sink",
]


@runtime_checkable
class Sink(Protocol):
    """Anything with ``write(records)``, ``flush()`` and ``close()``."""

    def write(self, records: Sequence[Record]) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class _ClosedMixin:
    _closed: bool = False

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"{type(self).__name__} is closed; create a new sink to write again")


class MemorySink(_ClosedMixin):
    """Keeps records in a list (``.records``); for tests and in-process use.

    Example:
        >>> sink = MemorySink()
        >>> sink.write([Record("r", 0, "train", None, None, "loss", 0.5, 0.0)])
        >>> sink.flush(); sink.close(); sink.close()
        >>> len(sink.records)
        1
    """

    def __init__(self) -> None:
        self.records: list[Record] = []

    def write(self, records: Sequence[Record]) -> None:
        self._check_open()
        self.records.extend(records)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._closed = True


_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    run TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    phase TEXT NOT NULL,
    layer TEXT,
    layer_index INTEGER,
    statistic TEXT NOT NULL,
    value REAL,
    wall_time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS records_run_statistic ON records (run, statistic);
"""


class SQLiteSink(_ClosedMixin):
    """The embedded default store: one SQLite file, one transaction per flush.

    Example:
        >>> import tempfile, pathlib, sqlite3
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "records.sqlite"
        >>> sink = SQLiteSink(path)
        >>> sink.write([Record("r", 0, "train", "fc", 0, "saturation", 0.5, 0.0)])
        >>> sink.close()
        >>> sqlite3.connect(path).execute("select statistic, value from records").fetchall()
        [('saturation', 0.5)]
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._connection = sqlite3.connect(self.path, isolation_level="DEFERRED")
            self._connection.executescript(_SCHEMA)
            self._connection.commit()
        except sqlite3.DatabaseError as error:
            raise ValueError(
                f"{self.path} is not a layerscope SQLite store ({error}); pass another path"
            ) from None

    def write(self, records: Sequence[Record]) -> None:
        self._check_open()
        rows = [(*r.as_tuple()[:6], r.value if not math.isnan(r.value) else None, r.wall_time)
                for r in records]  # fmt: skip
        self._connection.executemany(
            f"INSERT INTO records ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
            rows,
        )

    def flush(self) -> None:
        self._check_open()
        self._connection.commit()

    def discard_from(self, run: str, epoch: int) -> int:
        """Delete the records of ``run`` from ``epoch`` on (to resume from a checkpoint of the
        epoch before); returns how many were deleted. Committed at once."""
        self._check_open()
        cursor = self._connection.execute(
            "DELETE FROM records WHERE run = ? AND epoch >= ?", (run, int(epoch))
        )
        self._connection.commit()
        return cursor.rowcount

    def replace(
        self, records: Sequence[Record], *, run: str, phase: str, layers: Sequence[str]
    ) -> None:
        """In one transaction, delete the records of ``run`` in ``phase`` for ``layers`` (and
        that phase's model-level records), then write ``records``: a rerun of an analysis
        replaces its earlier results, and a crash leaves either the old or the new ones."""
        self._check_open()
        self._connection.commit()
        marks = ", ".join("?" * len(layers))
        with self._connection:
            self._connection.execute(
                f"DELETE FROM records WHERE run = ? AND phase = ? AND "
                f"(layer IS NULL OR layer IN ({marks}))",
                (run, phase, *layers),
            )
            self.write(records)

    def close(self) -> None:
        if self._closed:
            return
        self._connection.commit()
        self._connection.close()
        self._closed = True


class _LineSink(_ClosedMixin):
    """Append whole lines at each flush, then fsync."""

    suffix = ""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._pending: list[str] = []
        if self.path.is_file():
            _drop_partial_line(self.path)
        self._handle = open(self.path, "a", encoding="utf-8", newline="")
        if self._handle.tell() == 0:
            header = self._header()
            if header:
                self._pending.append(header)

    def _header(self) -> str:
        return ""

    def _line(self, record: Record) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def write(self, records: Sequence[Record]) -> None:
        self._check_open()
        self._pending.extend(self._line(r) for r in records)

    def flush(self) -> None:
        self._check_open()
        if self._pending:
            self._handle.write("".join(self._pending))
            self._pending.clear()
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        if self._closed:
            return
        self.flush()
        self._handle.close()
        self._closed = True


def _drop_partial_line(path: Path) -> None:
    """A crash may have left a partial last line: cut it off before appending."""
    with open(path, "rb+") as handle:
        data = handle.read()
        if data and not data.endswith(b"\n"):
            handle.truncate(data.rfind(b"\n") + 1)


def _csv_field(value: object) -> str:
    if value is None:
        return ""
    text = repr(value) if isinstance(value, float) else str(value)
    if any(c in text for c in ',"\n\r'):
        text = '"' + text.replace('"', '""') + '"'
    return text


class CSVSink(_LineSink):
    """Comma-separated records with a header line (columns of :data:`COLUMNS`)."""

    def _header(self) -> str:
        return ",".join(COLUMNS) + "\n"

    def _line(self, record: Record) -> str:
        return ",".join(_csv_field(v) for v in record.as_tuple()) + "\n"


class JSONLinesSink(_LineSink):
    """One JSON object per line; infinities are written as ``Infinity`` (Python's json)."""

    def _line(self, record: Record) -> str:
        return json.dumps(record.as_dict()) + "\n"


class TensorBoardSink(_ClosedMixin):
    """TensorBoard event files: tag ``statistic/phase/layer`` (or ``statistic/phase`` for
    model-level values), step = epoch, the record's wall time. Needs ``tensorboard``
    (``pip install layerscope[tensorboard]``). Non-finite values are skipped."""

    def __init__(self, log_dir: str | os.PathLike) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ImportError(
                f"TensorBoardSink needs the tensorboard package ({error}); install it with "
                f"pip install 'layerscope[tensorboard]' or choose another sink"
            ) from None
        self.log_dir = Path(log_dir)
        self._writer = SummaryWriter(log_dir=str(self.log_dir))

    def write(self, records: Sequence[Record]) -> None:
        self._check_open()
        for r in records:
            if not math.isfinite(r.value):
                continue
            tag = f"{r.statistic}/{r.phase}" + (f"/{r.layer}" if r.layer else "")
            self._writer.add_scalar(tag, r.value, global_step=r.epoch, walltime=r.wall_time)

    def flush(self) -> None:
        self._check_open()
        self._writer.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._writer.close()
        self._closed = True


#: Sink names accepted by :func:`make_sink`, with the file (or folder) they write in a run folder.
SINK_FILES = {
    "sqlite": "records.sqlite",
    "csv": "records.csv",
    "jsonl": "records.jsonl",
    "tensorboard": "tensorboard",
}


def make_sink(spec: str | Sink, run_dir: str | os.PathLike | None) -> Sink:
    """A sink from a name (``"sqlite"``, ``"csv"``, ``"jsonl"``, ``"tensorboard"``, ``"memory"``)
    placed in ``run_dir``, or a ready sink object passed through.

    Example:
        >>> import tempfile
        >>> sink = make_sink("csv", tempfile.mkdtemp())
        >>> sink.path.name
        'records.csv'
        >>> sink.close()
    """
    if not isinstance(spec, str):
        if not isinstance(spec, Sink):
            raise TypeError(
                f"a sink must be a name ({', '.join([*SINK_FILES, 'memory'])}) or an object with "
                f"write/flush/close, got {type(spec).__name__}"
            )
        return spec
    if spec == "memory":
        return MemorySink()
    if spec not in SINK_FILES:
        raise ValueError(
            f"unknown sink {spec!r}; choose one of {', '.join([*SINK_FILES, 'memory'])} or pass a "
            f"sink object"
        )
    if run_dir is None:
        raise ValueError(f"the {spec!r} sink writes into a run folder: pass run_dir=...")
    path = Path(run_dir) / SINK_FILES[spec]
    factory = {
        "sqlite": SQLiteSink,
        "csv": CSVSink,
        "jsonl": JSONLinesSink,
        "tensorboard": TensorBoardSink,
    }[spec]
    return factory(path)


def close_all(sinks: Iterable[Sink]) -> None:
    """Close every sink even if one fails; re-raise the first failure.

    Example:
        >>> sinks = [MemorySink(), MemorySink()]
        >>> close_all(sinks)
        >>> sinks[0].write([])
        Traceback (most recent call last):
        ...
        ValueError: MemorySink is closed; create a new sink to write again
    """
    first: BaseException | None = None
    for sink in sinks:
        try:
            sink.close()
        except Exception as error:  # keep closing the others
            first = first or error
    if first is not None:
        raise first
