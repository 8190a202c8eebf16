"""layerscope: what happens inside every layer of a PyTorch network while it trains.

The public API is small; everything else lives in subpackages:

- :mod:`layerscope.stats`: streaming covariance and spectrum statistics (pure numerics).
- :mod:`layerscope.tracking`: layer selection and the :class:`Tracker`.
- :mod:`layerscope.store`: records, sinks, run folders and :func:`load`.
- :mod:`layerscope.report`: figures and HTML reports.
"""

from importlib.metadata import PackageNotFoundError, version

from layerscope import stats
from layerscope.stats import StreamingCovariance, compute_statistics
from layerscope.store import load
from layerscope.tracking import LayerInfo, Tracker, analyze

try:
    __version__ = version("layerscope")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

__all__ = [
    "LayerInfo",
    "StreamingCovariance",
    "Tracker",
    "__version__",
    "analyze",
    "compute_statistics",
    "load",
    "stats",
]
