"""The embedded default store: one SQLite file per run folder, one transaction per flush.

Crash safety: :class:`SQLiteSink` commits one transaction per flush; SQLite's journal rolls back
a transaction cut short by a crash, so a killed process loses at most the records since the last
flush and never corrupts earlier ones.

Why SQLite for the default: it ships with Python, is transactional, survives SIGKILL, needs no
server, and is queryable with plain SQL (``sqlite3 records.sqlite "select ..."``) by people who do
not use layerscope.
"""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from layerscope.errors import StoreError
from layerscope.store.records import COLUMNS, Record
from layerscope.store.sinks import SINKS, ClosedMixin, SinkFormat

__all__ = ["FILE_NAME", "SQLiteSink", "read_sqlite", "sqlite_epochs"]

#: The store's file in a run folder.
FILE_NAME = "records.sqlite"

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


class SQLiteSink(ClosedMixin):
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
            raise StoreError(
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
        self,
        records: Sequence[Record],
        *,
        run: str,
        phase: str,
        layers: Sequence[str],
        statistics: Sequence[str] = (),
    ) -> None:
        """In one transaction, delete the records of ``run`` in ``phase`` for ``layers`` (and
        that phase's model-level records), then write ``records``: a rerun of an analysis
        replaces its earlier results, and a crash leaves either the old or the new ones.
        ``statistics`` (SQL ``LIKE`` patterns, e.g. ``"esd_%"``) limits the deletion to those
        statistics, for an analysis that shares its phase with the Tracker's records."""
        self._check_open()
        self._connection.commit()
        marks = ", ".join("?" * len(layers))
        only = ""
        if statistics:
            only = " AND (" + " OR ".join("statistic LIKE ?" for _ in statistics) + ")"
        with self._connection:
            self._connection.execute(
                f"DELETE FROM records WHERE run = ? AND phase = ? AND "
                f"(layer IS NULL OR layer IN ({marks})){only}",
                (run, phase, *layers, *statistics),
            )
            self.write(records)

    def close(self) -> None:
        if self._closed:
            return
        self._connection.commit()
        self._connection.close()
        self._closed = True


def read_sqlite(path: Path) -> pd.DataFrame:
    """Every record of a SQLite store (opened read-only).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / FILE_NAME
        >>> sink = SQLiteSink(path); sink.write([Record("r", 0, "eval", None, None, "loss", 1.0, 0.0)])
        >>> sink.close()
        >>> read_sqlite(path).statistic.tolist()
        ['loss']
    """
    uri = f"file:{path}?mode=ro"
    try:
        with sqlite3.connect(uri, uri=True) as connection:
            return pd.read_sql_query(f"SELECT {', '.join(COLUMNS)} FROM records", connection)
    except (sqlite3.DatabaseError, pd.errors.DatabaseError) as error:
        raise StoreError(f"{path} is not a readable layerscope store: {error}") from None


def sqlite_epochs(path: Path, run: str, from_epoch: int) -> tuple[int, int | None, int | None]:
    """How many records of ``run`` from ``from_epoch`` on the store holds, and their first and
    last epoch: one SQL aggregate, not a read of the store.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / FILE_NAME
        >>> sink = SQLiteSink(path)
        >>> sink.write([Record("r", e, "eval", None, None, "loss", 1.0, 0.0) for e in range(3)])
        >>> sink.close()
        >>> sqlite_epochs(path, "r", 1)
        (2, 1, 2)
    """
    uri = f"file:{path}?mode=ro"
    try:
        with sqlite3.connect(uri, uri=True) as connection:
            row = connection.execute(
                "SELECT COUNT(*), MIN(epoch), MAX(epoch) FROM records WHERE run = ? AND epoch >= ?",
                (run, int(from_epoch)),
            ).fetchone()
    except sqlite3.DatabaseError as error:
        raise StoreError(f"{path} is not a readable layerscope store: {error}") from None
    return int(row[0]), row[1], row[2]


SINKS.add(
    "sqlite",
    SinkFormat(
        FILE_NAME,
        SQLiteSink,
        read_sqlite,
        priority=0,
        description="the default store: one SQLite file, crash-safe, queryable with SQL",
        epochs_from=sqlite_epochs,
    ),
)
