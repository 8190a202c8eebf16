"""``layerscope list KIND [PATTERN]``: what can be named in configs, options and commands.

Every kind is a :class:`~layerscope.registry.Registry`; listing one imports only the package
that fills it.
"""

from __future__ import annotations

import argparse
import importlib

#: kind -> (the module whose import fills the registry, where the registry lives, its name)
KINDS: dict[str, tuple[str, str, str]] = {
    "models": ("layerscope.models", "layerscope.registry", "MODELS"),
    "datasets": ("layerscope.datasets", "layerscope.registry", "DATASETS"),
    "optimizers": ("layerscope.lab.optimizers", "layerscope.registry", "OPTIMIZERS"),
    "metrics": ("layerscope.lab.metrics", "layerscope.registry", "METRICS"),
    "statistics": ("layerscope.stats.spectrum", "layerscope.stats.spectrum", "STATISTICS"),
    "sinks": ("layerscope.store", "layerscope.store.sinks", "SINKS"),
    "solvers": ("layerscope.probes", "layerscope.probes.solvers", "PROBE_SOLVERS"),
    "similarity": ("layerscope.similarity", "layerscope.similarity.measures", "MEASURES"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "list",
        help="list registered models, datasets, optimizers, metrics, statistics, sinks, probe "
        "solvers or similarity measures",
    )
    parser.add_argument("kind", choices=tuple(KINDS))
    parser.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'vgg*'")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    fill, holder, name = KINDS[args.kind]
    importlib.import_module(fill)
    registry = getattr(importlib.import_module(holder), name)
    entries = [(n, registry.describe(n)) for n in registry.list(args.pattern)]
    if not entries:
        print(f"no {args.kind} match {args.pattern!r}")
        return 1
    width = max(len(n) for n, _ in entries)
    for entry, description in entries:
        print(f"{entry:<{width}}  {description}".rstrip())
    return 0
