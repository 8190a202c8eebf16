"""``layerscope report PATH``: rebuild a run's report, or an index over many runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from layerscope.errors import RunFolderError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="rebuild report.html of a run, or index.html over every run in a folder",
        description="For a run folder: rewrite its figures and report.html. For a folder of "
        "runs: rewrite each run's report and write index.html with one row per run and average "
        "saturation against test accuracy.",
    )
    parser.add_argument("path", help="a run folder or a folder of run folders")
    parser.add_argument(
        "--index-only",
        action="store_true",
        help="for a folder of runs: write index.html only, not each run's report",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from layerscope.report.html import write_report
    from layerscope.report.index import run_summary, write_index
    from layerscope.store.runs import find_stores

    path = Path(args.path)
    stores = find_stores(path)
    if not stores:
        raise RunFolderError(f"no layerscope run under {path}")
    for store in stores:
        _architecture(store.parent)
    if len(stores) == 1 and stores[0].parent == path:
        print(write_report(path))
        return 0
    print(write_index(path, run_reports=not args.index_only))
    summary = run_summary(path)
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


def _architecture(folder: Path) -> None:
    """Write architecture.json (receptive fields, border layers, advice) for a run folder of the
    trainer that has none yet (folders written before the report showed them)."""
    from layerscope.report.overview import ARCHITECTURE_FILE

    if (folder / "config.json").is_file() and not (folder / ARCHITECTURE_FILE).is_file():
        from layerscope.errors import LayerscopeError
        from layerscope.lab.experiment import record_architecture

        try:
            record_architecture(folder)
        except LayerscopeError as error:  # e.g. a model no longer registered: report without
            print(f"{folder}: no receptive-field analysis ({error})")
