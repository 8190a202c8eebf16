"""Run folders and :func:`load`: every store of one run or many as one pandas DataFrame.

A run folder holds::

    records.sqlite      the default store (or records.jsonl / records.csv, see layerscope.store.sinks)
    layers.json         the recorded layers (LayerInfo records) in forward order
    run.json            what produced the run: options, package versions, start time
    figures/*.png       written by the report (layerscope.report)
    report.html         a self-contained page (figures embedded)

Stores are found and read through the registered sink formats
(:func:`~layerscope.store.sinks.store_formats`): a new readable format is found here without
changes to this module.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from layerscope.errors import RunFolderError, StoreError
from layerscope.store.records import COLUMNS, Record
from layerscope.store.sinks import SinkFormat, store_formats

__all__ = ["find_stores", "load", "records_frame", "stored_epochs"]


def _format_of(path: Path) -> SinkFormat:
    for sink_format in store_formats():
        if path.name == sink_format.file_name:
            return sink_format
    names = ", ".join(f.file_name for f in store_formats())
    raise StoreError(f"{path}: not a store (expected a file named {names})")


def _store_in(folder: Path) -> Path | None:
    """The store a folder's records are read from (several formats hold the same records)."""
    for sink_format in store_formats():
        if (folder / sink_format.file_name).is_file():
            return folder / sink_format.file_name
    return None


def find_stores(path: str | os.PathLike) -> list[Path]:
    """Store files under ``path``: itself if it is a store file, else one per run folder.

    In a folder holding several stores, the SQLite store wins over JSON lines over CSV (they
    hold the same records).

    Example:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for run in ("a", "b"):
        ...     (root / run).mkdir()
        ...     _ = (root / run / "records.csv").write_text("")
        >>> [p.relative_to(root).as_posix() for p in find_stores(root)]
        ['a/records.csv', 'b/records.csv']
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.exists():
        raise RunFolderError(f"no run folder or store at {path}")
    names = [f.file_name for f in store_formats()]
    folders = sorted({p.parent for name in names for p in path.rglob(name)})
    return [store for folder in folders if (store := _store_in(folder)) is not None]


def load(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Records of one run or many as one tidy DataFrame.

    Args:
        paths: a run folder, a folder of run folders (searched recursively), a store file, or
            a list of any of these.

    Returns:
        Columns ``run, epoch, phase, layer, layer_index, statistic, value, wall_time`` (see
        :class:`~layerscope.store.records.Record`); ``layer``/``layer_index`` are missing for
        model-level values.

    Example:
        >>> import tempfile
        >>> from layerscope.store.sqlite import SQLiteSink
        >>> folder = tempfile.mkdtemp()
        >>> sink = SQLiteSink(f"{folder}/records.sqlite")
        >>> sink.write([Record("demo", 0, "train", "fc", 0, "saturation", 0.5, 0.0)])
        >>> sink.close()
        >>> load(folder)[["run", "layer", "statistic", "value"]].to_dict("records")
        [{'run': 'demo', 'layer': 'fc', 'statistic': 'saturation', 'value': 0.5}]
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = list(paths)
    stores = [store for path in paths for store in find_stores(path)]
    if not stores:
        names = ", ".join(f.file_name for f in store_formats())
        raise RunFolderError(f"no layerscope store ({names}) under {', '.join(map(str, paths))}")
    frames = [_format_of(store).reader(store) for store in stores]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return _typed(pd.DataFrame(columns=list(COLUMNS)))
    return _typed(pd.concat(frames, ignore_index=True))


def records_frame(records: Sequence[Record]) -> pd.DataFrame:
    """Records held in memory as the same tidy DataFrame :func:`load` returns.

    Example:
        >>> records_frame([Record("r", 0, "eval", None, None, "loss", 1.0, 0.0)]).layer.tolist()
        [None]
    """
    return _typed(pd.DataFrame([r.as_tuple() for r in records], columns=list(COLUMNS)))


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[list(COLUMNS)].copy()
    frame["epoch"] = frame["epoch"].astype("int64")
    frame["layer_index"] = pd.to_numeric(frame["layer_index"]).astype("Int64")
    frame["value"] = pd.to_numeric(frame["value"]).astype("float64")
    frame["wall_time"] = pd.to_numeric(frame["wall_time"]).astype("float64")
    for column in ("run", "phase", "layer", "statistic"):
        frame[column] = frame[column].astype("object").where(frame[column].notna(), None)
    return frame


def stored_epochs(
    run_dir: str | os.PathLike, run: str, from_epoch: int = 0
) -> tuple[int, int | None, int | None]:
    """How many records of ``run`` from ``from_epoch`` on the store in ``run_dir`` holds, with
    their first and last epoch; ``(0, None, None)`` when there is no store. The SQLite store
    answers with one query, without reading its records.

    Example:
        >>> import tempfile
        >>> stored_epochs(tempfile.mkdtemp(), "r")
        (0, None, None)
    """
    folder = Path(run_dir)
    store = _store_in(folder) if folder.is_dir() else None
    if store is None:
        return 0, None, None
    sink_format = _format_of(store)
    if sink_format.epochs_from is not None:
        return sink_format.epochs_from(store, run, from_epoch)
    frame = sink_format.reader(store)
    mine = frame[(frame.run == run) & (pd.to_numeric(frame.epoch) >= from_epoch)]
    if mine.empty:
        return 0, None, None
    return len(mine), int(mine.epoch.min()), int(mine.epoch.max())
