"""Time per similarity measure on n = 10000 samples, d = 512 against d = 256, float64 and float32.

    python benchmarks/similarity.py [--samples 10000] [--widths 512 256] [--repeats 3] [--gram]
                                    [--threads N] [--device cuda]

The inputs are float32 activations (as a model produces them) sharing a 64-dimensional signal.
"precision" is the arithmetic inside the measure (``precision=`` of the functions); the value
column shows what each measure returns and "|diff|" its distance from the float64 value of the
same measure, all measured in one run. Linear CKA runs in feature space (d1 x d2 products, no
n x n matrix); ``--gram`` adds the n x n Gram-matrix form, HSIC = tr(K H L H) / (n-1)^2 with
double-centred Grams, for comparison (two n x n float64 matrices: 1.6 GB at n = 10000).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from layerscope.similarity import MinibatchCKA, cca, cka, pwcca, svcca


def median_seconds(function, repeats: int) -> tuple[float, float]:
    value = function()  # warm-up (allocation, BLAS threads); also the value we report
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), float(value)


def minibatch_cka(x, y, precision, batch):
    acc = MinibatchCKA(precision=precision)
    for start in range(0, x.shape[0], batch):
        acc.update(x[start : start + batch], y[start : start + batch])
    return acc.compute()


def gram_cka(x, y, precision):
    """The n x n Gram-matrix form (Kornblith eqs. 3-4), Grams double-centred in O(n^2)."""
    dtype = torch.float64 if precision == "float64" else torch.float32

    def centred_gram(a):
        k = a.to(dtype) @ a.to(dtype).T  # (n, n)
        means = k.mean(dim=0)
        return k - means[None, :] - means[:, None] + means.mean()  # H K H

    k, l_ = centred_gram(x), centred_gram(y)
    return (k * l_).sum() / torch.sqrt((k * k).sum() * (l_ * l_).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--widths", type=int, nargs=2, default=[512, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=500, help="minibatch CKA batch size")
    parser.add_argument("--gram", action="store_true", help="also time the n x n Gram form")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    n, (d1, d2) = args.samples, args.widths
    g = torch.Generator().manual_seed(0)
    signal = torch.randn(n, 64, generator=g)
    x = torch.tanh(signal @ torch.randn(64, d1, generator=g) / 8 + torch.randn(n, d1, generator=g))
    y = signal @ torch.randn(64, d2, generator=g) / 8 + 0.5 * torch.randn(n, d2, generator=g)
    x, y = x.to(args.device), y.to(args.device)

    measures = {
        "cca": lambda p: cca(x, y, precision=p),
        "svcca (99%)": lambda p: svcca(x, y, precision=p),
        "pwcca": lambda p: pwcca(x, y, precision=p),
        "cka biased": lambda p: cka(x, y, unbiased=False, precision=p),
        "cka (unbiased)": lambda p: cka(x, y, precision=p),
        f"minibatch cka b={args.batch}": lambda p: minibatch_cka(x, y, p, args.batch),
    }
    if args.gram:
        measures["cka n x n Gram"] = lambda p: gram_cka(x, y, p)

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
        f"n = {n}, d = {d1} vs {d2}, float32 inputs"
    )
    header = f"{'measure':<22} {'precision':>9} {'ms':>9} {'value':>9} {'|diff|':>9}"
    print(header)
    print("-" * len(header))
    for name, function in measures.items():
        reference = None
        for precision in ("float64", "float32"):
            seconds, value = median_seconds(lambda f=function, p=precision: f(p), args.repeats)
            reference = value if reference is None else reference
            print(
                f"{name:<22} {precision:>9} {seconds * 1e3:>9.1f} {value:>9.5f} "
                f"{abs(value - reference):>9.1e}"
            )


if __name__ == "__main__":
    main()
