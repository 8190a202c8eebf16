"""A run's report in a Jupyter notebook: ``ls.show(run_dir)``.

The page is shown in an ``<iframe srcdoc=...>`` so its stylesheet stays inside it (the
notebook's own styles are untouched); nothing is fetched, the figures are embedded.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path

from layerscope.report.html import write_report

__all__ = ["ReportView", "show"]


@dataclass(frozen=True)
class ReportView:
    """A report as a notebook displays it (``_repr_html_``); ``path`` is the page on disk."""

    path: Path
    height: int = 900

    def __repr__(self) -> str:
        return f"ReportView({str(self.path)!r})"

    def _repr_html_(self) -> str:
        page = self.path.read_text(encoding="utf-8")
        return (f"<iframe srcdoc=\"{html.escape(page, quote=True)}\" title=\"{self.path}\" "
                f"style=\"width: 100%; height: {int(self.height)}px; border: 0\"></iframe>")  # fmt: skip


def show(run_dir: str | os.PathLike, *, rewrite: bool = False, height: int = 900) -> ReportView:
    """Display the report of ``run_dir`` in a notebook (the last expression of a cell); the
    report is written first when missing or when ``rewrite`` is true.

    Example:
        >>> import tempfile, torch
        >>> from torch import nn
        >>> from layerscope import Tracker
        >>> model, folder = nn.Sequential(nn.Linear(3, 3)), tempfile.mkdtemp()
        >>> with Tracker(model, folder) as tracker:
        ...     _ = model(torch.randn(16, 3))
        >>> view = show(folder)
        >>> view._repr_html_().startswith("<iframe srcdoc=")
        True
    """
    path = Path(run_dir) / "report.html"
    if rewrite or not path.is_file():
        path = write_report(run_dir)
    return ReportView(path, height)
