"""CCA, SVCCA and PWCCA with their d x d decompositions on one thread (the default) and on all
of torch's threads, interleaved in one process, as ratios to the bare products.

    python benchmarks/similarity_threads.py [--repeats 8] [--samples 10000] [--widths 512 256]

Each round times the products X^T X, Y^T Y, X^T Y (float64) and the three measures in both
settings, in an order that alternates from round to round; a ratio is measure / products of the
same round and setting, reported as median (min - max) over rounds. The setting is switched with
``layerscope.similarity.canonical.ONE_THREAD_MAX_FEATURES`` (0: never one thread).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from layerscope.similarity import canonical, cca, pwcca, svcca

SETTINGS = {"d x d on one thread": canonical.ONE_THREAD_MAX_FEATURES, "all threads": 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--widths", type=int, nargs=2, default=[512, 256])
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    n, (d1, d2) = args.samples, args.widths
    signal = torch.randn(n, 64, generator=g)
    x = signal @ torch.randn(64, d1, generator=g) + torch.randn(n, d1, generator=g)
    y = signal @ torch.randn(64, d2, generator=g) + torch.randn(n, d2, generator=g)

    def products() -> None:
        a, b = x.double(), y.double()
        (a.T @ a, b.T @ b, a.T @ b)

    calls = {"products": products, "cca": lambda: cca(x, y), "svcca": lambda: svcca(x, y)}
    calls["pwcca"] = lambda: pwcca(x, y)
    times = {(name, setting): [] for name in calls for setting in SETTINGS}
    order = list(SETTINGS)
    for repeat in range(args.repeats):
        for setting in order if repeat % 2 else order[::-1]:
            canonical.ONE_THREAD_MAX_FEATURES = SETTINGS[setting]
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                times[name, setting].append(time.perf_counter() - start)
    canonical.ONE_THREAD_MAX_FEATURES = SETTINGS["d x d on one thread"]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, n = {n}, d = {d1} vs {d2}"
    )
    print(f"{'setting':<22} {'products ms':>11}  x products: median (min - max)")
    for setting in SETTINGS:
        line = f"{setting:<22} {statistics.median(times['products', setting]) * 1e3:>11.0f} "
        for name in ("cca", "svcca", "pwcca"):
            pairs = zip(times[name, setting], times["products", setting], strict=True)
            ratios = [t / u for t, u in pairs]
            line += f" {name} {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
        print(line)


if __name__ == "__main__":
    main()
