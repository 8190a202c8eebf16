"""A grid of 8 tiny runs on each executor, and what each engine costs to start.

Every run is the whole pipeline (train 2 epochs with tracking, model size, report) of an MLP on
64 synthetic 8x8 images, one torch thread per job. The same grid (new folders each time) runs on
``local`` (one by one, in this process), ``processes --jobs 2``, ``dask`` (a LocalCluster of 2
workers) and ``ray`` (a local Ray of 2 CPUs); the wall times are printed as ratios to ``local``
measured in this one process. Start-up: creating the executor, one trivial job's round trip and
closing it (for ``processes`` that is spawning a worker that imports torch and layerscope).

    python benchmarks/scale.py [--runs 8] [--engines local processes dask ray]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from layerscope.lab.config import load_config
from layerscope.lab.executors import make_executor
from layerscope.lab.grid import run_experiment
from layerscope.lab.jobs import Job, JobResult

ENGINES = {
    "local": {"name": "local", "threads": 1},
    "processes": {"name": "processes", "jobs": 2, "threads": 1},
    "dask": {"name": "dask", "jobs": 2, "threads": 1},
    "ray": {"name": "ray", "jobs": 2, "threads": 1},
}


def noop(job: Job) -> JobResult:
    """The trivial job of the start-up measurement."""
    return JobResult(Path(job.folder), "finished", 0)


def start_up(spec: dict, folder: str) -> float:
    begin = time.perf_counter()
    with make_executor(spec) as executor:
        results = list(executor.map([Job("probe", folder, {})], noop))
    assert results[0][1].status == "finished"
    return time.perf_counter() - begin


def grid(runs: int, logs: str) -> list:
    return load_config({
        "model": "mlp", "dataset": "synthetic", "resolution": 8, "epochs": 2, "batch_size": 32,
        "device": "cpu", "logs_dir": logs, "seed": list(range(runs)), "metrics": ["accuracy"],
        "dataset_kwargs": {"train_size": 64, "test_size": 32, "num_classes": 4},
        "model_kwargs": {"input_size": 8, "hidden": {"value": [32, 16]}},
    })  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--engines", nargs="+", choices=sorted(ENGINES), default=list(ENGINES))
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    torch.set_num_threads(1)
    root = tempfile.mkdtemp()
    print(f"{os.cpu_count()} CPUs; {args.runs} runs per grid; 1 torch thread per job")
    rows = {}
    for engine in args.engines:
        startup = start_up(ENGINES[engine], root)
        begin = time.perf_counter()
        results = run_experiment(grid(args.runs, f"{root}/{engine}"), progress=False,
                                 executor=ENGINES[engine])  # fmt: skip
        seconds = time.perf_counter() - begin
        assert all(r.status == "finished" for r in results), [r.error for r in results]
        rows[engine] = (startup, seconds)
    base = rows.get("local", next(iter(rows.values())))[1]
    print(f"{'executor':<11} {'start-up s':>10} {'grid s':>8} {'grid / local':>12}")
    for engine, (startup, seconds) in rows.items():
        print(f"{engine:<11} {startup:>10.2f} {seconds:>8.1f} {seconds / base:>12.2f}")


if __name__ == "__main__":
    main()
