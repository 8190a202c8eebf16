"""Weight dynamics (SPEC C8; WeightScale, seed 002; Sources of Redundancy, seed 003).

Pure analyses of weights, read from a model or from a run's records and checkpoints:

- :mod:`~layerscope.weights.rwc`: the layer x epoch relative-weight-change matrix and the
  outlier rule (WeightScale eq. 1, 2);
- :mod:`~layerscope.weights.clusters`: :class:`RWCClusters` (K-Means++ over RWC trajectories, k by
  silhouette, PCA plane) and primitive groups;
- :mod:`~layerscope.weights.units`: a layer's (units, inputs) matrix, removing units on a copy;
- :mod:`~layerscope.weights.pruning`: greedy pruning curves by norm, frame-potential
  contribution or at random (Heitmann figure 2);
- :mod:`~layerscope.weights.low_rank`: SVD residuals, the Kneedle elbow, W_k substituted
  into a copy (Heitmann figure 8);
- :mod:`~layerscope.weights.spectra` and :mod:`~layerscope.weights.heavy_tails`: weight
  spectra, the Marchenko-Pastur law and weightwatcher's heavy-tail metrics (figures 6-7);
- :mod:`~layerscope.weights.graphs`: weight-vector similarity graphs as node-link JSON and
  GraphML (figures 3-5);
- frame potential lives one floor down (:mod:`layerscope.stats.frame_potential`) because the
  Tracker records it every epoch.
"""

from layerscope.stats.frame_potential import frame_potential
from layerscope.weights.clusters import (
    PRIMITIVES,
    RWCClusters,
    cluster_by_primitive,
    primitive_groups,
)
from layerscope.weights.graphs import graph_layout, save_graph, weight_graph
from layerscope.weights.heavy_tails import (
    heavy_tail_metrics,
    marchenko_pastur_bounds,
    marchenko_pastur_density,
    power_law_fit,
)
from layerscope.weights.low_rank import (
    kneedle,
    low_rank_approximation,
    low_rank_residuals,
    low_rank_table,
)
from layerscope.weights.pruning import (
    CRITERIA,
    PAPER_NAMES,
    pruning_curves,
    pruning_order,
    pruning_summary,
)
from layerscope.weights.rwc import FORMULAS, clip_outliers, relative_weight_change, rwc_matrix
from layerscope.weights.spectra import CONV_MODES, LayerSpectrum, layer_spectrum, weight_spectra
from layerscope.weights.units import get_layer, layer_matrix, unit_layers

__all__ = [
    "CONV_MODES",
    "CRITERIA",
    "FORMULAS",
    "PAPER_NAMES",
    "PRIMITIVES",
    "LayerSpectrum",
    "RWCClusters",
    "clip_outliers",
    "cluster_by_primitive",
    "frame_potential",
    "get_layer",
    "graph_layout",
    "heavy_tail_metrics",
    "kneedle",
    "layer_matrix",
    "layer_spectrum",
    "low_rank_approximation",
    "low_rank_residuals",
    "low_rank_table",
    "marchenko_pastur_bounds",
    "marchenko_pastur_density",
    "power_law_fit",
    "primitive_groups",
    "pruning_curves",
    "pruning_order",
    "pruning_summary",
    "relative_weight_change",
    "rwc_matrix",
    "save_graph",
    "unit_layers",
    "weight_graph",
    "weight_spectra",
]
