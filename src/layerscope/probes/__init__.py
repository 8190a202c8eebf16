"""Logistic-regression probes (SPEC C6): latents on disk, solvers, probe training, positions.

- :mod:`~layerscope.probes.reduction`: how a layer's output becomes one vector per sample;
- :mod:`~layerscope.probes.manifest` and :mod:`~layerscope.probes.latents`: extraction to
  ``.npy`` files with a manifest, :func:`extract_latents`;
- :mod:`~layerscope.probes.solvers`, :mod:`~layerscope.probes.lbfgs`: the registry
  :data:`PROBE_SOLVERS` (torch L-BFGS by default, scikit-learn's SAGA and lbfgs);
- :mod:`~layerscope.probes.estimator`: :class:`LogisticProbe`;
- :mod:`~layerscope.probes.results`: :class:`ProbeSettings`, :class:`ProbeResults`, records;
- :mod:`~layerscope.probes.training`: :func:`train_probes` (parallel, cached);
- :mod:`~layerscope.probes.positions`: position probes as heatmap data.

Probing a trained run folder end to end is :func:`layerscope.lab.probe_run`.
"""

from layerscope.errors import LatentsError, ProbeSettingsError
from layerscope.probes.estimator import LogisticProbe, feature_moments, probe_objective
from layerscope.probes.latents import extract_latents
from layerscope.probes.lbfgs import lbfgs_solver
from layerscope.probes.manifest import LatentManifest, manifest_path, match_layers
from layerscope.probes.positions import (
    PositionMap,
    load_position_maps,
    position_maps,
    save_position_maps,
)
from layerscope.probes.reduction import DEFAULT_REDUCTION, Reduction, reduce_output
from layerscope.probes.results import (
    PROBE_PHASE,
    ProbeResult,
    ProbeResults,
    ProbeSettings,
    probe_phase,
    write_probe_records,
)
from layerscope.probes.solvers import PROBE_SOLVERS, SolverResult, list_solvers
from layerscope.probes.training import limit_threads, train_probes

__all__ = [
    "DEFAULT_REDUCTION",
    "PROBE_PHASE",
    "PROBE_SOLVERS",
    "LatentManifest",
    "LatentsError",
    "LogisticProbe",
    "PositionMap",
    "ProbeResult",
    "ProbeResults",
    "ProbeSettings",
    "ProbeSettingsError",
    "Reduction",
    "SolverResult",
    "extract_latents",
    "feature_moments",
    "lbfgs_solver",
    "limit_threads",
    "list_solvers",
    "load_position_maps",
    "manifest_path",
    "match_layers",
    "position_maps",
    "probe_objective",
    "probe_phase",
    "reduce_output",
    "save_position_maps",
    "train_probes",
    "write_probe_records",
]
