"""layerscope: what happens inside every layer of a PyTorch network while it trains.

The public API is small; everything else lives in subpackages:

- :mod:`layerscope.stats`: streaming covariance and spectrum statistics (pure numerics).
"""

from importlib.metadata import PackageNotFoundError, version

from layerscope import stats
from layerscope.stats import StreamingCovariance, compute_statistics

try:
    __version__ = version("layerscope")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

__all__ = ["StreamingCovariance", "__version__", "compute_statistics", "stats"]
