"""layerscope: what happens inside every layer of a PyTorch network while it trains.

The public API is small and imported on first use (``import layerscope`` itself loads neither
torch nor pandas); everything else lives in subpackages, one per capability, each importing only
from the floors below it:

- :mod:`layerscope.stats`: streaming covariance and spectrum statistics (pure numerics).
- :mod:`layerscope.store`: records, sinks, run-folder files and :func:`load`.
- :mod:`layerscope.tracking`: layer selection, hooks, the :class:`Tracker` and :func:`analyze`.
- :mod:`layerscope.similarity`: CCA, SVCCA, PWCCA and CKA, layer by layer.
- :mod:`layerscope.probes`: latent extraction and logistic-regression probes.
- :mod:`layerscope.architecture`: receptive fields, border layers, FLOPs, advice, truncation.
- :mod:`layerscope.projection`: PCA layers, projected networks, delta sweeps, relevant eigenspace.
- :mod:`layerscope.report`: figures and HTML reports.
- :mod:`layerscope.lab`: experiment configs, the trainer, run folders and their workflows.
- :mod:`layerscope.models`, :mod:`layerscope.datasets`: the model zoo and the data.
- :mod:`layerscope.errors`, :mod:`layerscope.registry`: errors and the one registry.

Example:
    >>> import layerscope as ls
    >>> "Tracker" in ls.__all__ and callable(ls.Tracker)
    True
"""

import importlib as _importlib
import typing as _typing
from importlib import metadata as _metadata

#: Public name -> the module that defines it.
_EXPORTS = {
    "ConvPCA": "layerscope.projection",
    "LayerInfo": "layerscope.tracking",
    "LinearPCA": "layerscope.projection",
    "LogisticProbe": "layerscope.probes",
    "ProbeSettings": "layerscope.probes",
    "ReceptiveField": "layerscope.architecture",
    "StreamingCovariance": "layerscope.stats",
    "Tracker": "layerscope.tracking",
    "TrackerOptions": "layerscope.tracking",
    "advise": "layerscope.architecture",
    "analyze": "layerscope.tracking",
    "cka": "layerscope.similarity",
    "compare_runs": "layerscope.lab",
    "compute_statistics": "layerscope.stats",
    "count_flops": "layerscope.architecture",
    "count_parameters": "layerscope.architecture",
    "create_model": "layerscope.models",
    "layer_similarity": "layerscope.similarity",
    "list_models": "layerscope.models",
    "load": "layerscope.store",
    "load_config": "layerscope.lab",
    "load_dataset": "layerscope.datasets",
    "load_run_model": "layerscope.lab",
    "probe_run": "layerscope.lab",
    "project": "layerscope.projection",
    "project_run": "layerscope.lab",
    "receptive_field": "layerscope.architecture",
    "run_experiment": "layerscope.lab",
    "show": "layerscope.report",
    "similarity_over_epochs": "layerscope.similarity",
    "train_probes": "layerscope.probes",
    "truncate": "layerscope.architecture",
    "write_report": "layerscope.report",
}

__all__ = sorted([*_EXPORTS, "__version__"])

try:
    __version__ = _metadata.version("layerscope")
except _metadata.PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"


def __getattr__(name: str) -> _typing.Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'layerscope' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return list(__all__)


if (
    _typing.TYPE_CHECKING
):  # for type checkers and IDEs; at run time __getattr__ imports on first use
    from layerscope.architecture import (
        ReceptiveField,
        advise,
        count_flops,
        count_parameters,
        receptive_field,
        truncate,
    )
    from layerscope.datasets import load_dataset
    from layerscope.lab import (
        compare_runs,
        load_config,
        load_run_model,
        probe_run,
        project_run,
        run_experiment,
    )
    from layerscope.models import create_model, list_models
    from layerscope.probes import LogisticProbe, ProbeSettings, train_probes
    from layerscope.projection import ConvPCA, LinearPCA, project
    from layerscope.report import write_report
    from layerscope.similarity import cka, layer_similarity, similarity_over_epochs
    from layerscope.stats import StreamingCovariance, compute_statistics
    from layerscope.store import load
    from layerscope.tracking import LayerInfo, Tracker, TrackerOptions, analyze
