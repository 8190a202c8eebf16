"""Where the time of a delta sweep goes: fitting, eigendecompositions, evaluation.

The zoo's VGG11 at width 1/4 on the embedded digits (32 x 32, 1437 training and 360 test
images), swept over the 19 deltas of dissertation 7.3 with the PCA and the random baseline (one
seed): one pass over the training split to fit every recorded layer's covariance, one
eigendecomposition per layer, then 1 + 19 x 2 = 39 passes over the test split. The model is
trained here for a few epochs first (or taken from a run folder with --run), since the kept
dimensions, not the time per pass, depend on the weights.

    python benchmarks/projection.py [--epochs 2] [--repeats 3] [--threads N] [--run RUN_DIR]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn
from torch.utils.data import DataLoader

from layerscope.datasets import load_dataset
from layerscope.lab import load_run_model
from layerscope.lab.runs import train_split_without_augmentation
from layerscope.models import create_model
from layerscope.projection import evaluate, project, sweep


def trained_vgg(epochs: int):
    torch.manual_seed(0)
    data = load_dataset("digits", resolution=32, seed=0)
    model = create_model("vgg11", num_classes=10, in_channels=1, width=0.25)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(data.train, batch_size=64, shuffle=True,
                        generator=torch.Generator().manual_seed(0))  # fmt: skip
    for _ in range(epochs):
        model.train()
        for x, y in loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    return model, data


def pass_ratio(model, fit, test, repeats: int) -> tuple[list[float], list[float]]:
    """Seconds of plain and projected passes over the test split, interleaved."""
    network = project(model, fit, delta=0.99)
    plain, projected = [], []
    for _ in range(repeats):
        for target, times in ((model, plain), (network, projected)):
            started = time.perf_counter()
            evaluate(target, test)
            times.append(time.perf_counter() - started)
    return plain, projected


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2, help="training epochs (no --run)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--run", help="a trained run folder of vgg11 at width 0.25 on digits")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    if args.run:
        model, data, _ = load_run_model(args.run, device="cpu")
    else:
        model, data = trained_vgg(args.epochs)
    print(f"model ready in {time.perf_counter() - started:.1f} s "
          f"({'run ' + args.run if args.run else f'{args.epochs} epochs'}); "
          f"torch threads {torch.get_num_threads()}")  # fmt: skip
    fit = DataLoader(train_split_without_augmentation(data), batch_size=args.batch_size)
    test = DataLoader(data.test, batch_size=args.batch_size)
    parts: dict[str, list[float]] = {}
    table = None
    for _ in range(args.repeats):
        started = time.perf_counter()
        table = sweep(model, fit, test, deltas="7.3", baselines=("pca", "random"), seeds=(0,))
        total = time.perf_counter() - started
        for part, seconds in {**table.attrs["seconds"], "total": total}.items():
            parts.setdefault(part, []).append(seconds)
    layers = len([c for c in table.columns if c.startswith("k[")])
    passes = 1 + len(table)
    print(f"19-delta sweep, PCA + random (1 seed): {layers} layers ({layers} "
          f"eigendecompositions), {passes} evaluation passes over {len(data.test)} test images; "
          f"{args.repeats} repeats, median (min-max) seconds:")  # fmt: skip
    for part, values in parts.items():
        print(f"  {part:<20} {statistics.median(values):7.3f}  "
              f"({min(values):.3f}-{max(values):.3f})")  # fmt: skip
    evaluation = statistics.median(parts["evaluation"])
    print(f"  per evaluation pass  {evaluation / passes:7.3f}")
    plain, projected = pass_ratio(model, fit, test, args.repeats)
    print(f"one pass over the test split, interleaved x{args.repeats}: unprojected "
          f"{statistics.median(plain):.3f} s ({min(plain):.3f}-{max(plain):.3f}), projected at "
          f"delta 0.99 {statistics.median(projected):.3f} s ({min(projected):.3f}-"
          f"{max(projected):.3f}); ratio of medians "
          f"{statistics.median(projected) / statistics.median(plain):.2f}")  # fmt: skip
    summary = table.pivot_table(index="delta", columns="baseline", values="relative_accuracy")
    summary["total_dimensions"] = table.groupby("delta").total_dimensions.first()
    print(f"unprojected accuracy {table.unprojected_accuracy.iloc[0]:.4f}, "
          f"{int(table.total_features.iloc[0])} dimensions in all layers")  # fmt: skip
    print(summary.sort_index(ascending=False).to_string(float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
