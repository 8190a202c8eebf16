"""Studies: the seeds' findings as runnable scripts under ``examples/studies/`` (issue 17).

A study is a Python script ``examples/studies/NAME.py`` (or a config ``NAME.toml``) that trains
what it needs, measures the claim and writes, under its output folder, ``results.json`` (the
measured numbers and the wall time) and its figures. ``layerscope study NAME`` runs one;
``layerscope study --list`` lists them with the first line of their docstring.

Every study script defines ``run(out, quick=False) -> dict`` (``quick`` is the shortened version
the slow tests run) and ``main(argv)``; the helpers below keep their tables and result files in
one shape.
"""

from __future__ import annotations

import ast
import difflib
import json
import math
import os
import runpy
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from layerscope.errors import LayerscopeError, UnknownNameError
from layerscope.store.atomic import atomic_write_text

__all__ = [
    "StudyTimer",
    "find_study",
    "list_studies",
    "markdown_table",
    "run_study",
    "studies_folder",
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
    """Wall time of a study, as written into ``results.json``.

    Example:
        >>> timer = StudyTimer()
        >>> timer.seconds() >= 0
        True
    """

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.started


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
