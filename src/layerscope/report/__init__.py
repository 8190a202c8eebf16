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
- :mod:`~layerscope.report.similarity`: similarity heatmaps and curves;
- :mod:`~layerscope.report.curves`: :func:`training_curves`; :mod:`~layerscope.report.overview`:
  :func:`main_figure` (saturation, probes, receptive field, border layers) and the advice;
- :mod:`~layerscope.report.page`: the page layout and :func:`human` number formatting;
  :mod:`~layerscope.report.runbox`: the run box; :mod:`~layerscope.report.notebook`:
  :func:`show` (a report in a notebook).

Every figure function returns a ``matplotlib.figure.Figure`` (no pyplot state); save one with
:func:`save_figure` or display it in a notebook as it is.
"""

import layerscope.report.weights  # noqa: F401 - registers the weight-dynamics section
from layerscope.report.curves import training_curves
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
from layerscope.report.notebook import ReportView, show
from layerscope.report.overview import advice_lines, main_figure, read_architecture
from layerscope.report.page import human
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
    "ReportView",
    "ReportWriter",
    "Section",
    "advice_lines",
    "figure_bytes",
    "human",
    "intrinsic_dimension_by_layer",
    "layer_table",
    "main_figure",
    "plot_similarity_matrix",
    "plot_similarity_over_epochs",
    "position_heatmaps",
    "projection_dimensions",
    "projection_relative",
    "projection_summary",
    "read_architecture",
    "run_summary",
    "saturation_against_accuracy",
    "saturation_and_probes",
    "saturation_by_layer",
    "saturation_heatmap",
    "save_figure",
    "show",
    "training_curves",
    "write_index",
    "write_report",
]
