"""``layerscope probe RUN_DIR``: logistic-regression probes for a finished run (SPEC C6)."""

from __future__ import annotations

import argparse
import math


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "probe",
        help="train logistic-regression probes on every recorded layer of a finished run",
        description="Extract every recorded layer's outputs of a run folder's newest checkpoint "
        "(eval mode, no augmentation; average-pooled to at most 4x4 by default), train one "
        "logistic regression per layer, record train and test accuracy in the run's store and "
        "rewrite its report (saturation beside probe accuracy). Finished probes are cached: a "
        "rerun, also after a crash, trains only what is missing.",
    )
    parser.add_argument(
        "run_dir", nargs="+", help="run folders (each holds config.json and checkpoints/)"
    )
    parser.add_argument(
        "--reduction",
        action="append",
        metavar="R",
        help="feature-map reduction, repeatable: avg4 (default), avgN, nearestN, gap, full; "
        "posN / pos for one probe per position of an N x N grid (heatmaps, dissertation 9.3)",
    )
    parser.add_argument(
        "--preset",
        default="standardized",
        choices=("standardized", "dissertation"),
        help="standardized (default: torch L-BFGS on standardised features) or dissertation "
        "(sklearn SAGA for 100 epochs on raw features, 6.2.5); the flags below change it",
    )
    parser.add_argument(
        "--solver",
        help="lbfgs (the default preset's: torch L-BFGS), saga (the dissertation's sklearn "
        "SAGA) or sklearn-lbfgs",
    )
    parser.add_argument("-C", type=float, help="inverse L2 strength, as sklearn (1)")
    parser.add_argument("--tol", type=float, help="solver tolerance (1e-4)")
    parser.add_argument("--max-iter", type=int, help="iterations / epochs (the preset's)")
    parser.add_argument("--no-standardize", action="store_true", help="train on raw features")
    parser.add_argument(
        "--layers", nargs="+", metavar="PATTERN", help="only these layers (fnmatch patterns)"
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        help="local executor: processes per run, one probe per layer (1; -1: one per CPU); "
        "other executors: runs probed at once",
    )
    parser.add_argument(
        "--executor",
        help="where the runs are probed, one job per run: local (default), processes, dask, ray",
    )
    parser.add_argument("--address", help="an existing dask/ray scheduler (default: a local one)")
    parser.add_argument("--device", help="cpu, cuda, ... (default: the run's config)")
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads for this process (default: torch's); 1 is often fastest on a busy "
        "machine, where OpenMP threads wait on each other",
    )
    parser.add_argument("--batch-size", type=int, help="extraction batch size (the run's)")
    parser.add_argument("--latents", metavar="DIR", help="latents folder (RUN_DIR/latents)")
    parser.add_argument("--force", action="store_true", help="extract and fit everything again")
    parser.add_argument("--no-report", action="store_true", help="do not rewrite report.html")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=run)


def _percent(value) -> str:
    return (
        ""
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (f"{100 * value:.2f}")
    )


def _probe_many(args: argparse.Namespace, settings) -> int:
    """One job per run folder on the chosen executor; a summary table; 1 if any failed."""
    from layerscope.lab.grid import probe_runs, summary_table

    local = args.executor in (None, "local") and not args.address
    flags = {"name": args.executor, "address": args.address, "jobs": None if local else args.jobs,
             "threads": args.threads if not local else None}  # fmt: skip
    results = probe_runs(
        args.run_dir, executor=None, flags=flags, progress=not args.no_progress,
        reductions=args.reduction or ["avg4"], settings=settings, layers=args.layers,
        n_jobs=args.jobs if local else None, device=args.device, batch_size=args.batch_size,
        latents_dir=args.latents, force=args.force, report=not args.no_report,
    )  # fmt: skip
    print(summary_table(results))
    return 1 if any(result.status == "failed" for result in results) else 0


def run(args: argparse.Namespace) -> int:
    from layerscope.lab.probing import probe_run
    from layerscope.probes import ProbeSettings, limit_threads

    if args.threads is not None:
        limit_threads(args.threads)
    given = {"solver": args.solver, "C": args.C, "tol": args.tol, "max_iter": args.max_iter}
    changes = {key: value for key, value in given.items() if value is not None}
    if args.no_standardize:
        changes["standardize"] = False
    settings = ProbeSettings.preset(args.preset, **changes)
    if len(args.run_dir) > 1 or args.executor not in (None, "local") or args.address:
        return _probe_many(args, settings)
    found = probe_run(
        args.run_dir[0],
        reductions=args.reduction or ["avg4"],
        settings=settings,
        layers=args.layers,
        n_jobs=args.jobs,
        device=args.device,
        batch_size=args.batch_size,
        latents_dir=args.latents,
        force=args.force,
        report=not args.no_report,
        progress=not args.no_progress,
    )
    for reduction, results in found.items():
        model = results.model_accuracy
        print(
            f"{reduction}: {results.settings.describe()}; model "
            f"accuracy train {_percent(model.get('train'))}%, test {_percent(model.get('test'))}%"
        )
        table = results.table()
        if reduction.startswith("pos"):
            summary = table.groupby(["index", "layer"], sort=True).test_acc.agg(["min", "max"])
            print(f"{'#':>3}  {'layer':<28} {'test min %':>10} {'test max %':>10}")
            for (index, layer), row in summary.iterrows():
                print(f"{index + 1:>3}  {layer:<28} {_percent(row['min']):>10} "
                      f"{_percent(row['max']):>10}")  # fmt: skip
            continue
        print(f"{'#':>3}  {'layer':<28} {'features':>8} {'train %':>8} {'test %':>8} "
              f"{'iters':>6} {'seconds':>8}")  # fmt: skip
        for row in table.to_dict("records"):
            mark = "" if row["converged"] else "  (not converged)"
            seconds = "cached" if row["cached"] else f"{row['seconds']:.2f}"
            print(f"{row['index'] + 1:>3}  {row['layer']:<28} {row['features']:>8} "
                  f"{_percent(row['train_acc']):>8} {_percent(row['test_acc']):>8} "
                  f"{row['n_iter']:>6} {seconds:>8}{mark}")  # fmt: skip
    return 0
