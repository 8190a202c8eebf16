"""Tracking overhead: median training-step time, untracked vs tracked, measured in one run.

    python benchmarks/overhead.py [--steps 12] [--rounds 3]
    # Delve 0.1.50 beside it (never a dependency; a throwaway venv):
    python3 -m venv /tmp/delve-venv
    /tmp/delve-venv/bin/pip install torch==2.13.0 delve==0.1.50
    python benchmarks/overhead.py --delve-python /tmp/delve-venv/bin/python

The default network is VGG-style (benchmarks/_vgg.py: 8 conv layers of 64-512 channels with
batch norm, batch 64 of random 3 x 32 x 32 inputs, SGD); ``--model small`` is a 4-conv CNN. Configurations are measured in interleaved rounds
(untracked, float64, mixed, untracked, ...) so that drift in the machine's speed hits all of them
alike; each round takes the median of ``--steps`` steps after one warm-up step, and the table
shows the median over rounds. Ratios are to the untracked median of the same process. The end of
an epoch (eigendecompositions, records) is timed separately: it happens once per epoch.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _vgg import MODELS, make_step, median_step_seconds

from layerscope import Tracker


def measure(model_name: str, steps: int, rounds: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = MODELS[model_name]()
    step = make_step(model)
    configurations = {
        "untracked": None,
        "tracked float64": {"precision": "float64"},
        "tracked mixed": {"precision": "mixed"},
    }
    results: dict[str, list[float]] = {name: [] for name in configurations}
    end_of_epoch: dict[str, list[float]] = {
        name: [] for name in configurations if name != "untracked"
    }
    for _ in range(rounds):
        for name, options in configurations.items():
            if options is None:
                step()
                results[name].append(median_step_seconds(step, steps))
                continue
            with Tracker(model, weights=True, **options) as tracker:
                step()  # warm-up: first-touch of the scratch buffers
                results[name].append(median_step_seconds(step, steps))
                start = time.perf_counter()
                tracker.end_epoch()
                end_of_epoch[name].append(time.perf_counter() - start)
    summary = {name: statistics.median(values) for name, values in results.items()}
    summary.update({f"end_epoch {n}": statistics.median(v) for n, v in end_of_epoch.items()})
    return summary


def delve_ratio(python: str, model_name: str, steps: int, rounds: int) -> str:
    script = Path(__file__).parent / "_delve_overhead.py"
    completed = subprocess.run(
        [
            python,
            str(script),
            "--model",
            model_name,
            "--steps",
            str(steps),
            "--rounds",
            str(rounds),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        return f"Delve run failed: {completed.stderr.strip().splitlines()[-1:]}"
    return completed.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="steps per round (median taken)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--model",
        choices=sorted(MODELS),
        default="vgg",
        help="vgg: 8 conv layers, 64-512 channels (default); small: 4 conv layers",
    )
    parser.add_argument("--delve-python", help="python of a venv with delve==0.1.50 installed")
    args = parser.parse_args()
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads, model {args.model}, batch 64, 3x32x32")
    summary = measure(args.model, args.steps, args.rounds)
    base = summary["untracked"]
    print(f"{'configuration':<18} {'step ms':>8} {'ratio':>6}")
    for name in ("untracked", "tracked float64", "tracked mixed"):
        print(f"{name:<18} {summary[name] * 1e3:>8.1f} {summary[name] / base:>6.3f}")
    for name in ("float64", "mixed"):
        print(
            f"end_epoch ({name}): {summary[f'end_epoch tracked {name}'] * 1e3:.0f} ms once per epoch"
        )
    if args.delve_python:
        print(delve_ratio(args.delve_python, args.model, args.steps, args.rounds))


if __name__ == "__main__":
    main()
