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
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, repeatable: --set epochs=2 --set optimizer.lr=0.01 "
        "(a list sweeps, as in the file: --set 'seed=[0, 1]')",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="print the expanded runs and where each stands (new, finished, resumes at epoch "
        "k, clashes) and stop",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_executor_flags(run, jobs_help="runs at once (default: the available cores)")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress, no epoch lines")
    run.set_defaults(handler=run_config)

    resume = subparsers.add_parser(
        "resume",
        help="continue an interrupted run from its last good checkpoint",
    )
    resume.add_argument("run_dir", help="the run folder (holds config.json)")
    resume.add_argument("--no-progress", action="store_true", help="no progress bars")
    resume.add_argument("-q", "--quiet", action="store_true", help="no progress, no epoch lines")
    resume.add_argument(
        "--epochs",
        type=int,
        metavar="N",
        help="train on to N epochs in all (extends a finished run)",
    )
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


def apply_overrides(config: dict, overrides: list[str]) -> dict:
    """``--set KEY=VALUE`` pairs applied to a config mapping (dotted keys reach into sections;
    ``optimizer = "sgd"`` becomes ``{name = "sgd"}`` when one of its keys is set).

    Example:
        >>> apply_overrides({"model": "vgg11", "optimizer": "sgd"}, ["optimizer.lr=0.1", "epochs=2"])
        {'model': 'vgg11', 'optimizer': {'name': 'sgd', 'lr': 0.1}, 'epochs': 2}
    """
    from layerscope.commands.rf import parse_option

    config = dict(config)
    for text in overrides:
        key, value = parse_option(text)
        *sections, name = key.split(".")
        node = config
        for section in sections:
            inner = node.get(section)
            if isinstance(inner, str):  # the shorthand optimizer = "adam"
                inner = {"name": inner}
            node[section] = dict(inner) if isinstance(inner, dict) else {}
            node = node[section]
        node[name] = value
    return config


def run_config(args: argparse.Namespace) -> int:
    from layerscope.lab.config import load_config, read_config
    from layerscope.lab.console import quiet
    from layerscope.lab.executors import ExecutorConfig
    from layerscope.lab.grid import config_executor, run_experiment, summary_table
    from layerscope.lab.plan import describe_plan
    from layerscope.lab.preflight import check_forward

    if args.set:  # the file's logs_dir is relative to its folder, --set logs_dir=... to here
        mapping = apply_overrides(read_config(args.config), args.set)
        configs = load_config(mapping, source=f"{args.config} with --set {' '.join(args.set)}")
    else:
        mapping = args.config
        configs = load_config(args.config)
    settings = ExecutorConfig.create(config_executor(mapping), **executor_flags(args))
    if args.dry_run:
        print(describe_plan(configs))
        check_forward(configs, skip_missing_data=True)
        print(f"one forward pass of a zero batch per model with data: ok; executor {settings.name}")
        return 0
    with quiet(args.quiet):
        results = run_experiment(configs, progress=not (args.no_progress or args.quiet),
                                 executor=settings)  # fmt: skip
    print(summary_table(results))  # each run's report.html, or the error of a failed one
    failed = any(result.status == "failed" for result in results)
    return _diverged_exit(results) or int(failed)


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
    from layerscope.lab.console import quiet
    from layerscope.lab.experiment import resume_run

    with quiet(args.quiet):
        result = resume_run(args.run_dir, progress=not (args.no_progress or args.quiet),
                            epochs=args.epochs)  # fmt: skip
    if result.status == "diverged":
        return _diverged_exit([result])
    if result.status == "skipped":
        print(f"{result.run_dir} is finished; nothing to train (--epochs N trains on to N epochs)")
    else:
        print(f"{result.status} {result.run_dir}: trained {result.epochs_trained} epoch(s); "
              f"report {result.run_dir / 'report.html'}")  # fmt: skip
    return 0
