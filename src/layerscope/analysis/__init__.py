"""Post-hoc analyses: receptive fields, patterns, complexity, probes, weight dynamics, similarity."""

from layerscope.analysis.complexity import count_flops, count_parameters
from layerscope.analysis.patterns import advise, find_tail, width_advice
from layerscope.analysis.receptive_field import ReceptiveField, receptive_field, truncate
from layerscope.analysis.similarity import MinibatchCKA, cca, cka, pwcca, svcca
from layerscope.analysis.similarity_models import layer_similarity, similarity_over_epochs

__all__ = [
    "MinibatchCKA",
    "ReceptiveField",
    "advise",
    "cca",
    "cka",
    "count_flops",
    "count_parameters",
    "find_tail",
    "layer_similarity",
    "pwcca",
    "receptive_field",
    "similarity_over_epochs",
    "svcca",
    "truncate",
    "width_advice",
]
