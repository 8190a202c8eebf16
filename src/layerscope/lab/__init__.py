"""Workflows for experiments and run folders (SPEC C10).

- configs: :mod:`~layerscope.lab.config` (schema, grids, run folders),
  :mod:`~layerscope.lab.config_check` (the schema machinery), :mod:`~layerscope.lab.config_files`
  (JSON / TOML / YAML), :mod:`~layerscope.lab.config_resolve` (registry lookups, run ids);
- training: :mod:`~layerscope.lab.trainer`, :mod:`~layerscope.lab.checkpoint`,
  :mod:`~layerscope.lab.optimizers` and :mod:`~layerscope.lab.metrics` (registered on import);
- run folders: :mod:`~layerscope.lab.runs` (config, checkpoint, model of a run),
  :mod:`~layerscope.lab.probing` (:func:`probe_run`), :mod:`~layerscope.lab.compare`
  (:func:`compare_runs`), :mod:`~layerscope.lab.similarity_epochs` (each layer against its
  last epoch), :mod:`~layerscope.lab.projecting` (:func:`project_run`, :func:`project_runs`);
- :mod:`~layerscope.lab.experiment`: train -> model size -> probes -> report for one run;
  :mod:`~layerscope.lab.grid`: every run of a config (:func:`run_experiment`) or the probes of
  many run folders on an executor (:mod:`~layerscope.lab.executors`, :mod:`~layerscope.lab.jobs`),
  after :mod:`~layerscope.lab.preflight` checks.
"""

from layerscope.lab import metrics, optimizers
from layerscope.lab.compare import RunPair, compare_runs
from layerscope.lab.config import RunConfig, describe_runs, load_config, run_dir
from layerscope.lab.experiment import record_model_size, resume_run, run_one
from layerscope.lab.grid import run_experiment
from layerscope.lab.optimizers import step_schedule
from layerscope.lab.probing import probe_run
from layerscope.lab.projecting import project_run, project_runs
from layerscope.lab.runs import (
    load_run_model,
    read_run_config,
    run_checkpoint,
    train_split_without_augmentation,
)
from layerscope.lab.similarity_epochs import similarity_over_epochs_run
from layerscope.lab.trainer import RunResult, train_run
from layerscope.registry import DATASETS, METRICS, MODELS, OPTIMIZERS, Registry

__all__ = [
    "DATASETS",
    "METRICS",
    "MODELS",
    "OPTIMIZERS",
    "Registry",
    "RunConfig",
    "RunPair",
    "RunResult",
    "compare_runs",
    "describe_runs",
    "load_config",
    "load_run_model",
    "metrics",
    "optimizers",
    "probe_run",
    "project_run",
    "project_runs",
    "read_run_config",
    "record_model_size",
    "resume_run",
    "run_checkpoint",
    "run_dir",
    "run_experiment",
    "run_one",
    "similarity_over_epochs_run",
    "step_schedule",
    "train_run",
    "train_split_without_augmentation",
]
