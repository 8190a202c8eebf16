"""Post-hoc analyses: receptive fields, patterns, complexity, probes, weight dynamics, similarity."""

from layerscope.analysis.complexity import count_flops, count_parameters
from layerscope.analysis.patterns import advise, find_tail, width_advice
from layerscope.analysis.receptive_field import ReceptiveField, receptive_field, truncate

__all__ = [
    "ReceptiveField",
    "advise",
    "count_flops",
    "count_parameters",
    "find_tail",
    "receptive_field",
    "truncate",
    "width_advice",
]
