"""Representation similarity (SPEC C9): between two activation matrices, and layer by layer.

- :mod:`~layerscope.similarity.inputs`: checking and centring activation matrices;
- :mod:`~layerscope.similarity.canonical`: :func:`cca`, :func:`svcca`, :func:`pwcca`, and
  :func:`pairwise` (one of them over every pair of a list, each input prepared once);
- :mod:`~layerscope.similarity.whitening`: the d x d part of the CCA family;
- :mod:`~layerscope.similarity.alignment`: :func:`cka` and the streaming :class:`MinibatchCKA`
  (unbiased by default, everywhere);
- :mod:`~layerscope.similarity.measures`: the registry :data:`MEASURES`;
- :mod:`~layerscope.similarity.layers`: :func:`layer_similarity` (every layer of one model
  against every layer of another) and :func:`similarity_over_epochs`;
  :mod:`~layerscope.similarity.gathered` holds their rows for the CCA family.
"""

from layerscope.errors import (
    DegenerateInputError,
    FewSamplesWarning,
    SimilarityInputError,
    TooFewSamplesError,
    UndefinedSimilarityWarning,
)
from layerscope.similarity.alignment import MinibatchCKA, cka
from layerscope.similarity.canonical import (
    SAMPLE_RATIO_WARNING,
    CCAResult,
    cca,
    pairwise,
    pwcca,
    svcca,
)
from layerscope.similarity.inputs import activation_matrix
from layerscope.similarity.layers import (
    SimilarityMatrix,
    SimilarityOverEpochs,
    layer_similarity,
    similarity_over_epochs,
)
from layerscope.similarity.measures import MEASURES, SimilarityMeasure

__all__ = [
    "MEASURES",
    "SAMPLE_RATIO_WARNING",
    "CCAResult",
    "DegenerateInputError",
    "FewSamplesWarning",
    "MinibatchCKA",
    "SimilarityInputError",
    "SimilarityMatrix",
    "SimilarityMeasure",
    "SimilarityOverEpochs",
    "TooFewSamplesError",
    "UndefinedSimilarityWarning",
    "activation_matrix",
    "cca",
    "cka",
    "layer_similarity",
    "pairwise",
    "pwcca",
    "similarity_over_epochs",
    "svcca",
]
