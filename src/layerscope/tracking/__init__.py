"""Attachment and recording: which layers are recorded, how, and the Tracker (SPEC C3)."""

from layerscope.tracking.analyze import analyze
from layerscope.tracking.layers import (
    RECORDABLE_TYPES,
    LayerInfo,
    LayerSelectionError,
    describe_layers,
    features_view,
    select_layers,
)
from layerscope.tracking.tracker import Tracker
from layerscope.tracking.weights import WeightSnapshots

__all__ = [
    "RECORDABLE_TYPES",
    "LayerInfo",
    "LayerSelectionError",
    "Tracker",
    "WeightSnapshots",
    "analyze",
    "describe_layers",
    "features_view",
    "select_layers",
]
