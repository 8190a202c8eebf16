"""``layerscope weights RUN_DIR``: weight dynamics of a trained run (SPEC C8; WeightScale,
Sources of Redundancy)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "weights",
        help="RWC clusters, weight spectra, pruning curves, low-rank approximations and weight "
        "graphs of a trained run",
        description="Read the run's records and epoch checkpoints (train with "
        'checkpoints.keep = "all" for every epoch); cluster layers by their relative weight '
        "change, compute every layer's weight spectrum and heavy-tail metrics per epoch, and "
        "optionally prune a layer's units, approximate every layer by low rank, and export a "
        "layer's weight-similarity graph. Records go to the run's store (phase 'weights', "
        "replacing earlier ones), figures to its report.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a trained run folder")
    parser.add_argument("--epochs", nargs="+", type=int, metavar="N",
                        help="0-based epochs to analyse (default: every checkpoint)")  # fmt: skip
    parser.add_argument("--prune", metavar="LAYER", help="pruning curves of this layer's units")
    parser.add_argument("--graph", metavar="LAYER", help="weight graph of this layer per epoch")
    parser.add_argument("--low-rank", action="store_true",
                        help="low-rank approximation of every layer (elbow k, accuracy with W_k)")  # fmt: skip
    parser.add_argument("--k", default="auto",
                        help="RWC clusters: 'auto' (silhouette) or a number (default auto)")  # fmt: skip
    parser.add_argument("--conv", default="reshape", choices=("reshape", "slices"),
                        help="convolution matrices of the spectra (default reshape, as 003)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="K-Means seed (default 0)")
    parser.add_argument("--device", help="cpu, cuda, ... (default: the run's config)")
    parser.add_argument("--batch-size", type=int, help="batch size of accuracy passes")
    parser.add_argument("--no-report", action="store_true", help="do not rewrite report.html")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=run)


def _cluster_k(value: str):
    from layerscope.errors import OptionError

    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise OptionError(f"--k must be 'auto' or a number, got {value!r}") from None


def _print(result) -> None:
    from layerscope.weights import pruning_summary

    if result.clusters is not None:
        c = result.clusters
        print(f"RWC clusters: k = {c.k_} (silhouette {c.silhouette_:.3f}) over "
              f"{len(c.layers_)} layers")  # fmt: skip
        for cluster in range(c.k_):
            members = [str(n) for n, label in zip(c.layers_, c.labels_, strict=True)
                       if label == cluster]  # fmt: skip
            print(f"  {cluster}: {', '.join(members)}")
    last = result.spectra[result.spectra.epoch == result.epochs[-1]]
    print(f"spectra at epoch {result.epochs[-1]} (of {len(result.epochs)} analysed):")
    print(last[["layer", "rows", "columns", "alpha", "stable_rank", "log_spectral_norm"]]
          .to_string(index=False, float_format=lambda v: f"{v:.3f}"))  # fmt: skip
    if result.pruning is not None:
        summary = pruning_summary(result.pruning)
        order = summary.drop_duplicates("criterion")[["criterion", "mean_over_curve"]]
        print("pruning, mean accuracy over the curve (least hurting first):")
        print(order.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if result.low_rank is not None:
        print("low rank at the elbow:")
        print(result.low_rank[["layer", "k", "rank", "norm_percent", "metric", "metric_low_rank"]]
              .to_string(index=False, float_format=lambda v: f"{v:.4f}"))  # fmt: skip
    for path in result.graphs:
        print(f"graph: {path}")


def run(args: argparse.Namespace) -> int:
    from layerscope.lab.weighing import weights_run

    result = weights_run(
        args.run_dir,
        epochs=args.epochs,
        prune=args.prune,
        graph=args.graph,
        low_rank=args.low_rank,
        k=_cluster_k(args.k),
        conv=args.conv,
        seed=args.seed,
        device=args.device,
        batch_size=args.batch_size,
        report=not args.no_report,
        progress=not args.no_progress,
    )
    _print(result)
    return 0
