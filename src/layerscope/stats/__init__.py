"""Pure numerics: streaming covariance of layer outputs and the statistics of its spectrum.

No hooks and no files here; everything works on tensors and arrays (SPEC C1, C2).
"""

from layerscope.stats.base import StreamingStatistic
from layerscope.stats.covariance import (
    DEFAULT_MAX_FEATURES,
    CovarianceResult,
    StreamingCovariance,
    release_workspaces,
)
from layerscope.stats.samples import channels_last_view, downsample, sequence_view, to_samples
from layerscope.stats.spectrum import (
    DEFAULT_DELTA,
    DEFAULT_STATISTICS,
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
    "CovarianceResult",
    "Spectrum",
    "SpectrumStatistics",
    "StreamingCovariance",
    "StreamingStatistic",
    "channels_last_view",
    "compute_statistics",
    "downsample",
    "effective_rank",
    "embed",
    "intrinsic_dimension",
    "list_statistics",
    "log_determinant",
    "participation_ratio",
    "register_statistic",
    "release_workspaces",
    "saturation",
    "sequence_view",
    "to_samples",
]
