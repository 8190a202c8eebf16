"""The small JSON files of a run folder: ``run.json`` (what produced the run) and ``layers.json``
(the recorded layers in forward order), and the status files the trainer leaves: ``done.json``
(training ended: finished, or diverged) and ``error.json`` (the last attempt failed). Written
atomically as valid JSON (no NaN); read back by reports and analyses (:func:`read_status`)."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from layerscope.store.atomic import atomic_write_json

__all__ = [
    "RunStatus",
    "read_layers",
    "read_run_info",
    "read_status",
    "write_layers",
    "write_run_info",
]

RUN_FILE = "run.json"
LAYERS_FILE = "layers.json"
DONE_FILE = "done.json"
ERROR_FILE = "error.json"


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
    atomic_write_json(path, _plain(info))
    return path


def read_run_info(run_dir: str | os.PathLike) -> dict[str, Any]:
    """``run.json`` of a run folder; ``{}`` when it was not written."""
    path = Path(run_dir) / RUN_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def write_layers(run_dir: str | os.PathLike, layers: Sequence[Any]) -> Path:
    """Write ``layers.json`` from ``LayerInfo`` records (or dicts), in the order given."""
    path = Path(run_dir) / LAYERS_FILE
    atomic_write_json(path, [_plain(layer) for layer in layers])
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


@dataclasses.dataclass(frozen=True)
class RunStatus:
    """Where a run stands: ``state`` is ``"finished"``, ``"diverged"``, ``"failed"``,
    ``"in progress"``, ``"recorded"`` (a Tracker used without the trainer) or ``"unknown"``; ``epoch`` the 1-based epoch it refers to (the one that
    diverged or failed, the last one recorded), ``epochs`` the configured number, ``message``
    the reason (diverged, failed)."""

    state: str
    epoch: int | None = None
    epochs: int | None = None
    message: str = ""

    def __str__(self) -> str:
        """How reports say it.

        Example:
            >>> str(RunStatus("diverged", 3, 10, "train loss is nan"))
            'diverged at epoch 3 of 10: train loss is nan'
            >>> str(RunStatus("in progress", 2, 5))
            'in progress (epoch 2 of 5)'
        """
        of = f" of {self.epochs}" if self.epochs else ""
        if self.state == "recorded":
            return f"recorded ({self.epoch} epoch{'s' if self.epoch != 1 else ''})"
        if self.state == "in progress":
            return f"in progress (epoch {self.epoch or 0}{of})"
        at = f" at epoch {self.epoch}{of}" if self.epoch else ""
        return f"{self.state}{at}" + (f": {self.message}" if self.message else "")


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def read_status(run_dir: str | os.PathLike, epochs_recorded: int | None = None) -> RunStatus:
    """The status of a run folder from its files: ``done.json`` (finished or diverged),
    ``error.json`` (failed), else in progress at ``epochs_recorded`` (the number of epochs
    with records; the caller knows it from the store) of the configured epochs.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> read_status(folder).state
        'unknown'
        >>> atomic_write_json(f"{folder}/done.json", {"status": "diverged", "epoch": 2,
        ...     "epochs": 4, "message": "train loss is inf"})
        >>> str(read_status(folder))
        'diverged at epoch 2 of 4: train loss is inf'
    """
    folder = Path(run_dir)
    config = read_run_info(folder).get("metadata", {}).get("config", {})
    configured = config.get("epochs") if isinstance(config, dict) else None
    done = _read_json(folder / DONE_FILE)
    if done:
        state = done.get("status", "finished")
        epoch = done.get("epoch", done.get("epochs"))
        return RunStatus(state, epoch, done.get("epochs", configured), done.get("message", ""))
    error = _read_json(folder / ERROR_FILE)
    if error:
        return RunStatus("failed", error.get("epoch"), configured, error.get("message", ""))
    if configured is None:  # a Tracker used directly: no configured length to compare with
        return RunStatus("recorded", epochs_recorded) if epochs_recorded else RunStatus("unknown")
    return RunStatus("in progress", epochs_recorded, configured)
