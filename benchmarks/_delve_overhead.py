"""Delve 0.1.50's tracking overhead on the same network, run by overhead.py in Delve's own venv.

Delve keeps no hook handles, so the untracked baseline is a copy of the model without hooks,
measured in interleaved rounds with the tracked one in the same process.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _vgg import MODELS, make_step, median_step_seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", choices=sorted(MODELS), default="vgg")
    args = parser.parse_args()
    from delve import SaturationTracker

    torch.manual_seed(0)
    plain = MODELS[args.model]()
    tracked = copy.deepcopy(plain)
    with tempfile.TemporaryDirectory() as folder:
        SaturationTracker(
            str(Path(folder) / "delve"),
            save_to="csv",
            modules=tracked,
            device="cpu",
            stats=["lsat"],
        )
        steps = {"untracked": make_step(plain), "delve": make_step(tracked)}
        times: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(args.rounds):
            for name, step in steps.items():
                step()
                times[name].append(median_step_seconds(step, args.steps))
    untracked, delve = (statistics.median(times[n]) for n in ("untracked", "delve"))
    print(
        f"delve 0.1.50 (float64, default options): untracked {untracked * 1e3:.1f} ms, "
        f"tracked {delve * 1e3:.1f} ms, ratio {delve / untracked:.3f}"
    )


if __name__ == "__main__":
    main()
