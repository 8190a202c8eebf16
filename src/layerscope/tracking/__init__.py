"""Attachment and recording: which layers are recorded, how, and the Tracker (SPEC C3)."""

from layerscope.tracking.layers import (
    RECORDABLE_TYPES,
    LayerInfo,
    LayerSelectionError,
    describe_layers,
    features_view,
    select_layers,
)

__all__ = [
    "RECORDABLE_TYPES",
    "LayerInfo",
    "LayerSelectionError",
    "describe_layers",
    "features_view",
    "select_layers",
]
