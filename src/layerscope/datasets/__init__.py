"""Datasets for experiments (SPEC C11), registered in :data:`layerscope.registry.DATASETS`.

- ``digits``: scikit-learn's embedded 8x8 digits, the default; nothing to download.
- ``synthetic``: random-prototype images with controllable difficulty.
- ``cifar10`` / ``cifar100``: the python-pickle folders.
- ``mnist`` / ``fashion_mnist``: IDX files, gzipped or not.
- ``folder``: one subfolder per class.

``load_dataset(name, **options)`` returns a frozen :class:`DatasetSplits` (train and test
map-style datasets yielding (C x H x W float image, int label), ``num_classes``,
``in_channels``, ``input_size``, class names, normalisation). Transforms (resize, random canvas
placement of dissertation 9.2, random crop with padding, horizontal flip, normalisation) are
torch ops in :mod:`layerscope.datasets.transforms`; augmentation is seeded per sample and epoch.
"""

from layerscope.datasets import cifar, digits, folder, mnist, synthetic
from layerscope.datasets.base import (
    ArraySource,
    DatasetSplits,
    ImageDataset,
    build_splits,
    channel_stats,
    data_root,
    load_dataset,
    stratified_split,
)
from layerscope.datasets.cifar import read_cifar_batch
from layerscope.datasets.mnist import read_idx
from layerscope.datasets.transforms import Pipeline, SampleRandom

__all__ = [
    "ArraySource",
    "DatasetSplits",
    "ImageDataset",
    "Pipeline",
    "SampleRandom",
    "build_splits",
    "channel_stats",
    "cifar",
    "data_root",
    "digits",
    "folder",
    "load_dataset",
    "mnist",
    "read_cifar_batch",
    "read_idx",
    "stratified_split",
    "synthetic",
]
