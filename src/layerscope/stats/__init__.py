"""Pure numerics: streaming statistics of layer outputs and the statistics of their spectra.

No hooks and no files here; everything works on tensors and arrays (SPEC C1, C2).

- :mod:`~layerscope.stats.base`: :class:`StreamingStatistic`, the contract (declared
  reductions drive merge, sync, reset, state dicts); :mod:`~layerscope.stats.moments`: Chan's
  pairwise update, the one place it is written;
- :mod:`~layerscope.stats.covariance`: :class:`StreamingCovariance`;
- :mod:`~layerscope.stats.spectrum`: saturation, intrinsic dimension and the other statistics of
  one eigendecomposition, registered in :data:`STATISTICS`;
- :mod:`~layerscope.stats.samples`: tensor layouts to (samples, features) matrices.
"""

from layerscope.stats.base import StreamingStatistic
from layerscope.stats.covariance import (
    DEFAULT_MAX_FEATURES,
    CovarianceResult,
    StreamingCovariance,
    release_workspaces,
)
from layerscope.stats.moments import chan_merge, chan_sync
from layerscope.stats.samples import downsample, feature_map_matrix, to_samples
from layerscope.stats.spectrum import (
    DEFAULT_DELTA,
    DEFAULT_STATISTICS,
    STATISTICS,
    Spectrum,
    SpectrumStatistics,
    compute_statistics,
    effective_rank,
    embed,
    intrinsic_dimension,
    list_statistics,
    log_determinant,
    participation_ratio,
    register_statistic,
    saturation,
)

__all__ = [
    "DEFAULT_DELTA",
    "DEFAULT_MAX_FEATURES",
    "DEFAULT_STATISTICS",
    "STATISTICS",
    "CovarianceResult",
    "Spectrum",
    "SpectrumStatistics",
    "StreamingCovariance",
    "StreamingStatistic",
    "chan_merge",
    "chan_sync",
    "compute_statistics",
    "downsample",
    "effective_rank",
    "embed",
    "feature_map_matrix",
    "intrinsic_dimension",
    "list_statistics",
    "log_determinant",
    "participation_ratio",
    "register_statistic",
    "release_workspaces",
    "saturation",
    "to_samples",
]
