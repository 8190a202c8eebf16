"""``layerscope spectrum``: spectrum statistics of a dataset's feature covariance."""

from __future__ import annotations

import argparse
from pathlib import Path

from layerscope.errors import OptionError, RunFolderError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "spectrum",
        help="spectrum statistics of the digits pixel covariance (or a .npy matrix)",
        description="Stream a (samples, features) matrix through StreamingCovariance and print "
        "its spectrum statistics. Without a file: scikit-learn's digits (1797 x 64).",
    )
    parser.add_argument("path", nargs="?", help="a .npy file holding a 2-D float array")
    parser.add_argument("--delta", type=float, default=0.99, help="variance fraction (0.99)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from layerscope.stats import StreamingCovariance, compute_statistics

    if args.path:
        if not Path(args.path).is_file():
            raise RunFolderError(f"{args.path} does not exist; give a .npy file of a 2-D array")
        data = np.load(args.path)
        if data.ndim != 2:
            raise OptionError(
                f"{args.path}: expected a 2-D (samples, features) array, got {data.shape}"
            )
        source = args.path
    else:
        from sklearn.datasets import load_digits

        data, source = load_digits().data, "scikit-learn digits"
    matrix = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float64))
    covariance = StreamingCovariance(matrix.shape[1])
    for batch in matrix.split(args.batch_size):
        covariance.update(batch)
    stats = compute_statistics(covariance.compute(), delta=args.delta)
    print(f"{source}: {matrix.shape[0]} samples x {matrix.shape[1]} features, delta = {args.delta}")
    if stats.reason:
        print(f"  no statistics: {stats.reason}")
        return 1
    for name, value in stats.values.items():
        print(f"  {name:<20} {value:12.4f}")
    print(f"  flags: {', '.join(sorted(stats.flags)) or 'none'}")
    return 0
