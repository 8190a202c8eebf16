"""layerscope: what happens inside every layer of a PyTorch network while it trains.

The public API is small; everything else lives in subpackages:

- :mod:`layerscope.stats`: streaming covariance and spectrum statistics (pure numerics).
- :mod:`layerscope.tracking`: layer selection, the :class:`Tracker` and :func:`analyze`.
- :mod:`layerscope.store`: records, sinks, run folders and :func:`load`.
- :mod:`layerscope.analysis`: receptive fields, border layers, advice, complexity, and CCA,
  SVCCA, PWCCA and CKA similarity between representations, logistic-regression probes.
- :mod:`layerscope.report`: figures and HTML reports.
- :mod:`layerscope.models`, :mod:`layerscope.datasets`, :mod:`layerscope.lab`: experiments.
"""

from importlib.metadata import PackageNotFoundError, version

from layerscope import stats
from layerscope.analysis import (
    ReceptiveField,
    advise,
    cka,
    count_flops,
    count_parameters,
    layer_similarity,
    receptive_field,
    similarity_over_epochs,
    truncate,
)
from layerscope.analysis.probe_solvers import LogisticProbe
from layerscope.analysis.probes import ProbeSettings, probe_run, train_probes
from layerscope.datasets import load_dataset
from layerscope.lab.config import load_config
from layerscope.models import create_model, list_models
from layerscope.stats import StreamingCovariance, compute_statistics
from layerscope.store import load
from layerscope.tracking import LayerInfo, Tracker, analyze

try:
    __version__ = version("layerscope")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

__all__ = [
    "LayerInfo",
    "LogisticProbe",
    "ProbeSettings",
    "ReceptiveField",
    "StreamingCovariance",
    "Tracker",
    "__version__",
    "advise",
    "analyze",
    "cka",
    "compute_statistics",
    "count_flops",
    "count_parameters",
    "create_model",
    "layer_similarity",
    "list_models",
    "load",
    "load_config",
    "load_dataset",
    "probe_run",
    "receptive_field",
    "similarity_over_epochs",
    "stats",
    "train_probes",
    "truncate",
]
