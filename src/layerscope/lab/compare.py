"""Comparing two trained run folders layer by layer (SPEC C9): ``layerscope similarity RUN_A RUN_B``.

Each model is rebuilt from its ``config.json`` and newest checkpoint
(:func:`~layerscope.lab.runs.load_run_model`), and
:func:`~layerscope.similarity.layer_similarity` compares every recorded layer of A with every one
of B on a split of run A's data (the layers the runs' trackers recorded).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from torch import nn
from torch.utils.data import DataLoader

from layerscope.errors import OptionError
from layerscope.lab.config import RunConfig
from layerscope.lab.runs import load_run_model, train_split_without_augmentation
from layerscope.similarity.layers import SimilarityMatrix, layer_similarity

__all__ = ["RunPair", "compare_runs"]

SPLITS = ("test", "train")


@dataclass
class RunPair:
    """Two trained runs, their models loaded, and the data they are compared on.

    Build one with :meth:`open`; :meth:`similarity` then computes a measure without loading the
    models again (the CLI compares with several measures this way).
    """

    model_a: nn.Module
    model_b: nn.Module
    config_a: RunConfig
    config_b: RunConfig
    loader: DataLoader
    split: str

    @classmethod
    def open(
        cls,
        run_a: str | os.PathLike,
        run_b: str | os.PathLike,
        *,
        split: str = "test",
        batch_size: int | None = None,
        device: Any = None,
    ) -> RunPair:
        """Load both runs' models (on ``device``, default run A's config) and run A's ``split``."""
        if split not in SPLITS:
            raise OptionError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        model_a, data, config_a = load_run_model(run_a, device=device)
        model_b, _, config_b = load_run_model(run_b, device=device)
        dataset = train_split_without_augmentation(data) if split == "train" else data.test
        loader = DataLoader(dataset, batch_size=batch_size or config_a.batch_size, shuffle=False)
        return cls(model_a, model_b, config_a, config_b, loader, split)

    def similarity(
        self,
        measure: str = "cka",
        *,
        spatial: str | None = None,
        max_batches: int | None = None,
        variance: float = 0.99,
    ) -> SimilarityMatrix:
        """Every recorded layer of run A against every one of run B (``variance``: SVCCA's)."""
        tracker = self.config_a.tracker
        return layer_similarity(
            self.model_a,
            self.model_b,
            self.loader,
            measure=measure,
            include=tracker.include,
            exclude=tracker.exclude or None,
            spatial=spatial,
            max_batches=max_batches,
            options={"variance": variance} if measure == "svcca" else None,
        )


def compare_runs(
    run_a: str | os.PathLike,
    run_b: str | os.PathLike,
    measure: str = "cka",
    *,
    split: str = "test",
    spatial: str | None = None,
    max_batches: int | None = None,
    batch_size: int | None = None,
    device: Any = None,
    variance: float = 0.99,
) -> SimilarityMatrix:
    """Layer x layer similarity of two trained run folders on run A's ``split``.

    Args:
        run_a, run_b: run folders written by ``layerscope run`` (a folder against itself is fine).
        measure: ``"cka"`` (minibatch unbiased CKA, bounded memory), ``"cca"``, ``"svcca"``,
            ``"pwcca"``.
        split: ``"test"`` (default) or ``"train"`` (without augmentation) of run A's data.
        spatial, max_batches: as in :func:`~layerscope.similarity.layer_similarity`.
        batch_size: default: run A's; device: default: run A's config.
        variance: SVCCA's variance fraction.

    Example (not run here: it needs two trained runs)::

        matrix = compare_runs("logs/vgg11/digits/32/a", "logs/vgg11/digits/32/b")
        matrix.to_frame().head()
    """
    pair = RunPair.open(run_a, run_b, split=split, batch_size=batch_size, device=device)
    return pair.similarity(measure, spatial=spatial, max_batches=max_batches, variance=variance)
