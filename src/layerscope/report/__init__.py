"""Figures (matplotlib, headless) and HTML reports built from run records (SPEC C4, C12).

Reads records and analysis results; writes only figures and HTML.

- :mod:`~layerscope.report.figures`: saturation per layer (with probes), heatmaps over epochs,
  intrinsic dimension; :func:`save_figure`;
- :mod:`~layerscope.report.html`: :func:`write_report`, one self-contained page per run;
- :mod:`~layerscope.report.live`: :class:`ReportWriter`, a Tracker callback for a live report;
- :mod:`~layerscope.report.index`: :func:`write_index` across runs;
- :mod:`~layerscope.report.sections`: the registry of sections that appear when their data
  exists (:mod:`~layerscope.report.positions`: position-probe heatmaps;
  :mod:`~layerscope.report.projection`: delta sweeps of projected networks);
- :mod:`~layerscope.report.similarity`: similarity heatmaps and curves.
"""

import layerscope.report.weights  # noqa: F401 - registers the weight-dynamics section
from layerscope.report.figures import (
    figure_bytes,
    intrinsic_dimension_by_layer,
    saturation_and_probes,
    saturation_by_layer,
    saturation_heatmap,
    save_figure,
)
from layerscope.report.html import layer_table, write_report
from layerscope.report.index import run_summary, saturation_against_accuracy, write_index
from layerscope.report.live import ReportRecords, ReportWriter
from layerscope.report.positions import position_heatmaps
from layerscope.report.projection import (
    projection_dimensions,
    projection_relative,
    projection_summary,
)
from layerscope.report.sections import REPORT_SECTIONS, ReportSection, Section
from layerscope.report.similarity import plot_similarity_matrix, plot_similarity_over_epochs

__all__ = [
    "REPORT_SECTIONS",
    "ReportRecords",
    "ReportSection",
    "ReportWriter",
    "Section",
    "figure_bytes",
    "intrinsic_dimension_by_layer",
    "layer_table",
    "plot_similarity_matrix",
    "plot_similarity_over_epochs",
    "position_heatmaps",
    "projection_dimensions",
    "projection_relative",
    "projection_summary",
    "run_summary",
    "saturation_against_accuracy",
    "saturation_and_probes",
    "saturation_by_layer",
    "saturation_heatmap",
    "save_figure",
    "write_index",
    "write_report",
]
