"""Workflows for experiments: registries, configs, the trainer and run folders (SPEC C10)."""

from layerscope.lab.registry import Registry

__all__ = ["Registry"]
