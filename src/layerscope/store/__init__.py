"""Records, sinks and run folders: where results go and how they come back (SPEC C4)."""

from layerscope.store.atomic import atomic_save, atomic_write_bytes, atomic_write_text
from layerscope.store.records import COLUMNS, Record
from layerscope.store.runs import find_stores, load, read_layers
from layerscope.store.sinks import (
    CSVSink,
    JSONLinesSink,
    MemorySink,
    Sink,
    SQLiteSink,
    TensorBoardSink,
    make_sink,
)

__all__ = [
    "COLUMNS",
    "CSVSink",
    "JSONLinesSink",
    "MemorySink",
    "Record",
    "SQLiteSink",
    "Sink",
    "TensorBoardSink",
    "atomic_save",
    "atomic_write_bytes",
    "atomic_write_text",
    "find_stores",
    "load",
    "make_sink",
    "read_layers",
]
