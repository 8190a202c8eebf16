"""What ``layerscope run CONFIG --dry-run`` says about each run before anything trains: new,
finished, diverged, resumes at epoch k, or clashes with another config in its folder; and
whether each dataset's data is present.

Only file names and small JSON files are read (no checkpoint is loaded), so a dry run over a
large grid is quick.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from layerscope.lab.config import RunConfig, describe_runs, run_dir
from layerscope.lab.config_check import flatten_keys
from layerscope.lab.config_resolve import technical_paths
from layerscope.store.folder import DONE_FILE, ERROR_FILE

__all__ = ["data_state", "describe_plan", "run_state"]

_CHECKPOINT = re.compile(r"epoch-(\d{4,})\.pt")


def _read(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def run_state(cfg: RunConfig, folder: str | Path | None = None) -> str:
    """Where the run of ``cfg`` stands in its folder, in words.

    Example:
        >>> import tempfile
        >>> cfg = RunConfig(model="vgg11", run_id="r", logs_dir=tempfile.mkdtemp())
        >>> run_state(cfg)
        'new'
    """
    folder = Path(folder) if folder is not None else run_dir(cfg)
    saved = _read(folder / "config.json")
    if saved:
        flat, old = flatten_keys(cfg.to_dict()), flatten_keys(saved)
        technical = set(technical_paths())
        differ = sorted(k for k in flat.keys() | old.keys()
                        if flat.get(k) != old.get(k) and k not in technical)  # fmt: skip
        if differ:
            return (f"clashes: {folder} holds a run with another config (differs in "
                    f"{', '.join(differ)})")  # fmt: skip
    done = _read(folder / DONE_FILE)
    if done:
        if done.get("status") == "diverged":
            return f"diverged at epoch {done.get('epoch', '?')} (a rerun skips it)"
        return "finished (a rerun skips it)"
    epochs = [int(m.group(1)) for p in (folder / "checkpoints").glob("epoch-*.pt")
              if (m := _CHECKPOINT.fullmatch(p.name))]  # fmt: skip
    failed = " after a failure" if (folder / ERROR_FILE).is_file() else ""
    if epochs:
        return f"resumes at epoch {max(epochs) + 2} of {cfg.epochs}{failed}"
    return f"new{failed}" if not saved else f"starts again at epoch 1{failed}"


def data_state(cfg: RunConfig) -> str:
    """Whether the run's data can be loaded: ``"present"`` or ``"missing: <why>"``.

    Example:
        >>> data_state(RunConfig(model="vgg11", run_id="r", resolution=8))
        'present'
    """
    from layerscope.datasets import load_dataset
    from layerscope.errors import LayerscopeError

    try:
        load_dataset(cfg.dataset, resolution=cfg.resolution, seed=cfg.seed, **cfg.dataset_kwargs)
    except (LayerscopeError, OSError, ValueError) as error:
        return f"missing: {error}"
    return "present"


def describe_plan(configs: Sequence[RunConfig], *, check_data: bool = True) -> str:
    """:func:`~layerscope.lab.config.describe_runs`, per run its :func:`run_state`, and per
    distinct dataset whether its data is there (:func:`data_state`)."""
    lines = [describe_runs(configs)]
    total = len(configs)
    lines += [f"  run {i}/{total}: {run_state(cfg)}" for i, cfg in enumerate(configs, start=1)]
    if check_data:
        seen: dict[str, str] = {}
        for cfg in configs:
            key = json.dumps([cfg.dataset, cfg.resolution, cfg.dataset_kwargs], sort_keys=True,
                             default=str)  # fmt: skip
            if key not in seen:
                seen[key] = data_state(cfg)
                lines.append(f"  data {cfg.dataset} at {cfg.resolution} px: {seen[key]}")
    return "\n".join(lines)
