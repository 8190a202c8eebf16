"""``layerscope study NAME``: run one of the reproduction studies under ``examples/studies/``."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "study",
        help="run a reproduction study of examples/studies/ (--list lists them)",
        description="Run study NAME: the script examples/studies/NAME.py (arguments after NAME, "
        "or after --, go to it: --out DIR, --quick) or the config NAME.toml. Each study writes "
        "results.json and its figures; docs/studies/NAME.md holds the measured numbers.",
    )
    parser.add_argument("name", nargs="?", help="the study, e.g. width_saturation")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the study script")
    parser.add_argument("--list", action="store_true", help="list the studies and stop")
    parser.add_argument("--dir", help="the studies folder (default: examples/studies)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from layerscope.errors import OptionError
    from layerscope.lab.studies import list_studies, run_study

    if args.list:
        studies = list_studies(args.dir)
        width = max((len(name) for name in studies), default=0)
        for name, summary in studies.items():
            print(f"{name:<{width}}  {summary}".rstrip())
        return 0
    if not args.name:
        raise OptionError(
            "name a study (layerscope study NAME) or list them: layerscope study --list"
        )
    extra = args.args[1:] if args.args[:1] == ["--"] else args.args
    run_study(args.name, extra, folder=args.dir)
    return 0
