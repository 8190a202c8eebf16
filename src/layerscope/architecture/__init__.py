"""What an architecture will do with an input size, before training (SPEC C7).

- :mod:`~layerscope.architecture.ops`, :mod:`~layerscope.architecture.tracing`: a model traced
  into the operations that shape receptive fields (torch.fx, or hooks where fx fails);
- :mod:`~layerscope.architecture.growth`: how receptive fields grow along those operations;
- :mod:`~layerscope.architecture.fields`: :class:`ReceptiveField` (r_min / r_max per layer,
  border layers) and :func:`receptive_field`;
- :mod:`~layerscope.architecture.truncation`: :func:`truncate` at the border layer;
- :mod:`~layerscope.architecture.complexity`: :func:`count_parameters`, :func:`count_flops`;
- :mod:`~layerscope.architecture.advice`: tail patterns, width advice, :func:`advise`.
"""

from layerscope.architecture.advice import (
    SEED_SWEET_SPOT,
    SWEET_SPOT,
    Advice,
    TailPattern,
    WidthAdvice,
    advise,
    find_tail,
    width_advice,
)
from layerscope.architecture.complexity import (
    FlopCount,
    ParameterCount,
    count_flops,
    count_parameters,
)
from layerscope.architecture.fields import (
    DownsamplingOption,
    LayerField,
    ReceptiveField,
    receptive_field,
)
from layerscope.architecture.tracing import trace
from layerscope.architecture.truncation import truncate
from layerscope.errors import ReceptiveFieldError, TraceError

__all__ = [
    "SEED_SWEET_SPOT",
    "SWEET_SPOT",
    "Advice",
    "DownsamplingOption",
    "FlopCount",
    "LayerField",
    "ParameterCount",
    "ReceptiveField",
    "ReceptiveFieldError",
    "TailPattern",
    "TraceError",
    "WidthAdvice",
    "advise",
    "count_flops",
    "count_parameters",
    "find_tail",
    "receptive_field",
    "trace",
    "truncate",
    "width_advice",
]
