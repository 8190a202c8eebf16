"""``layerscope similarity``: CCA, SVCCA, PWCCA and CKA between two saved activation matrices.

Comparing two saved *models* needs a model registry and checkpoint format (the experiments
issue); until then the command compares activations a user saved, e.g. with
``np.save("a.npy", layer_output.numpy())``, over the same samples in the same order.
"""

from __future__ import annotations

import argparse

MEASURE_NAMES = ("cca", "svcca", "pwcca", "cka", "cka_unbiased")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "similarity",
        help="CCA, SVCCA, PWCCA and CKA between two saved activation matrices",
        description="Compare two activation matrices over the same samples (.npy, or .pt "
        "holding one tensor). Rows are samples; a (N, C, H, W) feature map needs --spatial.",
    )
    parser.add_argument("x", help="first activations (.npy or .pt)")
    parser.add_argument("y", help="second activations, same samples in the same order")
    parser.add_argument(
        "--measure",
        choices=(*MEASURE_NAMES, "all"),
        default="all",
        help="which measure to print (default: all)",
    )
    parser.add_argument(
        "--spatial",
        choices=("positions", "pool", "flatten"),
        help="for channels-first feature maps: positions as samples, average-pool, or flatten",
    )
    parser.add_argument(
        "--variance", type=float, default=0.99, help="SVCCA variance fraction (0.99)"
    )
    parser.set_defaults(handler=run)


def _load(path: str):
    import numpy as np
    import torch

    if path.endswith(".npy"):
        return np.load(path, allow_pickle=False)
    if path.endswith((".pt", ".pth")):
        value = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{path}: expected one saved tensor, got {type(value).__name__}")
        return value
    raise ValueError(f"{path}: unknown file type; save activations as .npy or .pt")


def run(args: argparse.Namespace) -> int:
    from layerscope.analysis.similarity import cca, cka, pwcca, svcca

    x, y = _load(args.x), _load(args.y)
    options = dict(spatial=args.spatial)
    measures = {
        "cca": lambda: cca(x, y, **options).similarity,
        "svcca": lambda: svcca(x, y, variance=args.variance, **options).similarity,
        "pwcca": lambda: pwcca(x, y, **options).similarity,
        "cka": lambda: cka(x, y, **options),
        "cka_unbiased": lambda: cka(x, y, unbiased=True, **options),
    }
    chosen = MEASURE_NAMES if args.measure == "all" else (args.measure,)
    print(f"{args.x} {tuple(x.shape)} vs {args.y} {tuple(y.shape)}")
    for name in chosen:
        print(f"  {name:<14} {measures[name]():.6f}")
    return 0
