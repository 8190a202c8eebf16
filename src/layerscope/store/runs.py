"""Run folders and :func:`load`: every store of one run or many as one pandas DataFrame.

A run folder holds::

    records.sqlite      the default store (or records.csv / records.jsonl)
    layers.json         the recorded layers (LayerInfo records) in forward order
    run.json            what produced the run: options, package versions, start time
    figures/*.png       rewritten atomically at every epoch end
    report.html         a self-contained page (figures embedded)
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from layerscope.store.records import COLUMNS
from layerscope.store.sinks import SINK_FILES

__all__ = ["find_stores", "load", "read_layers"]

_STORE_NAMES = (SINK_FILES["sqlite"], SINK_FILES["jsonl"], SINK_FILES["csv"])


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
        raise FileNotFoundError(f"no run folder or store at {path}")
    stores = []
    for folder in sorted({p.parent for name in _STORE_NAMES for p in path.rglob(name)}):
        for name in _STORE_NAMES:
            if (folder / name).is_file():
                stores.append(folder / name)
                break
    return stores


def _complete_lines(path: Path) -> str:
    """The file's text without a partial last line (left by a crash mid-write)."""
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return text


def _read_store(path: Path) -> pd.DataFrame:
    if path.suffix == ".sqlite":
        uri = f"file:{path}?mode=ro"
        try:
            with sqlite3.connect(uri, uri=True) as connection:
                return pd.read_sql_query(f"SELECT {', '.join(COLUMNS)} FROM records", connection)
        except (sqlite3.DatabaseError, pd.errors.DatabaseError) as error:
            raise ValueError(f"{path} is not a readable layerscope store: {error}") from None
    if path.suffix == ".jsonl":
        lines = [json.loads(line) for line in _complete_lines(path).splitlines() if line.strip()]
        return pd.DataFrame(lines, columns=list(COLUMNS))
    if path.suffix == ".csv":
        text = _complete_lines(path)
        if not text.strip():
            return pd.DataFrame(columns=list(COLUMNS))
        return pd.read_csv(io.StringIO(text), keep_default_na=False, na_values=[""])
    raise ValueError(f"{path}: not a store (expected .sqlite, .jsonl or .csv)")


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
        >>> from layerscope.store.sinks import SQLiteSink
        >>> from layerscope.store.records import Record
        >>> folder = tempfile.mkdtemp()
        >>> sink = SQLiteSink(f"{folder}/records.sqlite")
        >>> sink.write([Record("demo", 0, "train", "fc", 0, "saturation", 0.5, 0.0)])
        >>> sink.close()
        >>> load(folder)[["run", "layer", "statistic", "value"]].to_dict("records")
        [{'run': 'demo', 'layer': 'fc', 'statistic': 'saturation', 'value': 0.5}]
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    stores = [store for path in paths for store in find_stores(path)]
    if not stores:
        raise FileNotFoundError(
            f"no layerscope store ({', '.join(_STORE_NAMES)}) under {', '.join(map(str, paths))}"
        )
    frames = [_read_store(store) for store in stores]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return _typed(pd.DataFrame(columns=list(COLUMNS)))
    return _typed(pd.concat(frames, ignore_index=True))


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[list(COLUMNS)].copy()
    frame["epoch"] = frame["epoch"].astype("int64")
    frame["layer_index"] = pd.to_numeric(frame["layer_index"]).astype("Int64")
    frame["value"] = pd.to_numeric(frame["value"]).astype("float64")
    frame["wall_time"] = pd.to_numeric(frame["wall_time"]).astype("float64")
    for column in ("run", "phase", "layer", "statistic"):
        frame[column] = frame[column].astype("object").where(frame[column].notna(), None)
    return frame


def read_layers(run_dir: str | os.PathLike) -> list[dict]:
    """The recorded layers of a run (``layers.json``), in forward order; [] if not written.

    Example:
        >>> import tempfile
        >>> read_layers(tempfile.mkdtemp())
        []
    """
    path = Path(run_dir) / "layers.json"
    if not path.is_file():
        return []
    return json.loads(path.read_text(encoding="utf-8"))
