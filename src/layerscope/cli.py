"""The ``layerscope`` command: a thin layer over the Python API.

Each subcommand lives in its own module under :mod:`layerscope.commands` and exposes
``register(subparsers)``, which adds its parser and sets ``handler`` (a function taking the parsed
arguments and returning an exit code). Add a command by adding its module to ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import warnings
from collections.abc import Sequence

from layerscope import __version__
from layerscope.errors import LayerscopeError, user_context

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
        with _one_line_warnings(), user_context("cli"):  # fixes in messages: flags
            return int(args.handler(args) or 0)
    except BrokenPipeError:
        # The reader went away (`layerscope ... | head`): stop quietly, without a traceback,
        # and keep Python from complaining again when it flushes stdout at exit.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print(f"layerscope {args.command}: output closed early (broken pipe)", file=sys.stderr)
        return 141
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except LayerscopeError as error:
        # User mistakes (bad names, paths, values) get their message, not a traceback; any
        # other exception is a bug and shows its traceback.
        print(f"layerscope {args.command}: error: {error}", file=sys.stderr)
        return 2


@contextlib.contextmanager
def _one_line_warnings():
    """Warnings as one line each (``layerscope: warning: ...``), without the source line that
    Python's default format repeats: readable in a batch job's log."""
    original = warnings.formatwarning

    def one_line(message, category, filename, lineno, line=None):
        text = " ".join(str(message).split())
        return f"layerscope: {category.__name__}: {text}\n"

    warnings.formatwarning = one_line
    try:
        yield
    finally:
        warnings.formatwarning = original


if __name__ == "__main__":
    sys.exit(main())
