"""``layerscope project RUN_DIR [RUN_DIR ...]``: delta sweeps of projected networks and, with
several runs, the relevant eigenspace (SPEC C5; dissertation 7.3, 7.4)."""

from __future__ import annotations

import argparse
import math


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "project",
        help="project every recorded layer of finished runs onto its top eigendirections, "
        "sweep delta, and find the relevant eigenspace over several runs",
        description="For each run folder: rebuild the model from its newest checkpoint, fit "
        "every recorded layer's covariance on the training split (eval mode, no augmentation), "
        "evaluate the network projected onto each layer's top-k eigendirections (k explaining "
        "delta of the variance) on the test split for every delta, beside random orthonormal "
        "directions of the same k; record the sweep in the run's store (phase 'projection', "
        "replacing earlier ones) and draw it in the report. With several runs (independently "
        "trained instances), print the paired t-test per delta and the selected delta.",
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="finished run folders")
    parser.add_argument("--grid", default="7.3", choices=("7.3", "7.4", "7.4-fine"),
                        help="named delta grid (default 7.3: 0.90..0.99 and 0.991..0.999)")  # fmt: skip
    parser.add_argument("--deltas", nargs="+", type=float, metavar="DELTA",
                        help="delta values in (0, 1] instead of a grid")  # fmt: skip
    parser.add_argument("--baseline", action="append", choices=("pca", "random"),
                        help="repeatable; default both pca and random")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=1, metavar="N",
                        help="random-baseline seeds 0..N-1 (default 1)")  # fmt: skip
    parser.add_argument("--alpha", type=float, default=0.05,
                        help="significance level of the t-test over runs (0.05)")  # fmt: skip
    parser.add_argument("--table", metavar="CSV", help="also write the t-test table to CSV")
    parser.add_argument("--device", help="cpu, cuda, ... (default: the run's config)")
    parser.add_argument("--batch-size", type=int, help="batch size of both passes (the run's)")
    parser.add_argument("--threads", type=int, help="CPU threads for this process")
    parser.add_argument("--no-report", action="store_true", help="do not rewrite report.html")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def _number(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.{digits}f}"


def _print_sweep(folder: str, table) -> None:
    from layerscope.projection import sweep_metric
    from layerscope.report.projection import projection_summary

    metric = sweep_metric(table)
    summary = projection_summary(table)
    columns = [c for c in summary.columns if c.startswith("relative_") and "min" not in c
               and "max" not in c]  # fmt: skip
    print(f"{folder}: unprojected {metric} {_number(table[f'unprojected_{metric}'].iloc[0])}, "
          f"{int(table.total_features.iloc[0])} dimensions in all recorded layers")  # fmt: skip
    names = [c[len(f"relative_{metric} (") : -1] for c in columns]
    print(f"{'delta':>8}  " + "  ".join(f"{'rel. ' + n:>12}" for n in names) + f"  {'dims':>6}")
    for row in summary.to_dict("records"):
        cells = "  ".join(f"{_number(row[c]):>12}" for c in columns)
        print(f"{row['delta']:>8g}  {cells}  {int(row['total_dimensions']):>6}")


def _print_relevance(found) -> None:
    table = found.table
    print(f"relevant eigenspace over {int(table.n.iloc[0])} runs ({found.metric}, paired "
          f"two-sided t-test, alpha {found.alpha:g}):")  # fmt: skip
    print(f"{'delta':>8}  {'mean diff':>10}  {'sd':>8}  {'t':>7}  {'p':>6}  {'dims':>14}")
    for row in table.to_dict("records"):
        mark = "  *" if row["significant"] else ""
        dims = f"{row['mean_total_dimensions']:.0f} +- {row['sd_total_dimensions']:.0f}"
        print(f"{row['delta']:>8g}  {_number(row['mean_difference']):>10}  "
              f"{_number(row['sd_difference']):>8}  {_number(row['t'], 2):>7}  "
              f"{_number(row['p'], 3):>6}  {dims:>14}{mark}")  # fmt: skip
    selected = found.selected_delta
    print("selected delta: " + (f"{selected:g} (it and every larger delta not significant)"
                                if selected is not None else "none (the largest delta differs)"))  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from layerscope.errors import OptionError
    from layerscope.lab.projecting import project_runs

    if args.table and len(args.run_dirs) < 2:
        raise OptionError("--table needs two or more run folders (the t-test compares runs)")
    if args.seeds < 1:
        raise OptionError(f"--seeds must be >= 1, got {args.seeds}")
    if args.threads is not None:
        if args.threads < 1:
            raise OptionError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    tables, found = project_runs(
        args.run_dirs,
        alpha=args.alpha,
        deltas=args.deltas if args.deltas else args.grid,
        baselines=tuple(args.baseline or ("pca", "random")),
        seeds=range(args.seeds),
        device=args.device,
        batch_size=args.batch_size,
        report=not args.no_report,
        progress=not args.no_progress,
    )
    for folder, table in tables.items():
        _print_sweep(folder, table)
    if found is not None:
        _print_relevance(found)
        if args.table:
            found.table.to_csv(args.table, index=False)
    elif args.table:
        raise OptionError("--table needs the pca baseline (add --baseline pca)")
    return 0
