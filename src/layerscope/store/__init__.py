"""Records, sinks and run folders: where results go and how they come back (SPEC C4).

- :mod:`~layerscope.store.records`: the tidy :class:`Record` (one value a row) and
  :func:`make_records`;
- :mod:`~layerscope.store.sinks`: the sink contract and the registry :data:`SINKS` of sink
  formats, each with its writer, reader and file (``sqlite``, ``jsonl``, ``csv``,
  ``tensorboard``, ``memory``);
- :mod:`~layerscope.store.runs`: :func:`load` and :func:`find_stores`;
- :mod:`~layerscope.store.folder`: ``run.json`` and ``layers.json``;
- :mod:`~layerscope.store.atomic`: atomic file writes.
"""

from layerscope.store import lines, sqlite, tensorboard  # noqa: F401 - register their formats
from layerscope.store.atomic import atomic_save, atomic_write_bytes, atomic_write_text
from layerscope.store.folder import read_layers, read_run_info, write_layers, write_run_info
from layerscope.store.lines import CSVSink, JSONLinesSink
from layerscope.store.records import COLUMNS, Record, make_records
from layerscope.store.runs import find_stores, load, records_frame, stored_epochs
from layerscope.store.sinks import SINKS, MemorySink, Sink, SinkFormat, close_all, make_sink
from layerscope.store.sqlite import SQLiteSink
from layerscope.store.tensorboard import TensorBoardSink

__all__ = [
    "COLUMNS",
    "SINKS",
    "CSVSink",
    "JSONLinesSink",
    "MemorySink",
    "Record",
    "SQLiteSink",
    "Sink",
    "SinkFormat",
    "TensorBoardSink",
    "atomic_save",
    "atomic_write_bytes",
    "atomic_write_text",
    "close_all",
    "find_stores",
    "load",
    "make_records",
    "make_sink",
    "read_layers",
    "read_run_info",
    "records_frame",
    "stored_epochs",
    "write_layers",
    "write_run_info",
]
