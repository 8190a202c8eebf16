"""``layerscope run CONFIG`` and ``layerscope resume RUN_DIR``: train configured runs."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser(
        "run",
        help="train every run of a config file (JSON, TOML, YAML); finished runs are skipped",
        description="Expand the config's lists into runs and train each with tracking. A killed "
        "run resumes from its last checkpoint when the same command runs again.",
    )
    run.add_argument("config", help="the config file")
    run.add_argument("--dry-run", action="store_true", help="print the expanded runs and stop")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.set_defaults(handler=run_config)

    resume = subparsers.add_parser(
        "resume",
        help="continue an interrupted run from its last good checkpoint",
    )
    resume.add_argument("run_dir", help="the run folder (holds config.json)")
    resume.add_argument("--no-progress", action="store_true")
    resume.add_argument(
        "--epochs",
        type=int,
        metavar="N",
        help="train on to N epochs in all (extends a finished run)",
    )
    resume.set_defaults(handler=resume_folder)


def run_config(args: argparse.Namespace) -> int:
    from layerscope.lab.config import describe_runs, load_config
    from layerscope.lab.experiment import run_experiment

    configs = load_config(args.config)
    if args.dry_run:
        print(describe_runs(configs))
        return 0
    results = run_experiment(configs, progress=not args.no_progress)
    for result in results:
        accuracy = result.metrics.get("test_accuracy")
        shown = f"test accuracy {accuracy:.4f}" if accuracy is not None else ""
        print(f"{result.status:<9} {result.run_dir}  {shown}".rstrip())
    return _diverged_exit(results)


def _diverged_exit(results) -> int:
    """1 when a run diverged (a NaN or infinite loss), with one line saying which; else 0."""
    import sys

    diverged = [result for result in results if result.status == "diverged"]
    if not diverged:
        return 0
    folders = ", ".join(str(result.run_dir) for result in diverged)
    print(f"layerscope: {len(diverged)} of {len(results)} run(s) diverged (NaN or infinite loss): "
          f"{folders}; see each folder's done.json and report.html", file=sys.stderr)  # fmt: skip
    return 1


def resume_folder(args: argparse.Namespace) -> int:
    from layerscope.lab.experiment import resume_run

    result = resume_run(args.run_dir, progress=not args.no_progress, epochs=args.epochs)
    if result.status == "diverged":
        return _diverged_exit([result])
    if result.status == "skipped":
        print(f"{result.run_dir} is finished; nothing to train (--epochs N trains on to N epochs)")
    else:
        print(f"{result.status} {result.run_dir}: trained {result.epochs_trained} epoch(s)")
    return 0
