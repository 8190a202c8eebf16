"""``layerscope demo``: train a small CNN on the embedded digits data with tracking on."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="train a small CNN on digits with tracking; writes a run folder with a report",
        description="Train a small CNN on scikit-learn's digits (embedded, upsampled to 32x32) "
        "with a Tracker, write a run folder (config.json, checkpoints/, records.sqlite, figures/, "
        "report.html) that every run-folder command takes, and print its path, a per-layer "
        "summary and the commands to try next.",
    )
    parser.add_argument("--out", default="runs/demo", help="parent folder of the run (runs/demo)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress, no epoch lines")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from layerscope.demo import next_commands, run_demo, summary
    from layerscope.lab.console import quiet

    with quiet(args.quiet):
        run_dir = run_demo(
            args.out,
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=args.seed,
            progress=not (args.no_progress or args.quiet),
        )
    print(f"run folder: {run_dir}")
    print(f"report:     {run_dir / 'report.html'}")
    print()
    print(summary(run_dir))
    print()
    print(next_commands(run_dir))
    return 0
