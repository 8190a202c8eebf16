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
    add_executor_flags(run, jobs_help="runs at once (default: the available cores)")
    run.set_defaults(handler=run_config)

    resume = subparsers.add_parser(
        "resume",
        help="continue an interrupted run from its last good checkpoint",
    )
    resume.add_argument("run_dir", help="the run folder (holds config.json)")
    resume.add_argument("--no-progress", action="store_true")
    resume.set_defaults(handler=resume_folder)


def add_executor_flags(parser: argparse.ArgumentParser, jobs_help: str) -> None:
    """--executor, --address, --jobs and --threads (config key ``executor``)."""
    parser.add_argument(
        "--executor",
        help="where the jobs run: local (default: here, one by one), processes, dask or ray "
        "(config key executor.name)",
    )
    parser.add_argument(
        "--address",
        help="an existing cluster's scheduler: tcp://HOST:PORT for dask, HOST:PORT for ray "
        "(default: start a local one)",
    )
    parser.add_argument("--jobs", type=int, help=jobs_help)
    parser.add_argument("--threads", type=int, help="torch threads per job (cores // jobs)")


def executor_flags(args: argparse.Namespace) -> dict:
    return {"name": args.executor, "address": args.address, "jobs": args.jobs,
            "threads": args.threads}  # fmt: skip


def run_config(args: argparse.Namespace) -> int:
    from layerscope.lab.config import describe_runs, load_config
    from layerscope.lab.executors import ExecutorConfig
    from layerscope.lab.grid import config_executor, run_experiment, summary_table
    from layerscope.lab.preflight import check_forward

    configs = load_config(args.config)
    settings = ExecutorConfig.create(config_executor(args.config), **executor_flags(args))
    if args.dry_run:
        print(describe_runs(configs))
        check_forward(configs)
        print(f"one forward pass of a zero batch per model: ok; executor {settings.name}")
        return 0
    results = run_experiment(configs, progress=not args.no_progress, executor=settings)
    print(summary_table(results))
    return 1 if any(result.status == "failed" for result in results) else 0


def resume_folder(args: argparse.Namespace) -> int:
    from layerscope.lab.experiment import resume_run

    result = resume_run(args.run_dir, progress=not args.no_progress)
    print(f"{result.status} {result.run_dir}")
    return 0
