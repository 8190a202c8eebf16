"""Similarity measures beside their floor, the bare products X^T X, Y^T Y, X^T Y, in one run.

    python benchmarks/similarity.py [--samples 10000] [--widths 512 256] [--repeats 5]
                                    [--threads N ...] [--device cuda]

The inputs are float32 activations (as a model produces them) sharing a 64-dimensional signal.
"precision" is the arithmetic inside the measure (``precision=`` of the functions). Every
measure needs at least the three products of the centred inputs (CCA, SVCCA and PWCCA whiten
them, CKA takes their norms), so "x products" is the ratio of a measure's time to the products'
time in the same precision; "f64/f32" is how much faster float32 is. Repeats are interleaved
(one call of every configuration per round) and each ratio is the median of the per-round
ratios, so a change in the machine's speed hits numerator and denominator alike. The whole
table is measured at each thread count given by ``--threads`` (default: torch's count, then 1).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _machine import cpu_line

from layerscope.similarity import MinibatchCKA, cca, cka, pwcca, svcca

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def minibatch_cka(x, y, precision, batch):
    acc = MinibatchCKA(precision=precision)
    for start in range(0, x.shape[0], batch):
        acc.update(x[start : start + batch], y[start : start + batch])
    return acc.compute()


def products(x, y, precision):
    """The floor: X^T X, Y^T Y and X^T Y of the inputs in the compute dtype (converted first,
    as every measure must)."""
    dtype = DTYPES[precision]
    a, b = x.to(dtype), y.to(dtype)
    return (a.T @ a, b.T @ b, a.T @ b)


def _synchronise(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def table(x, y, device: str, repeats: int, batch: int) -> None:
    measures = {
        "products (floor)": lambda p: products(x, y, p),
        "cca": lambda p: cca(x, y, precision=p),
        "svcca (99%)": lambda p: svcca(x, y, precision=p),
        "pwcca": lambda p: pwcca(x, y, precision=p),
        "cka biased": lambda p: cka(x, y, unbiased=False, precision=p),
        "cka (unbiased)": lambda p: cka(x, y, precision=p),
        f"minibatch cka b={batch}": lambda p: minibatch_cka(x, y, p, batch),
    }
    configurations = [(name, p) for name in measures for p in DTYPES]
    values = {}
    for name, precision in configurations:  # warm-up; also the values reported
        result = measures[name](precision)
        values[name, precision] = None if name.startswith("products") else float(result)
    times: dict[tuple[str, str], list[float]] = {c: [] for c in configurations}
    for _ in range(repeats):
        for name, precision in configurations:
            _synchronise(device)
            start = time.perf_counter()
            measures[name](precision)
            _synchronise(device)
            times[name, precision].append(time.perf_counter() - start)

    def ratio(a, b) -> float:
        return statistics.median([t / u for t, u in zip(times[a], times[b], strict=True)])

    header = (
        f"{'measure':<22} {'ms f64':>8} {'ms f32':>8} {'x products f64':>15} "
        f"{'x products f32':>15} {'f64/f32':>8} {'value f64':>10} {'|f32-f64|':>10}"
    )
    print(header)
    print("-" * len(header))
    floor = "products (floor)"
    for name in measures:
        f64, f32 = (name, "float64"), (name, "float32")
        value = values[f64]
        shown = "" if value is None else f"{value:>10.5f} {abs(values[f32] - value):>10.1e}"
        print(
            f"{name:<22} {statistics.median(times[f64]) * 1e3:>8.1f} "
            f"{statistics.median(times[f32]) * 1e3:>8.1f} "
            f"{ratio(f64, (floor, 'float64')):>15.2f} {ratio(f32, (floor, 'float32')):>15.2f} "
            f"{ratio(f64, f32):>8.2f} {shown}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--widths", type=int, nargs=2, default=[512, 256])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=500, help="minibatch CKA batch size")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, nargs="+", help="torch CPU thread counts (default: torch's, 1)"
    )
    args = parser.parse_args()

    n, (d1, d2) = args.samples, args.widths
    g = torch.Generator().manual_seed(0)
    signal = torch.randn(n, 64, generator=g)
    x = torch.tanh(signal @ torch.randn(64, d1, generator=g) / 8 + torch.randn(n, d1, generator=g))
    y = signal @ torch.randn(64, d2, generator=g) / 8 + 0.5 * torch.randn(n, d2, generator=g)
    x, y = x.to(args.device), y.to(args.device)
    print(cpu_line())
    for threads in args.threads or [torch.get_num_threads(), 1]:
        torch.set_num_threads(threads)
        print(
            f"\ntorch {torch.__version__}, {threads} thread(s), device {args.device}, n = {n}, "
            f"d = {d1} vs {d2}, float32 inputs, {args.repeats} interleaved repeats"
        )
        table(x, y, args.device, args.repeats, args.batch)


if __name__ == "__main__":
    main()
