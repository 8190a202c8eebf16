"""The box at the top of a run's report: what ran (the config in a grid, the keys that vary
across the runs beside it highlighted), on what data, how big the model is, where and with which
versions it ran, when, and where it stands (finished, in progress, failed, diverged).
"""

from __future__ import annotations

import html
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from layerscope.report.page import human
from layerscope.store.folder import RunStatus, read_run_info, read_status

__all__ = ["flat_config", "run_box", "run_config", "sibling_configs", "status_html", "varying_keys"]

#: Shown first in the grid, in this order; the other config keys follow alphabetically.
_FIRST = ("model", "width", "dataset", "resolution", "epochs", "batch_size", "optimizer.name",
          "optimizer.lr", "seed")  # fmt: skip
_VERSIONS = ("layerscope", "torch", "python", "numpy", "scipy", "scikit-learn", "pandas")


def flat_config(config: Mapping, prefix: str = "") -> dict[str, object]:
    """``{"optimizer": {"lr": 0.1}}`` as ``{"optimizer.lr": 0.1}``.

    Example:
        >>> flat_config({"model": "vgg11", "optimizer": {"name": "sgd", "lr": 0.1}})
        {'model': 'vgg11', 'optimizer.name': 'sgd', 'optimizer.lr': 0.1}
    """
    flat: dict[str, object] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value and key not in ("model_kwargs", "dataset_kwargs"):
            flat |= flat_config(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def run_config(run_dir: str | os.PathLike) -> dict:
    """The config a run was trained with (``config.json``, else run.json's metadata)."""
    folder = Path(run_dir)
    path = folder / "config.json"
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            return {}
    config = read_run_info(folder).get("metadata", {}).get("config")
    return config if isinstance(config, dict) else {}


def sibling_configs(run_dir: str | os.PathLike, limit: int = 500) -> list[dict]:
    """Configs of the runs beside this one, this one included: the runs of the same
    ``logs_dir`` when the folder is laid out as ``<logs_dir>/<model>/<dataset>/<res>/<run_id>``,
    else the run folders in the same parent folder (the demo's ``runs/demo/<date-time>``)."""
    folder = Path(run_dir).resolve()
    config = run_config(folder)
    if not config:
        return []
    layout = [str(config.get(k)) for k in ("model", "dataset", "resolution", "run_id")]
    names = [p.name for p in (folder.parents[2], folder.parents[1], folder.parent)] + [folder.name] \
        if len(folder.parents) >= 4 else []  # fmt: skip
    root, pattern = ((folder.parents[3], "*/*/*/*/config.json") if names == layout
                     else (folder.parent, "*/config.json"))  # fmt: skip
    found = []
    try:
        paths = sorted(root.glob(pattern))[:limit]
    except OSError:
        return [config]
    for path in paths:
        try:
            found.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return found


def varying_keys(configs: Iterable[Mapping]) -> list[str]:
    """The flattened keys whose values differ between ``configs`` (run_id and logs_dir aside).

    Example:
        >>> varying_keys([{"model": "a", "width": 1, "run_id": "x"},
        ...               {"model": "a", "width": 0.5, "run_id": "y"}])
        ['width']
    """
    flats = [flat_config(c) for c in configs]
    keys = list(dict.fromkeys(k for f in flats for k in f))
    return [
        k for k in keys
        if k not in ("run_id", "logs_dir")
        and len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flats}) > 1
    ]  # fmt: skip


def status_html(status: RunStatus) -> str:
    """The status as a coloured label and its words."""
    kind = status.state.replace(" ", "-")
    return f"<span class='status status-{kind}'>{html.escape(str(status))}</span>"


def _value(key: str, value: object) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(human(v) for v in value) or "[]"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} = {json.dumps(v, default=str)}" for k, v in value.items()) or "{}"
    return human(value) if value is not None else "none"


def _facts(pairs: Sequence[tuple[str, object]], highlight: Iterable[str] = ()) -> str:
    highlight = set(highlight)
    cells = []
    for key, value in pairs:
        text = html.escape(_value(key, value))
        if key in highlight:
            text = (
                f"<span class='varies' title='varies across the runs beside this one'>{text}</span>"
            )
        cells.append(f"<div><b>{html.escape(key)}</b> {text}</div>")
    return f"<div class='facts'>{''.join(cells)}</div>"


def _model_size(df: pd.DataFrame) -> list[tuple[str, object]]:
    rows = df[(df.phase == "run") & df.layer.isna()]
    values = rows.groupby("statistic").value.last() if len(rows) else {}
    return [(name, values[name]) for name in ("parameters", "macs", "flops") if name in values]


def _when(df: pd.DataFrame, info: dict) -> list[tuple[str, object]]:
    pairs: list[tuple[str, object]] = [("started", info.get("started", "?"))]
    if len(df) and df.wall_time.notna().any():
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(float(df.wall_time.max())))
        pairs.append(("last record", stamp))
    return pairs


def run_box(run_dir: str | os.PathLike, df: pd.DataFrame, layers: Sequence[dict]) -> str:
    """The run box (trusted HTML): status, what ran, data, model size, device and versions."""
    folder = Path(run_dir)
    info = read_run_info(folder)
    epochs = int(df.epoch.max()) + 1 if len(df) and df.epoch.notna().any() else 0
    status = read_status(folder, epochs_recorded=epochs)
    done = _done(folder)
    config = run_config(folder)
    data = done.get("data", {})
    siblings = sibling_configs(folder) if config else []
    varying = varying_keys(siblings)
    flat = flat_config(config)
    order = [k for k in _FIRST if k in flat] + sorted(k for k in flat if k not in _FIRST)
    what = [("model", info.get("model", "?"))] if not config else []
    what += [(key, flat[key]) for key in order]
    sizes = [("train samples", data.get("train_size")), ("test samples", data.get("test_size")),
             ("classes", data.get("num_classes")), ("input channels", data.get("in_channels"))]  # fmt: skip
    sizes = [(k, v) for k, v in sizes if v is not None]
    versions = info.get("versions", {})
    where = [("device", done.get("device", config.get("device", "?")))] if config else []
    where += [(name, versions[name]) for name in _VERSIONS if name in versions]
    parts = [f"<p>Status: {status_html(status)}</p>"]
    main = [(k, v) for k, v in what if not k.startswith("tracker.")]
    tracker = [(k, v) for k, v in what if k.startswith("tracker.")]
    parts.append("<h3>Config</h3>" + _facts(main, varying) if main else "")
    if tracker:
        parts.append("<details><summary>tracker options</summary>"
                     + _facts(tracker, varying) + "</details>")  # fmt: skip
    if varying:
        parts.append(f"<p class='note'>Highlighted: the keys that vary across the "
                     f"{len(siblings)} runs beside this one "
                     f"({html.escape(', '.join(varying))}).</p>")  # fmt: skip
    size = [("recorded layers", len(layers)), ("epochs recorded", epochs), *_model_size(df)]
    parts.append("<h3>Data and model</h3>" + _facts(sizes + size))
    parts.append("<h3>Where and when</h3>" + _facts(where + _when(df, info)))
    return f"<div class='box runbox'>{''.join(parts)}</div>"


def _done(folder: Path) -> dict:
    path = folder / "done.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except ValueError:
        return {}
