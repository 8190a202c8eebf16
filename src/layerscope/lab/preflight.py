"""What can be checked before any run of a grid starts, beyond the config's keys (SPEC C13).

:func:`check_forward` builds each distinct model of the grid for its data and passes one small
batch of zeros through it (in eval mode, without gradients): a model whose feature maps vanish
at the configured resolution fails here, in a second, with the run named, instead of in the
middle of the grid with a long torch traceback.

Example:
    >>> from layerscope.lab.config import load_config
    >>> check_forward(load_config({"model": "vgg11", "resolution": 4, "width": 0.25}))
    Traceback (most recent call last):
    ...
    layerscope.errors.ConfigError: run 1 of 1 (logs/vgg11/digits/4/...): model 'vgg11' fails on a zero batch of shape (2, 1, 4, 4) at resolution=4 ...
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence

import torch

from layerscope.datasets import load_dataset
from layerscope.errors import ConfigError, DatasetNotFoundError
from layerscope.lab.config import RunConfig, run_dir
from layerscope.lab.trainer import build_model
from layerscope.registry import MODELS

__all__ = ["check_forward"]


def _shape_key(cfg: RunConfig) -> str:
    parts = [cfg.model, cfg.width, cfg.model_kwargs, cfg.dataset, cfg.resolution,
             cfg.dataset_kwargs]  # fmt: skip
    return json.dumps(parts, sort_keys=True, default=str)


def check_forward(configs: Sequence[RunConfig], *, skip_missing_data: bool = False) -> None:
    """One forward pass of a (2, C, H, W) zero batch per distinct model and data shape.

    ``skip_missing_data``: runs whose dataset files are absent are not checked (``--dry-run``,
    which reports the missing data itself) instead of raising DatasetNotFoundError.

    Raises:
        ConfigError: naming the run, the model, the shape and the fix, when the pass fails.
        Dataset errors (e.g. missing files) come as they are, before any run starts.
    """
    seen: set[str] = set()
    for index, cfg in enumerate(configs, start=1):
        key = _shape_key(cfg)
        if key in seen:
            continue
        seen.add(key)
        try:
            data = load_dataset(cfg.dataset, resolution=cfg.resolution, seed=cfg.seed,
                                **cfg.dataset_kwargs)  # fmt: skip
        except DatasetNotFoundError:
            if skip_missing_data:
                continue
            raise
        try:
            model = build_model(cfg, data.num_classes, data.in_channels).eval()
        except Exception as error:
            raise ConfigError(
                f"run {index} of {len(configs)} ({run_dir(cfg).as_posix()}): model "
                f"{cfg.model!r} cannot be built with model_kwargs={cfg.model_kwargs!r} "
                f"({type(error).__name__}: {error}); check model_kwargs against the model's "
                f"parameters (a list for a sequence parameter, hidden = [64, 32], is one value; "
                f"a list of lists sweeps it)"
            ) from error
        size = data.input_size
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        zeros = torch.zeros(2, data.in_channels, height, width)
        try:
            with torch.no_grad():
                model(zeros)
        except Exception as error:
            first = (str(error) or type(error).__name__).strip().splitlines()[0]
            raise ConfigError(
                f"run {index} of {len(configs)} ({run_dir(cfg).as_posix()}): model "
                f"{cfg.model!r} fails on a zero batch of shape {tuple(zeros.shape)} at "
                f"resolution={cfg.resolution} ({type(error).__name__}: {first}). {_hint(cfg)}"
            ) from error


def _hint(cfg: RunConfig) -> str:
    """The fix: a model built for one input size is told the size; else the maps vanish."""
    takes = inspect.signature(MODELS.get(cfg.model)).parameters
    if "input_size" in takes and "input_size" not in cfg.model_kwargs:
        return (
            f"The model is built for one input size: give it the data's, model_kwargs = "
            f"{{input_size = {cfg.resolution}}}."
        )
    return (
        f"Its feature maps probably vanish at this size: raise `resolution` in the config, or "
        f"pick a model that keeps them (`layerscope rf {cfg.model} --input {cfg.resolution}` "
        f"shows each layer's size)."
    )
