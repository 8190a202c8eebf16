"""The small JSON files of a run folder: ``run.json`` (what produced the run) and ``layers.json``
(the recorded layers in forward order). Written atomically; read back by reports and analyses."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from layerscope.store.atomic import atomic_write_text

__all__ = ["read_layers", "read_run_info", "write_layers", "write_run_info"]

RUN_FILE = "run.json"
LAYERS_FILE = "layers.json"


def _plain(value: Any) -> Any:
    """JSON-able data: dataclasses as dicts, tuples as lists, anything else as its str."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def write_run_info(run_dir: str | os.PathLike, info: Mapping[str, Any]) -> Path:
    """Write ``run.json`` (dataclasses and other values made JSON-able); return its path.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> _ = write_run_info(folder, {"run": "r", "options": {"delta": 0.99}})
        >>> read_run_info(folder)["options"]
        {'delta': 0.99}
    """
    path = Path(run_dir) / RUN_FILE
    atomic_write_text(path, json.dumps(_plain(info), indent=2))
    return path


def read_run_info(run_dir: str | os.PathLike) -> dict[str, Any]:
    """``run.json`` of a run folder; ``{}`` when it was not written."""
    path = Path(run_dir) / RUN_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def write_layers(run_dir: str | os.PathLike, layers: Sequence[Any]) -> Path:
    """Write ``layers.json`` from ``LayerInfo`` records (or dicts), in the order given."""
    path = Path(run_dir) / LAYERS_FILE
    atomic_write_text(path, json.dumps([_plain(layer) for layer in layers], indent=2))
    return path


def read_layers(run_dir: str | os.PathLike) -> list[dict]:
    """The recorded layers of a run (``layers.json``), in forward order; [] if not written.

    Example:
        >>> import tempfile
        >>> read_layers(tempfile.mkdtemp())
        []
    """
    path = Path(run_dir) / LAYERS_FILE
    if not path.is_file():
        return []
    return json.loads(path.read_text(encoding="utf-8"))
