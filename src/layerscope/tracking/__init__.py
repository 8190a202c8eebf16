"""Attachment and recording: which layers are recorded, how, and the Tracker (SPEC C3).

- :mod:`~layerscope.tracking.layers`: :class:`LayerInfo`, layer selection, and which axis of a
  module's output holds its features;
- :mod:`~layerscope.tracking.hooks`: :class:`Hooks`, the one way hooks are registered and removed;
- :mod:`~layerscope.tracking.options`: :class:`TrackerOptions`, every option spelled once;
- :mod:`~layerscope.tracking.phases`: which phase and epoch a batch belongs to;
- :mod:`~layerscope.tracking.tracker`: the :class:`Tracker`;
- :mod:`~layerscope.tracking.distributed`: the Tracker under torch.distributed (merge, rank 0);
- :mod:`~layerscope.tracking.weights`: per-epoch weight snapshots;
- :mod:`~layerscope.tracking.analysis`: :func:`analyze`, one pass of a trained model;
- :mod:`~layerscope.tracking.modes`: evaluation mode that restores every module's own flag.
"""

from layerscope.errors import LayerSelectionError
from layerscope.tracking.analysis import analyze
from layerscope.tracking.extensions import TrackerCallback, covariance_statistic
from layerscope.tracking.hooks import Hooks
from layerscope.tracking.layers import (
    RECORDABLE_TYPES,
    LayerInfo,
    channels_first,
    describe_layers,
    features_tensor,
    select_layers,
)
from layerscope.tracking.options import TrackerOptions
from layerscope.tracking.tracker import Tracker
from layerscope.tracking.weights import WeightSnapshots

__all__ = [
    "RECORDABLE_TYPES",
    "Hooks",
    "LayerInfo",
    "LayerSelectionError",
    "Tracker",
    "TrackerCallback",
    "TrackerOptions",
    "WeightSnapshots",
    "analyze",
    "channels_first",
    "covariance_statistic",
    "describe_layers",
    "features_tensor",
    "select_layers",
]
