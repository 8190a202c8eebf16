"""Line-based sinks: CSV and JSON lines, each a writer and its reader.

Both append whole lines at each flush and fsync; a crash can leave at most one partial last line,
which the readers ignore and the writers cut off before appending again.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from layerscope.store.records import COLUMNS, Record
from layerscope.store.sinks import SINKS, ClosedMixin, SinkFormat

__all__ = ["CSVSink", "JSONLinesSink", "read_csv", "read_jsonl"]


class _LineSink(ClosedMixin):
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
    """One JSON object per line, valid JSON: a non-finite value is written as the string
    ``"nan"``, ``"inf"`` or ``"-inf"`` (JSON has no NaN or Infinity) and read back as the float."""

    def _line(self, record: Record) -> str:
        row = record.as_dict()
        if isinstance(row["value"], float) and not math.isfinite(row["value"]):
            row["value"] = str(row["value"])
        return json.dumps(row, allow_nan=False) + "\n"


def _complete_lines(path: Path) -> str:
    """The file's text without a partial last line (left by a crash mid-write)."""
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return text


def read_jsonl(path: Path) -> pd.DataFrame:
    """The records of a JSON-lines store (a partial last line is ignored)."""
    lines = [json.loads(line) for line in _complete_lines(path).splitlines() if line.strip()]
    frame = pd.DataFrame(lines, columns=list(COLUMNS))
    if frame.value.dtype == object:  # "nan" / "inf" / "-inf" strings (and older bare values)
        frame["value"] = frame.value.map(lambda v: float(v) if v is not None else math.nan)
    return frame


def read_csv(path: Path) -> pd.DataFrame:
    """The records of a CSV store (a partial last line is ignored)."""
    text = _complete_lines(path)
    if not text.strip():
        return pd.DataFrame(columns=list(COLUMNS))
    return pd.read_csv(io.StringIO(text), keep_default_na=False, na_values=[""])


SINKS.add(
    "jsonl",
    SinkFormat("records.jsonl", JSONLinesSink, read_jsonl, priority=10,
               description="one JSON object per line, appended at each flush"),
)  # fmt: skip
SINKS.add(
    "csv",
    SinkFormat("records.csv", CSVSink, read_csv, priority=20,
               description="comma-separated records with a header, appended at each flush"),
)  # fmt: skip
