"""Experiments: every run of a config file, one after the other, each resumable (SPEC C10).

Runs execute locally in sequence; a finished run is skipped and an interrupted one resumes, so
rerunning the same command after a crash continues where it stopped.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from layerscope.lab.config import RunConfig, load_config
from layerscope.lab.trainer import CONFIG_FILE, RunResult, train_run

__all__ = ["resume_run", "run_experiment"]


def run_experiment(
    config: str | os.PathLike | dict | Sequence[RunConfig], *, progress: bool = True
) -> list[RunResult]:
    """Train every run of ``config`` (a path, a mapping, or configs from ``load_config``).

    Example (not run here: it trains):
        results = run_experiment("examples/vgg_width_sweep.toml")
    """
    if isinstance(config, (str, os.PathLike, dict)):
        configs = load_config(config)
    else:
        configs = list(config)
    results = []
    for index, cfg in enumerate(configs, start=1):
        result = train_run(cfg, position=(index, len(configs)), progress=progress)
        if progress and result.status == "skipped":
            print(f"run {index}/{len(configs)}: {result.run_dir} is finished; skipped",
                  file=sys.stderr)  # fmt: skip
        results.append(result)
    return results


def resume_run(folder: str | os.PathLike, *, progress: bool = True) -> RunResult:
    """Continue the run in ``folder`` from its last good checkpoint (its ``config.json``)."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{folder} is not a run folder: it has no {CONFIG_FILE} (run folders are written by "
            f"`layerscope run CONFIG`)"
        )
    cfg = RunConfig.from_dict(json.loads(path.read_text(encoding="utf-8")), source=str(path))
    return train_run(cfg, folder=Path(folder), progress=progress)
