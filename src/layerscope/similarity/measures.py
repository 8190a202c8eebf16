"""The similarity measures by name, for the layer-by-layer helpers, the CLI and the figures.

Each entry of :data:`MEASURES` says how the measure is computed and shown: ``"cka"`` streams
(:class:`~layerscope.similarity.alignment.MinibatchCKA`, bounded memory) and flattens feature maps by
default; ``"cca"``, ``"svcca"`` and ``"pwcca"`` need all samples at once and average-pool feature
maps by default (they need many more samples than features). Add a measure with
``MEASURES.add(name, SimilarityMeasure(function, ...))``: ``function(x, y, **options)`` returns
a number (or an object ``float()`` accepts) for two (n, d) matrices.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from layerscope.registry import Registry
from layerscope.similarity.alignment import cka
from layerscope.similarity.canonical import cca, pairwise, pwcca, svcca

__all__ = ["MEASURES", "SimilarityMeasure"]


@dataclass(frozen=True)
class SimilarityMeasure:
    """A registered measure; calling it compares two activation matrices.

    Attributes:
        function: ``function(x, y, **options)`` -> a number, or an object with ``float()``.
        label: how figures name it (``"linear CKA"``).
        default_spatial: ``"flatten"``, ``"pool"`` or ``"positions"`` for feature maps.
        streaming: computed batch by batch in bounded memory (CKA) rather than on all samples.
        description: one line for ``layerscope list similarity``.
        pairwise: optional ``pairwise(xs, ys, **options)`` yielding ``(i, j, value or the
            SimilarityInputError of that pair)`` for every pair, each input's own work done
            once (:func:`~layerscope.similarity.canonical.pairwise`); the layer-by-layer
            helpers use it when present, else call ``function`` pair by pair.
    """

    function: Callable[..., object]
    label: str
    default_spatial: str
    streaming: bool = False
    description: str = ""
    pairwise: Callable[..., object] | None = None

    def __call__(self, x, y, **options) -> float:
        return float(self.function(x, y, **options))


#: Similarity measures by name.
MEASURES: Registry[SimilarityMeasure] = Registry("similarity measure", "layerscope.similarity")
MEASURES.add("cka", SimilarityMeasure(
    cka, "linear CKA", "flatten", streaming=True,
    description="linear CKA, unbiased HSIC (Kornblith et al. 2019; Nguyen et al. 2021)",
))  # fmt: skip
MEASURES.add("cca", SimilarityMeasure(
    cca, "mean CCA", "pool", description="mean of all canonical correlations (Raghu et al. 2017)",
    pairwise=functools.partial(pairwise, "cca"),
))  # fmt: skip
MEASURES.add("svcca", SimilarityMeasure(
    svcca, "SVCCA", "pool", description="CCA of the top singular directions (Raghu et al. 2017)",
    pairwise=functools.partial(pairwise, "svcca"),
))  # fmt: skip
MEASURES.add("pwcca", SimilarityMeasure(
    pwcca, "PWCCA", "pool", description="projection-weighted CCA (Morcos et al. 2018)",
    pairwise=functools.partial(pairwise, "pwcca"),
))  # fmt: skip
