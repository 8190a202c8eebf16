"""Weight dynamics (SPEC C8; WeightScale, seed 002; Sources of Redundancy, seed 003).

Pure analyses of weights, read from a model or from a run's records and checkpoints:

- :mod:`~layerscope.weights.rwc`: the layer x epoch relative-weight-change matrix and the
  outlier rule (WeightScale eq. 1, 2);
- :mod:`~layerscope.weights.clusters`: :class:`RWCClusters` (K-Means++ over RWC trajectories, k by
  silhouette, PCA plane) and primitive groups;
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
from layerscope.weights.rwc import FORMULAS, clip_outliers, relative_weight_change, rwc_matrix

__all__ = [
    "FORMULAS",
    "PRIMITIVES",
    "RWCClusters",
    "clip_outliers",
    "cluster_by_primitive",
    "frame_potential",
    "primitive_groups",
    "relative_weight_change",
    "rwc_matrix",
]
