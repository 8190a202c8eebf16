"""Sections of a run's report that appear when their data exists (position probes, and what later
analyses add: projections, weight dynamics, ...).

A section is registered once in :data:`REPORT_SECTIONS` as a :class:`ReportSection`: a function
``build(run_dir, df) -> Section | None`` (None: nothing to show for this run), its place on the
page (``order``), and the per-layer statistics whose *every* epoch it reads (``history``), so
that the live report (:class:`~layerscope.report.live.ReportWriter`) keeps those in memory too.
:func:`~layerscope.report.html.write_report` renders the sections that return something, by
``order``.

Example:
    >>> from matplotlib.figure import Figure
    >>> def build(run_dir, df):
    ...     return Section("Doc example", [("doc_example", Figure())], note="Nothing to see.")
    >>> REPORT_SECTIONS.add("doc-example", ReportSection(build, order=90))
    >>> REPORT_SECTIONS.get("doc-example")(".", None).title
    'Doc example'
    >>> _ = REPORT_SECTIONS.remove("doc-example")
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
from matplotlib.figure import Figure

from layerscope.registry import Registry

__all__ = ["REPORT_SECTIONS", "ReportSection", "Section", "history_statistics", "section_phases"]


@dataclass(frozen=True)
class Section:
    """What a section shows: a title, figures (file stem, figure), a note and trusted HTML."""

    title: str
    figures: list[tuple[str, Figure]] = field(default_factory=list)
    note: str = ""  # plain text, escaped when rendered
    html: str = ""  # already escaped HTML (tables), inserted as is


@dataclass(frozen=True)
class ReportSection:
    """A registered section: ``build(run_dir, df)``, its ``order``, its ``history`` and the
    ``phases`` whose model-level records it shows itself (left out of the per-epoch table)."""

    build: Callable[[str | os.PathLike, pd.DataFrame], Section | None]
    order: int = 50
    history: frozenset[str] = frozenset()
    description: str = ""
    phases: frozenset[str] = frozenset()

    def __call__(self, run_dir, df) -> Section | None:
        return self.build(run_dir, df)


#: Report sections by name.
REPORT_SECTIONS: Registry[ReportSection] = Registry("report section", "layerscope.report_sections")


def history_statistics() -> frozenset[str]:
    """Per-layer statistics some registered section reads at every epoch."""
    found: set[str] = set()
    for name in REPORT_SECTIONS.list():
        found |= REPORT_SECTIONS.get(name).history
    return frozenset(found)


def section_phases() -> frozenset[str]:
    """Phases whose records some registered section shows itself."""
    found: set[str] = set()
    for name in REPORT_SECTIONS.list():
        found |= REPORT_SECTIONS.get(name).phases
    return frozenset(found)
