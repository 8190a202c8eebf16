"""The Gram product of a covariance update: one full product against the lower block triangle.

    python benchmarks/gram.py [--repeats 200] [--threads N] [--dtype float32|float64]

For each (d features, n samples) shape of the VGG-style and small networks' layer outputs (and
a few outside the rule's range), times ``samples.T @ samples`` formed as one full product (the
float32 route blocked over 512-sample rows, as before) and as ``_gram``'s lower block triangle
in two or four block rows, mirrored. The two are interleaved call by call in this one process;
a row is the median (with the interquartile range) of the per-pair ratios half / full, below 1
where the half product is faster. Shapes outside the rule (fewer than 64 features, or fewer
samples than half the features) fall back to the full product, so their ratio is about 1.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _machine import cpu_line

from layerscope.stats.covariance import _full_gram, _gram

SHAPES = [  # (d, n): conv outputs of batch 64 (n = 64 * H * W) and linear layers (n = 64)
    (512, 256), (512, 1024), (256, 4096), (128, 16384), (64, 65536), (32, 65536),
    (64, 16384), (512, 4096), (512, 64), (10, 64), (16, 65536),
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, help="torch's thread count (default: its own)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.dtype}, "
          f"{args.repeats} interleaved pairs")  # fmt: skip
    print(cpu_line())
    print(f"{'d':>5} {'n':>6} {'full ms':>8} {'half ms':>8} {'half/full':>9} {'IQR':>15}")
    g = torch.Generator().manual_seed(0)
    for d, n in SHAPES:
        rows = torch.randn(d, n, generator=g, dtype=dtype)  # (d, n): a feature map's layout
        samples = rows.T
        torch.testing.assert_close(_gram(samples), _full_gram(samples), rtol=1e-4, atol=1e-2)
        times = {"full": [], "half": []}
        for i in range(args.repeats):
            order = ("full", "half") if i % 2 == 0 else ("half", "full")
            for name in order:
                start = time.perf_counter()
                (_full_gram if name == "full" else _gram)(samples)
                times[name].append(time.perf_counter() - start)
        ratios = [h / f for h, f in zip(times["half"], times["full"], strict=True)]
        q1, median, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
        full_ms, half_ms = (statistics.median(times[k]) * 1e3 for k in ("full", "half"))
        print(f"{d:>5} {n:>6} {full_ms:>8.3f} {half_ms:>8.3f} {median:>9.3f} {q1:>7.3f} - {q3:.3f}")


if __name__ == "__main__":
    main()
