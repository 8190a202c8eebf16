"""A layers x layers matrix of the CCA family: each input prepared once against pair by pair.

    python benchmarks/similarity_matrix.py [--samples 6000] [--widths 64 128 256 256 512 512]
                                           [--repeats 3] [--threads N]

The inputs are float32 activations sharing a 32-dimensional signal, one per width, compared
with themselves (the matrix of ``layer_similarity(model, None, ...)``). "pair by pair" calls the
measure for every pair, as the layer helpers did before; "pairwise" is
:func:`layerscope.similarity.canonical.pairwise` (what they use now): each input is centred,
multiplied by itself and whitened (or reduced, for SVCCA) once, and each pair costs its cross
product and a small SVD. Repeats are interleaved and the ratio is the median of the per-repeat
ratios; both must give the same values (checked).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from _machine import cpu_line

from layerscope.similarity import cca, pwcca, svcca
from layerscope.similarity.canonical import pairwise

FUNCTIONS = {"cca": cca, "svcca": svcca, "pwcca": pwcca}


def layers(samples: int, widths: list[int], seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    signal = torch.randn(samples, 32, generator=g)
    return [
        torch.relu(signal @ torch.randn(32, d, generator=g) + torch.randn(samples, d, generator=g))
        for d in widths
    ]


def pair_by_pair(method: str, xs) -> np.ndarray:
    return np.array([[FUNCTIONS[method](x, y).similarity for y in xs] for x in xs])


def prepared(method: str, xs) -> np.ndarray:
    values = np.empty((len(xs), len(xs)))
    for i, j, result in pairwise(method, xs):
        values[i, j] = result.similarity
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=6000)
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256, 256, 512, 512])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch's thread count (default: its own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    xs = layers(args.samples, args.widths)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), n = {args.samples}, "
          f"widths {args.widths}, float64, {args.repeats} interleaved repeats")  # fmt: skip
    print(cpu_line())
    print(
        f"{'measure':<8} {'pair by pair s':>14} {'pairwise s':>10} {'ratio':>6} {'max |diff|':>10}"
    )
    for method in FUNCTIONS:
        times: dict[str, list[float]] = {"pair by pair": [], "pairwise": []}
        found = {}
        for _ in range(args.repeats):
            for name, run in (("pair by pair", pair_by_pair), ("pairwise", prepared)):
                started = time.perf_counter()
                found[name] = run(method, xs)
                times[name].append(time.perf_counter() - started)
        ratios = [a / b for a, b in zip(times["pair by pair"], times["pairwise"], strict=True)]
        difference = float(np.abs(found["pair by pair"] - found["pairwise"]).max())
        print(f"{method:<8} {statistics.median(times['pair by pair']):>14.2f} "
              f"{statistics.median(times['pairwise']):>10.2f} {statistics.median(ratios):>6.2f} "
              f"{difference:>10.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
