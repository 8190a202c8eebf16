"""The ``layerscope`` command: a thin layer over the Python API.

Each subcommand lives in its own module under :mod:`layerscope.commands` and exposes
``register(subparsers)``, which adds its parser and sets ``handler`` (a function taking the parsed
arguments and returning an exit code). Add a command by adding its module to ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from layerscope import __version__
from layerscope.errors import LayerscopeError

#: Modules under layerscope.commands, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = (
    "demo", "run", "list", "probe", "project", "report", "rf", "similarity", "spectrum",
    "weights", "study",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="layerscope",
        description="See what every layer of a PyTorch network does while it trains.",
    )
    parser.add_argument("--version", action="version", version=f"layerscope {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"layerscope.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``layerscope`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except LayerscopeError as error:
        # User mistakes (bad names, paths, values) get their message, not a traceback; any
        # other exception is a bug and shows its traceback.
        print(f"layerscope {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
