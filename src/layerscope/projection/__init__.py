"""PCA projections of layer outputs and the relevant eigenspace (SPEC C5; dissertation 6.1.6, 7).

- :mod:`~layerscope.projection.layers`: :class:`LinearPCA` and :class:`ConvPCA`, layers that pass
  data through while training (accumulating the covariance) and project it in evaluation;
- :mod:`~layerscope.projection.network`: :func:`project`, a copy of a model with a PCA layer after
  every recorded layer (:class:`ProjectedNetwork`), PCA or the random baseline;
- :mod:`~layerscope.projection.evaluation`: :func:`evaluate` with accuracy, reconstruction MSE or
  any per-sample metric;
- :mod:`~layerscope.projection.grids` and :mod:`~layerscope.projection.sweeps`: :func:`sweep` over
  the delta grids of 7.3 and 7.4 (one eigendecomposition per layer for the whole sweep);
- :mod:`~layerscope.projection.relevance`: :func:`relevant_eigenspace`, the paired t-test per
  delta over trained instances (7.4.1);
- :mod:`~layerscope.projection.records`: sweeps as records of phase ``"projection"`` and back.

A run folder end to end (fit on the training split, evaluate on the test split, records,
figures) is :func:`layerscope.lab.project_run` and ``layerscope project RUN_DIR``.
"""

from layerscope.errors import ProjectionError
from layerscope.projection.evaluation import METRICS, evaluate, metric_name
from layerscope.projection.grids import GRIDS, resolve_deltas
from layerscope.projection.layers import (
    BASELINES,
    ConvPCA,
    LinearPCA,
    eigendecompose,
    random_directions,
)
from layerscope.projection.network import ProjectedNetwork, layer_seed, project
from layerscope.projection.records import PROJECTION_PHASE, read_sweep, sweep_records
from layerscope.projection.relevance import (
    RelevantEigenspace,
    TTest,
    paired_t_test,
    relevant_eigenspace,
    t_test,
)
from layerscope.projection.sweeps import k_column, layer_columns, sweep, sweep_metric

__all__ = [
    "BASELINES",
    "GRIDS",
    "METRICS",
    "PROJECTION_PHASE",
    "ConvPCA",
    "LinearPCA",
    "ProjectedNetwork",
    "ProjectionError",
    "RelevantEigenspace",
    "TTest",
    "eigendecompose",
    "evaluate",
    "k_column",
    "layer_columns",
    "layer_seed",
    "metric_name",
    "paired_t_test",
    "project",
    "random_directions",
    "read_sweep",
    "relevant_eigenspace",
    "resolve_deltas",
    "sweep",
    "sweep_metric",
    "sweep_records",
    "t_test",
]
