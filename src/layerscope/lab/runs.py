"""A trained run folder as objects: its config, its newest checkpoint, and the model and data
they rebuild.

The workflows that start from a run folder (probes, ``layerscope similarity RUN_A RUN_B``,
reports) share these: the model is built from ``config.json`` with
:func:`~layerscope.lab.trainer.build_model` and loaded from the newest checkpoint that loads
(:func:`~layerscope.lab.checkpoint.latest_checkpoint`), the data from the config.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from torch import nn

from layerscope.datasets import load_dataset
from layerscope.datasets.base import DatasetSplits, ImageDataset
from layerscope.errors import RunFolderError
from layerscope.lab.checkpoint import Checkpoint, latest_checkpoint
from layerscope.lab.config import RunConfig, resolve_device
from layerscope.lab.trainer import CONFIG_FILE, build_model

__all__ = [
    "load_run_model",
    "read_run_config",
    "run_checkpoint",
    "train_split_without_augmentation",
]


def read_run_config(run_dir: str | os.PathLike) -> RunConfig:
    """The :class:`~layerscope.lab.config.RunConfig` a run folder was trained with.

    Raises :class:`~layerscope.errors.RunFolderError` (a FileNotFoundError) when the folder has
    no ``config.json``.

    Example:
        >>> import tempfile
        >>> read_run_config(tempfile.mkdtemp())
        Traceback (most recent call last):
        ...
        layerscope.errors.RunFolderError: ... is not a run folder: it has no config.json ...
    """
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise RunFolderError(
            f"{run_dir} is not a run folder: it has no {CONFIG_FILE} (run folders are written by "
            f"`layerscope run CONFIG`)"
        )
    return RunConfig.from_dict(json.loads(path.read_text(encoding="utf-8")), source=str(path))


def run_checkpoint(run_dir: str | os.PathLike) -> Checkpoint:
    """The newest checkpoint of a run folder that loads (on the CPU).

    Raises :class:`~layerscope.errors.RunFolderError` when there is none.

    Example:
        >>> import tempfile
        >>> run_checkpoint(tempfile.mkdtemp())
        Traceback (most recent call last):
        ...
        layerscope.errors.RunFolderError: ... has no usable checkpoint in checkpoints/; train the run first ...
    """
    checkpoint = latest_checkpoint(Path(run_dir) / "checkpoints", map_location="cpu")
    if checkpoint is None:
        raise RunFolderError(
            f"{run_dir} has no usable checkpoint in checkpoints/; train the run first "
            f"(`layerscope run` or `layerscope resume {run_dir}`)"
        )
    return checkpoint


def load_run_model(
    run_dir: str | os.PathLike,
    *,
    device=None,
    checkpoint: Checkpoint | None = None,
) -> tuple[nn.Module, DatasetSplits, RunConfig]:
    """The trained model of a run folder, its data and its config.

    The model is built from ``config.json``, loaded from ``checkpoint`` (default: the newest
    that loads, :func:`run_checkpoint`) and moved to ``device`` (a torch device or a config
    device name such as ``"auto"``; default: the config's); it is
    left in training mode, as built. The data is the config's dataset, with the training split
    as the trainer saw it (see :func:`train_split_without_augmentation`).

    Example (not run here: it needs a trained run)::

        model, data, cfg = load_run_model("logs/vgg11/digits/32/r0", device="cpu")
        model.eval()(data.test[0][0][None]).argmax(1)
    """
    cfg = read_run_config(run_dir)
    checkpoint = checkpoint if checkpoint is not None else run_checkpoint(run_dir)
    data = load_dataset(cfg.dataset, resolution=cfg.resolution, seed=cfg.seed, **cfg.dataset_kwargs)
    model = build_model(cfg, data.num_classes, data.in_channels)
    model.load_state_dict(checkpoint.state["model"])
    if device is None or isinstance(device, str):
        device = resolve_device(device or cfg.device)
    model.to(device)
    return model, data, cfg


def train_split_without_augmentation(data: DatasetSplits):
    """The training split with the test split's pipeline: no crop, no flip (canvas kept), for
    analyses that must see the training images as the model would at test time.

    A dataset not built from layerscope's ImageDataset is returned as it comes, with a warning.

    Example:
        >>> data = load_dataset("digits", resolution=8)
        >>> plain = train_split_without_augmentation(data)
        >>> len(plain) == len(data.train), plain.pipeline is data.test.pipeline
        (True, True)
    """
    train = data.train
    if isinstance(train, ImageDataset) and isinstance(data.test, ImageDataset):
        return ImageDataset(train.source, data.test.pipeline, seed=train.seed, split="train")
    warnings.warn(
        f"dataset {data.name!r} is not built from layerscope's ImageDataset; its training split "
        f"is extracted as it comes (with any augmentation it applies)",
        RuntimeWarning,
        stacklevel=2,
    )
    return train
