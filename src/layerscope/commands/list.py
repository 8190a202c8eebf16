"""``layerscope list models|datasets|optimizers|metrics|statistics``: what can be named."""

from __future__ import annotations

import argparse

KINDS = ("models", "datasets", "optimizers", "metrics", "statistics")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "list", help="list registered models, datasets, optimizers, metrics or statistics"
    )
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'vgg*'")
    parser.set_defaults(handler=run)


def _first_line(obj: object) -> str:
    lines = (getattr(obj, "__doc__", None) or "").strip().splitlines()
    return lines[0] if lines else ""


def run(args: argparse.Namespace) -> int:
    if args.kind == "statistics":
        import fnmatch

        from layerscope.stats.spectrum import get_statistic, list_statistics

        names = [n for n in list_statistics() if fnmatch.fnmatchcase(n, args.pattern)]
        entries = [(n, get_statistic(n).description) for n in names]
    else:
        import layerscope.datasets  # fills DATASETS
        import layerscope.lab  # fills OPTIMIZERS and METRICS
        from layerscope import registry

        try:
            import layerscope.models  # noqa: F401 - fills MODELS
        except ImportError:
            pass
        reg = getattr(registry, args.kind.upper())
        entries = [(n, _first_line(reg.get(n))) for n in reg.list(args.pattern)]
    if not entries:
        print(f"no {args.kind} match {args.pattern!r}")
        return 1
    width = max(len(n) for n, _ in entries)
    for name, description in entries:
        print(f"{name:<{width}}  {description}".rstrip())
    return 0
