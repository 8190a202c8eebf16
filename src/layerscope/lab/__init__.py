"""Workflows for experiments: registries, configs, the trainer and run folders (SPEC C10)."""

from layerscope.lab.registry import DATASETS, METRICS, MODELS, OPTIMIZERS, Registry

__all__ = ["DATASETS", "METRICS", "MODELS", "OPTIMIZERS", "Registry"]
