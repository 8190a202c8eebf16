"""Where records go (SPEC C4): the sink contract, the registry of sink formats, and :func:`make_sink`.

Only sinks have side effects. ``write`` hands over records; ``flush`` makes everything written so
far durable (the tracker flushes at the end of every phase and epoch); ``close`` flushes and
releases the file, and is safe to call twice.

A *sink format* is registered once, in the module that implements it, with everything that
belongs to it: the file (or folder) it writes in a run folder, the class that writes it and the
function that reads it back (``None`` for write-only formats such as TensorBoard). :func:`make_sink`
builds writers by name, :func:`layerscope.store.load` and :func:`~layerscope.store.find_stores`
read through the same entries. A new format is one new module that calls
``SINKS.add(name, SinkFormat(...))`` (or an entry point in the group ``layerscope.sinks``).

Built in: ``"sqlite"`` (the default store, :mod:`layerscope.store.sqlite`), ``"jsonl"`` and
``"csv"`` (:mod:`layerscope.store.lines`), ``"tensorboard"`` (:mod:`layerscope.store.tensorboard`)
and ``"memory"`` (below: a list, for tests and in-process use).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from layerscope.errors import OptionError, OptionTypeError
from layerscope.registry import Registry
from layerscope.store.records import Record

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "SINKS",
    "MemorySink",
    "Sink",
    "SinkFormat",
    "close_all",
    "make_sink",
    "store_formats",
    "with_readable_store",
]


@runtime_checkable
class Sink(Protocol):
    """Anything with ``write(records)``, ``flush()`` and ``close()``."""

    def write(self, records: Sequence[Record]) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class ClosedMixin:
    """``_check_open()`` raises once ``close()`` has set ``_closed``."""

    _closed: bool = False

    def _check_open(self) -> None:
        if self._closed:
            raise OptionError(f"{type(self).__name__} is closed; create a new sink to write again")


class MemorySink(ClosedMixin):
    """Keeps records in a list (``.records``); for tests and in-process use.

    Example:
        >>> sink = MemorySink()
        >>> sink.write([Record("r", 0, "train", None, None, "loss", 0.5, 0.0)])
        >>> sink.flush(); sink.close(); sink.close()
        >>> len(sink.records)
        1
    """

    def __init__(self, path: object = None) -> None:
        self.records: list[Record] = []

    def write(self, records: Sequence[Record]) -> None:
        self._check_open()
        self.records.extend(records)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._closed = True


@dataclass(frozen=True)
class SinkFormat:
    """One registered sink format; calling it with a run folder opens its writer there.

    Attributes:
        file_name: what the writer writes inside a run folder (None: nothing on disk).
        writer: class (or callable) taking the path and returning a :class:`Sink`.
        reader: ``reader(path) -> DataFrame`` of the columns of
            :data:`~layerscope.store.records.COLUMNS`, or None for write-only formats.
        priority: among readable formats in one folder, the lowest is read (they hold the same
            records).
        description: one line for ``layerscope list sinks``.
        epochs_from: optional fast ``(path, run, epoch) -> (count, first, last)`` of the records
            of ``run`` from ``epoch`` on (else they are read with ``reader``).
    """

    file_name: str | None
    writer: Callable[[Path | None], Sink]
    reader: Callable[[Path], pd.DataFrame] | None = None
    priority: int = 100
    description: str = ""
    epochs_from: Callable[[Path, str, int], tuple[int, int | None, int | None]] | None = None

    def __call__(self, run_dir: str | os.PathLike | None) -> Sink:
        if self.file_name is None:
            return self.writer(None)
        if run_dir is None:
            raise OptionError(
                f"the sink writing {self.file_name} writes into a run folder: pass run_dir=..."
            )
        return self.writer(Path(run_dir) / self.file_name)


#: Sink formats by name.
SINKS: Registry[SinkFormat] = Registry("sink", "layerscope.sinks")
SINKS.add("memory", SinkFormat(None, MemorySink, description="records kept in a Python list"))


def store_formats() -> list[SinkFormat]:
    """The readable formats (those ``load`` can read), in priority order.

    Example:
        >>> import layerscope.store
        >>> [f.file_name for f in store_formats()]
        ['records.sqlite', 'records.jsonl', 'records.csv']
    """
    formats = [SINKS.get(name) for name in SINKS.list()]
    readable = [f for f in formats if f.reader is not None and f.file_name is not None]
    return sorted(readable, key=lambda f: f.priority)


def make_sink(spec: str | Sink, run_dir: str | os.PathLike | None) -> Sink:
    """A sink from a registered name placed in ``run_dir``, or a ready sink object passed through.

    Example:
        >>> import tempfile
        >>> import layerscope.store
        >>> sink = make_sink("csv", tempfile.mkdtemp())
        >>> sink.path.name
        'records.csv'
        >>> sink.close()
    """
    if isinstance(spec, str):
        return SINKS.get(spec)(run_dir)
    if not isinstance(spec, Sink):
        raise OptionTypeError(
            f"a sink must be a name ({', '.join(SINKS.list())}) or an object with "
            f"write/flush/close, got {type(spec).__name__}"
        )
    return spec


def with_readable_store(specs: Iterable[str | Sink], run_dir) -> tuple[str | Sink, ...]:
    """``specs`` with ``"sqlite"`` added in front when a run folder is given and they are
    registered names none of which can be read back: a write-only format (``"tensorboard"``)
    adds to the store, it does not replace it, so :func:`~layerscope.store.load` and the
    reports still find the records. Sink objects are left as given (their owner chose them).

    Example:
        >>> with_readable_store(["tensorboard"], "runs/x")
        ('sqlite', 'tensorboard')
        >>> with_readable_store(["csv"], "runs/x"), with_readable_store(["tensorboard"], None)
        (('csv',), ('tensorboard',))
    """
    specs = tuple(specs)
    if run_dir is None or not specs or not all(isinstance(s, str) for s in specs):
        return specs
    readable = any(isinstance(s, str) and s in SINKS and SINKS.get(s).reader is not None
                   for s in specs)  # fmt: skip
    return specs if readable else ("sqlite", *specs)


def close_all(sinks: Iterable[Sink]) -> None:
    """Close every sink even if one fails; re-raise the first failure.

    Example:
        >>> sinks = [MemorySink(), MemorySink()]
        >>> close_all(sinks)
        >>> sinks[0].write([])
        Traceback (most recent call last):
        ...
        layerscope.errors.OptionError: MemorySink is closed; create a new sink to write again
    """
    first: BaseException | None = None
    for sink in sinks:
        try:
            sink.close()
        except Exception as error:  # keep closing the others
            first = first or error
    if first is not None:
        raise first
