"""Start-up time of the command line: ``layerscope --help`` and ``layerscope list KIND`` beside
``python -c pass``, each a fresh interpreter, interleaved.

    python benchmarks/cli_startup.py [--repeats 15] [--kinds models sinks statistics]

Every repeat runs every command once, in a rotated order; the table shows the median wall time
with its interquartile range, and the median over repeats of the time minus the bare
interpreter's in the same repeat (what layerscope itself costs).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def command(arguments: list[str]) -> list[str]:
    code = (
        "import sys\nfrom layerscope.cli import main\n"
        f"try:\n    main({arguments!r})\nexcept SystemExit:\n    pass\n"
    )
    return [sys.executable, "-c", code]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--kinds",
        nargs="*",
        default=[
            "models",
            "datasets",
            "optimizers",
            "metrics",
            "statistics",
            "sinks",
            "solvers",
            "similarity",
        ],
    )
    args = parser.parse_args()
    commands = {"python -c pass": [sys.executable, "-c", "pass"]}
    commands["layerscope --help"] = command(["--help"])
    for kind in args.kinds:
        commands[f"layerscope list {kind}"] = command(["list", kind])
    names = list(commands)
    times: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(args.repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            subprocess.run(commands[name], capture_output=True, check=True)
            times[name].append(time.perf_counter() - start)
    bare = times["python -c pass"]
    print(f"{args.repeats} interleaved repeats, {sys.executable}")
    print(f"{'command':<28} {'median s':>9} {'IQR s':>15} {'minus python s':>15}")
    for name in names:
        q1, median, q3 = statistics.quantiles(times[name], n=4, method="inclusive")
        extra = statistics.median([t - b for t, b in zip(times[name], bare, strict=True)])
        print(f"{name:<28} {median:>9.3f} {q1:>7.3f}-{q3:<7.3f} {extra:>15.3f}")


if __name__ == "__main__":
    main()
