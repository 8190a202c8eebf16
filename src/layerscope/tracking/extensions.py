"""What a Tracker can be extended with, without editing it: the factory of each layer's
accumulator, and callbacks told about the records it wrote."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from layerscope.stats.base import StreamingStatistic
from layerscope.stats.covariance import StreamingCovariance
from layerscope.stats.spectrum import SpectrumStatistics, compute_statistics
from layerscope.store.records import Record
from layerscope.tracking.options import TrackerOptions

__all__ = ["StatisticFactory", "TrackerCallback", "covariance_statistic", "layer_values"]

#: ``factory(num_features, name, options)``: the accumulator of one layer and phase; its
#: ``compute()`` must return a :class:`~layerscope.stats.CovarianceResult`.
StatisticFactory = Callable[[int, str, TrackerOptions], StreamingStatistic]


def covariance_statistic(num_features: int, name: str, options: TrackerOptions):
    """The default accumulator: a :class:`StreamingCovariance` configured from the options.

    Example:
        >>> covariance_statistic(4, "fc", TrackerOptions(precision="mixed")).precision
        'mixed'
    """
    return StreamingCovariance(
        num_features,
        precision=options.precision,
        device=options.device,
        max_samples=options.max_samples,
        max_features=options.max_features,
        name=name,
    )


class TrackerCallback(Protocol):
    """Told about the records a Tracker wrote: at every epoch end, and once more at close.
    ``tracker`` is the :class:`~layerscope.tracking.Tracker` (its ``run_dir``, ``layers``,
    ``epoch``, ...)."""

    def on_epoch_end(self, tracker: Any, records: Sequence[Record]) -> None:
        """After ``end_epoch()``; ``records``: those written since the last call."""

    def on_close(self, tracker: Any, records: Sequence[Record]) -> None:
        """At ``close()``; ``records``: those written since the last epoch end (often none)."""


def layer_values(
    accumulator: StreamingStatistic, options: TrackerOptions, where: str
) -> tuple[dict[str, float], SpectrumStatistics]:
    """The records' values of one layer's phase: ``samples``, every statistic of
    ``options.statistics`` and the ``zero_variance`` flag; warnings name ``where``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = accumulator.compute()
    for warning in caught:
        warnings.warn(f"{where}: {warning.message}", warning.category, stacklevel=5)
    stats = compute_statistics(result, options.statistics, delta=options.delta)
    values = {"samples": float(result.count)}
    if stats.reason:
        warnings.warn(f"{where}: no statistics ({stats.reason})", RuntimeWarning, stacklevel=5)
        return values, stats
    values |= {statistic: float(value) for statistic, value in stats.values.items()}
    if "zero_variance" in stats.flags:
        values["zero_variance"] = 1.0
    return values, stats
