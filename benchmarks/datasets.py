"""Cost of the default dataset: loading digits, and one epoch of its data against model work.

    python benchmarks/datasets.py [--repeats 3]

1. Start-up: a fresh interpreter that builds ``load_dataset("digits")`` against one that only
   imports scikit-learn and calls ``load_digits`` (what reading the CSV directly avoids); both
   include importing torch where used, so the columns are whole-process wall times.
2. One training epoch of digits (1437 images, batch 64) through a DataLoader: the augmented
   pipeline (crop + normalise, optionally a canvas), a bare TensorDataset of ready tensors (the
   floor), and the forward + backward pass of a small 3-layer CNN on the same batches (what the
   data has to keep up with). Ratios are against the TensorDataset floor and the CNN, measured in
   the same process.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from layerscope.datasets import load_dataset


def wall(code: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def epoch_seconds(loader, repeats: int, work=None) -> float:
    times = []
    for _ in range(repeats + 1):  # the first pass warms up
        start = time.perf_counter()
        for x, y in loader:
            if work is not None:
                work(x, y)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)

    ours = wall("import layerscope.datasets as d; d.load_dataset('digits')", args.repeats)
    sklearn = wall(
        "import torch; from sklearn.datasets import load_digits; load_digits()", args.repeats
    )
    print("start-up (fresh process, median wall seconds)")
    print(f"  load_dataset('digits')            {ours:6.2f}")
    print(f"  torch + sklearn load_digits       {sklearn:6.2f}   ratio {sklearn / ours:4.2f}x")

    splits = load_dataset("digits", resolution=32)
    canvas = load_dataset("digits", resolution=32, canvas=64)
    ready = TensorDataset(
        torch.stack([splits.train[i][0] for i in range(len(splits.train))]), splits.train.targets
    )
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(32, 10),
    )  # fmt: skip
    loss = nn.CrossEntropyLoss()

    def train_step(x, y):
        model.zero_grad()
        loss(model(x), y).backward()

    floor = epoch_seconds(DataLoader(ready, batch_size=64, shuffle=True), args.repeats)
    rows = [
        ("TensorDataset (floor)", floor),
        (
            "digits, crop + normalise",
            epoch_seconds(DataLoader(splits.train, 64, True), args.repeats),
        ),
        ("digits, + canvas 64", epoch_seconds(DataLoader(canvas.train, 64, True), args.repeats)),
    ]
    cnn = epoch_seconds(DataLoader(ready, 64, True), args.repeats, train_step) - floor
    print("\none epoch of digits, batch 64, 2 threads (median seconds)")
    print(f"  {'pipeline':28s} {'seconds':>8s} {'vs floor':>9s} {'vs CNN':>7s}")
    for name, seconds in rows:
        print(f"  {name:28s} {seconds:8.3f} {seconds / floor:8.1f}x {seconds / cnn:6.2f}x")
    print(f"  {'small CNN fwd+bwd (model only)':28s} {cnn:8.3f}")


if __name__ == "__main__":
    main()
