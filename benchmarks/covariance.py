"""Throughput of StreamingCovariance.update against a bare X^T X of the same shape, in one run.

    python benchmarks/covariance.py [--samples 65536] [--repeats 5]

For n samples of d features an update costs 2*n*d^2 floating point operations (the Gram
product); GFLOP/s below counts exactly that. "ratio" is the median update time divided by the
median time of a bare ``X.T @ X`` on an input that is already in the compared dtype (float64 for
the float64 mode, float32 for the mixed mode), measured in the same process. The update's input is
float32, as a model produces it, so the float64 mode pays for the conversion too.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from layerscope.stats import StreamingCovariance


def median_seconds(function, repeats: int) -> float:
    function()  # warm-up: first-touch allocation, BLAS thread start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=65536)
    parser.add_argument("--features", type=int, nargs="+", default=[64, 256, 512])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    n = args.samples
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, n = {n}")
    header = f"{'d':>5} {'mode':>8} {'update ms':>10} {'GFLOP/s':>8} {'bare ms':>8} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    for d in args.features:
        x32 = torch.randn(n, d)
        flops = 2 * n * d * d
        for mode, bare_dtype in (("float64", torch.float64), ("mixed", torch.float32)):
            bare_input = x32.to(bare_dtype)
            bare = median_seconds(lambda b=bare_input: b.T @ b, args.repeats)
            cov = StreamingCovariance(d, precision=mode)
            update = median_seconds(lambda c=cov, x=x32: c.update(x), args.repeats)
            print(
                f"{d:>5} {mode:>8} {update * 1e3:>10.1f} {flops / update / 1e9:>8.1f} "
                f"{bare * 1e3:>8.1f} {update / bare:>6.2f}"
            )


if __name__ == "__main__":
    main()
