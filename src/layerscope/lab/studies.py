"""Studies: the seeds' findings as runnable scripts under ``examples/studies/`` (issue 17).

A study is a Python script ``examples/studies/NAME.py`` (or a config ``NAME.toml``) that trains
what it needs, measures the claim and writes, under its output folder, ``results.json`` (the
measured numbers and the wall time) and its figures. ``layerscope study NAME`` runs one;
``layerscope study --list`` lists them with the first line of their docstring.

Every study script defines ``run(out, quick=False) -> dict`` (``quick`` is the shortened version
the slow tests run) and ends with ``study_main(NAME, run, __doc__, ...)``; ``StudyTimer``,
``write_results``, ``study_figure`` and ``markdown_table`` keep their result files, figures and
tables in one shape.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import math
import os
import runpy
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from layerscope.errors import LayerscopeError, UnknownNameError
from layerscope.store.atomic import atomic_write_text

__all__ = [
    "StudyTimer",
    "describe_resources",
    "find_study",
    "list_studies",
    "markdown_table",
    "run_study",
    "studies_folder",
    "study_figure",
    "study_main",
    "write_results",
]


def studies_folder(folder: str | os.PathLike | None = None) -> Path:
    """The folder holding the studies: ``folder``, else ``./examples/studies``, else the
    ``examples/studies`` of the source tree this package was imported from (a clone)."""
    if folder is not None:
        path = Path(folder)
        if not path.is_dir():
            raise UnknownNameError(f"studies folder {str(path)!r} does not exist (--dir DIR)")
        return path
    here = Path.cwd() / "examples" / "studies"
    if here.is_dir():
        return here
    tree = Path(__file__).resolve().parents[3] / "examples" / "studies"
    if tree.is_dir():
        return tree
    raise UnknownNameError(
        "no examples/studies folder here or in layerscope's source tree; run from a clone of "
        "the repository or pass --dir DIR"
    )


def _summary(path: Path) -> str:
    """First line of a script's docstring, or of a config's leading comment."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        doc = ast.get_docstring(ast.parse(text)) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""
    for line in text.splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def list_studies(folder: str | os.PathLike | None = None) -> dict[str, str]:
    """Study name -> one-line summary, sorted by name (files starting with ``_`` are helpers).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "width.py").write_text("'''Width against saturation.'''")
        >>> list_studies(folder)
        {'width': 'Width against saturation.'}
    """
    root = studies_folder(folder)
    found = {}
    for path in sorted(root.iterdir()):
        if path.suffix in (".py", ".toml") and not path.name.startswith("_"):
            found[path.stem] = _summary(path)
    return found


def find_study(name: str, folder: str | os.PathLike | None = None) -> Path:
    """The script (or config) of study ``name``; an unknown name says what exists.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "width.py").write_text("")
        >>> find_study("width", folder).name
        'width.py'
        >>> find_study("widht", folder)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        layerscope.errors.UnknownNameError: no study named 'widht' in ... Did you mean 'width'? ...
    """
    root = studies_folder(folder)
    for suffix in (".py", ".toml"):
        path = root / f"{name}{suffix}"
        if path.is_file():
            return path
    names = list(list_studies(root))
    close = difflib.get_close_matches(name, names, n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise UnknownNameError(
        f"no study named {name!r} in {root}.{hint} `layerscope study --list` lists "
        f"{len(names)} studies"
    )


def run_study(
    name: str, argv: Sequence[str] = (), *, folder: str | os.PathLike | None = None
) -> Path:
    """Run study ``name``: a script as ``python NAME.py ARGV...`` in this process, a config as
    ``layerscope run NAME.toml``. Returns the study's path.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "hello.py").write_text("import sys; print('hello', sys.argv[1:])")
        >>> run_study("hello", ["--quick"], folder=folder).name
        hello ['--quick']
        'hello.py'
    """
    path = find_study(name, folder)
    if path.suffix == ".toml":
        from layerscope.lab.grid import run_experiment

        failed = [job for job in run_experiment(path, progress=False) if job.status == "failed"]
        if failed:
            raise LayerscopeError(
                f"study {name!r}: {len(failed)} run(s) failed; the first: {failed[0].first_line}"
                " (each failed run's folder holds status.json with the whole error)"
            )
        return path
    saved = sys.argv
    sys.argv = [str(path), *argv]
    try:
        runpy.run_path(str(path), run_name="__main__")
    finally:
        sys.argv = saved
    return path


class StudyTimer:
    """Wall time, CPU time and load of a study, as written into ``results.json``.

    CPU time is ``resource.getrusage`` of this process and its finished children (a study's
    worker processes), user + system: on a shared machine it bounds what an idle one needs
    (``cpu_seconds / cores``) while the wall time says what this run took. The load averages
    (``os.getloadavg``, 1 minute) at the start and the end say how shared the machine was.

    Example:
        >>> timer = StudyTimer()
        >>> sorted(timer.resources())
        ['cpu_seconds', 'load_end', 'load_start', 'wall_seconds']
        >>> timer.resources()["wall_seconds"] >= 0
        True
    """

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.cpu_started = _cpu_seconds()
        self.load_start = _load()

    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def resources(self) -> dict[str, float | None]:
        """``wall_seconds``, ``cpu_seconds``, ``load_start`` and ``load_end`` so far."""
        return {"wall_seconds": self.seconds(), "cpu_seconds": _cpu_seconds() - self.cpu_started,
                "load_start": self.load_start, "load_end": _load()}  # fmt: skip


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its waited-for children."""
    import resource

    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def _load() -> float | None:
    """The 1-minute load average (None where the system has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def describe_resources(results: Mapping[str, Any]) -> str:
    """One line of a study's time, CPU time and load.

    Example:
        >>> describe_resources({"wall_seconds": 61.2, "cpu_seconds": 118.0, "load_start": 2.0,
        ...                     "load_end": 2.5})
        '61 s wall, 118 s CPU (load 2.0 -> 2.5)'
    """
    line = f"{results['wall_seconds']:.0f} s wall, {results['cpu_seconds']:.0f} s CPU"
    if results.get("load_start") is not None:
        line += f" (load {results['load_start']:.1f} -> {results['load_end']:.1f})"
    return line


@contextmanager
def study_figure(path: str | os.PathLike, nrows: int = 1, ncols: int = 1, **subplots: Any):
    """A Matplotlib figure on the Agg backend (no display needed) saved to ``path`` and closed
    on leaving the block; yields ``(figure, axes)`` as ``plt.subplots`` returns them.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "line.png"
        >>> with study_figure(path, figsize=(3, 2)) as (fig, ax):
        ...     _ = ax.plot([0, 1], [1, 0])
        >>> path.stat().st_size > 0
        True
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(nrows, ncols, **subplots)
    try:
        yield fig, axes
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)


def study_main(
    name: str,
    run: Callable[..., Mapping[str, Any]],
    doc: str,
    *,
    columns: Sequence[str] | None = None,
    rows: str = "rows",
    summary: Callable[[Mapping[str, Any]], str] | None = None,
    argv: Sequence[str] | None = None,
) -> Mapping[str, Any]:
    """The command line of a study script: ``--out DIR`` (default ``logs/studies/NAME``) and
    ``--quick``; runs ``run(out, quick=...)``, prints ``results[rows]`` as a table of
    ``columns`` (default: the first row's keys), ``summary(results)`` and the time.

    Example:
        >>> import tempfile
        >>> def run(out, quick=False):
        ...     return {"rows": [{"width": 1, "s_mu": 0.25}], "wall_seconds": 1.0,
        ...             "cpu_seconds": 2.0, "load_start": None}
        >>> _ = study_main("demo", run, "Demo study.", summary=lambda r: "ok",
        ...                argv=["--out", tempfile.mkdtemp()])
        | width | s_mu |
        | --- | --- |
        | 1 | 0.250 |
        ok
        1 s wall, 2 s CPU
    """
    parser = argparse.ArgumentParser(prog=f"layerscope study {name} --",
                                     description=doc.strip().splitlines()[0])  # fmt: skip
    parser.add_argument("--out", default=f"logs/studies/{name}", help="where results go")
    parser.add_argument("--quick", action="store_true", help="the shortened version")
    args = parser.parse_args(argv)
    results = run(args.out, quick=args.quick)
    table = results[rows]
    print(markdown_table(table, list(columns) if columns is not None else list(table[0])))
    if summary is not None:
        print(summary(results))
    print(describe_resources(results))
    return results


def _plain(value: Any) -> Any:
    """JSON-able: numpy scalars and arrays to Python, NaN and inf to None."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_results(out: str | os.PathLike, results: Mapping[str, Any]) -> Path:
    """Write ``results`` as ``out/results.json`` (numpy values made plain); returns the path.

    Example:
        >>> import tempfile, numpy as np
        >>> path = write_results(tempfile.mkdtemp(), {"s_mu": np.float64(0.25), "x": [np.nan]})
        >>> json.loads(path.read_text())
        {'s_mu': 0.25, 'x': [None]}
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "results.json"
    atomic_write_text(path, json.dumps(_plain(results), indent=2, sort_keys=True) + "\n")
    return path


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A Markdown table of ``rows`` (floats with 3 decimals, None as ``-``).

    Example:
        >>> print(markdown_table([{"width": 1, "s_mu": 0.2413}], ["width", "s_mu"]))
        | width | s_mu |
        | --- | --- |
        | 1 | 0.241 |
    """

    def cell(value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        if isinstance(value, float):
            return f"{value:.3f}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
