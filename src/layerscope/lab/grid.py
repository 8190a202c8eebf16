"""Grids of runs and probes on an executor, failures contained (SPEC C10, C13).

:func:`run_experiment` trains every run of a config: validation first (keys, names, and one
forward pass of a zero batch per model, :mod:`~layerscope.lab.preflight`), then one job per run
on the chosen executor (:mod:`~layerscope.lab.executors`: ``local`` by default). A run that
raises is recorded as failed in its folder's ``status.json`` while the others go on; a finished
run is skipped; a run whose worker died is submitted again and resumes from its newest
checkpoint. :func:`probe_runs` does the same for the probes of trained run folders, one job per
run.

The executor comes from the argument, else from the config's grid-level key ``executor``::

    executor = {name = "dask", address = "tcp://10.0.0.5:8786"}

Example (not run here: it trains; tests/lab/test_executors.py runs grids of tiny runs)::

    results = run_experiment("examples/vgg_width_sweep.toml", executor={"name": "processes",
                                                                         "jobs": 2})
    print(summary_table(results))
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from layerscope.lab.config import GRID_KEYS, RunConfig, load_config, read_config_file
from layerscope.lab.executors import ExecutorConfig, make_executor, run_jobs
from layerscope.lab.jobs import JobResult, probe_job, summary_table, train_job
from layerscope.lab.preflight import check_forward

__all__ = ["config_executor", "probe_runs", "run_experiment", "summary_table"]


def config_executor(config: str | os.PathLike | Mapping[str, Any] | Sequence[RunConfig]) -> Any:
    """The grid-level ``executor`` key of a config file or mapping (``None`` when absent).

    Example:
        >>> config_executor({"model": "vgg11", "executor": {"name": "processes", "jobs": 2}})
        {'name': 'processes', 'jobs': 2}
    """
    if isinstance(config, (str, os.PathLike)):
        config = read_config_file(config)
    if isinstance(config, Mapping):
        return {k: config[k] for k in GRID_KEYS if k in config}.get("executor")
    return None


def _reporter(total: int, verb: str):
    def report(index: int, result: JobResult) -> None:
        detail = f": {result.error_type}: {result.first_line}" if result.status == "failed" else ""
        print(f"{verb} {index + 1}/{total} {result.status} {Path(result.run_dir).as_posix()}"
              f"{detail}", file=sys.stderr)  # fmt: skip

    return report


def run_experiment(
    config: str | os.PathLike | Mapping[str, Any] | Sequence[RunConfig],
    *,
    progress: bool = True,
    executor: Any = None,
    flags: Mapping[str, Any] | None = None,
) -> list[JobResult]:
    """Every run of ``config`` (a path, a mapping, or configs from ``load_config``) on an
    executor; the results in grid order (``status``: finished, skipped or failed).

    Args:
        executor: an :class:`~layerscope.lab.executors.ExecutorConfig`, its mapping form or a
            name; default: the config's ``executor`` key, else ``"local"``.
        flags: command-line overrides (``name``, ``address``, ``jobs``, ``threads``).

    Raises:
        ConfigError: before any run starts, when validation fails.
    """
    spec = executor if executor is not None else config_executor(config)
    if isinstance(config, (str, os.PathLike, Mapping)):
        configs = load_config(config)
    else:
        configs = list(config)
    settings = ExecutorConfig.create(spec, **(flags or {}))
    check_forward(configs)
    total = len(configs)
    jobs = [train_job(cfg, progress=progress, position=(i, total))
            for i, cfg in enumerate(configs, start=1)]  # fmt: skip
    with make_executor(settings) as runner:
        return run_jobs(jobs, runner, report=_reporter(total, "run") if progress else None)


def probe_runs(
    run_dirs: Sequence[str | os.PathLike],
    *,
    executor: Any = None,
    flags: Mapping[str, Any] | None = None,
    progress: bool = True,
    **probe_options: Any,
) -> list[JobResult]:
    """Probes for several trained run folders, one job per run (``probe_options``: those of
    :func:`~layerscope.lab.probing.probe_run`); failures are contained as for runs."""
    settings = ExecutorConfig.create(executor, **(flags or {}))
    jobs = [probe_job(folder, **probe_options) for folder in run_dirs]
    with make_executor(settings) as runner:
        return run_jobs(jobs, runner, report=_reporter(len(jobs), "probe") if progress else None)
