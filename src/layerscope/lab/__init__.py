"""Workflows for experiments: registries, configs, the trainer and run folders (SPEC C10).

Importing this package fills the optimizer and metric registries.
"""

from layerscope.lab import metrics, optimizers
from layerscope.lab.config import RunConfig, describe_runs, load_config, run_dir
from layerscope.lab.optimizers import step_schedule
from layerscope.registry import DATASETS, METRICS, MODELS, OPTIMIZERS, Registry

__all__ = [
    "DATASETS",
    "METRICS",
    "MODELS",
    "OPTIMIZERS",
    "Registry",
    "RunConfig",
    "describe_runs",
    "load_config",
    "metrics",
    "optimizers",
    "run_dir",
    "step_schedule",
]
