"""Each layer's similarity to its final state over training, for a run folder (SPEC C9):
``layerscope similarity RUN_DIR --over-epochs``.

Raghu et al. (SVCCA, 2017, section 4.1) compare every layer at each epoch with the same layer at
the end of training and find that networks converge bottom up. Here the epochs are the run's
kept checkpoints (``checkpoints.keep = "all"`` keeps every one; the default keeps the last two),
the inputs are a split of the run's own data (test by default, training without augmentation
on request), the layers are those the run's Tracker recorded, and the measure is the minibatch
unbiased linear CKA (and SVCCA on request) of :func:`~layerscope.similarity.similarity_over_epochs`.

The result goes into the run folder as ``similarity_over_epochs.json`` (valid JSON, written
atomically; an undefined value is ``null``), which the report's "Similarity over epochs" section
draws (:mod:`layerscope.report.similarity`). A rerun replaces the file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

from layerscope.errors import OptionError, RunFolderError, fix, toml_lines
from layerscope.lab.checkpoint import all_checkpoints, load_checkpoint
from layerscope.lab.runs import load_run_model, train_split_without_augmentation
from layerscope.report.html import write_report
from layerscope.report.similarity import OVER_EPOCHS_FILE
from layerscope.similarity.layers import SimilarityOverEpochs, similarity_over_epochs
from layerscope.store.atomic import atomic_write_json

__all__ = ["OVER_EPOCHS_FILE", "similarity_over_epochs_run"]

MEASURES = ("cka", "svcca")
SPLITS = ("test", "train")


def _kept_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    found = all_checkpoints(run_dir / "checkpoints")
    if len(found) < 2:
        kept = f"epoch {found[0][0]} only" if found else "none"
        raise RunFolderError(
            f"{run_dir} kept {len(found)} epoch checkpoint(s) ({kept}); similarity over epochs "
            f"compares each kept epoch with the last, so it needs two or more. Train the next "
            f"run keeping every epoch, {toml_lines('checkpoints.keep', 'all')}"
        )
    return found


class _ModelStates(Sequence):
    """The model state dicts of checkpoint files, each loaded when indexed: the comparison
    holds one of them at a time instead of every kept epoch's."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return _ModelStates(self.paths[index])
        return load_checkpoint(self.paths[index], map_location="cpu").state["model"]


def similarity_over_epochs_run(
    run_dir: str | os.PathLike,
    *,
    measures: Sequence[str] = ("cka",),
    split: str = "test",
    batch_size: int | None = None,
    max_batches: int | None = None,
    spatial: str | None = None,
    device: Any = None,
    report: bool = True,
) -> dict[str, SimilarityOverEpochs]:
    """Every recorded layer at every kept checkpoint against itself at the last one.

    Args:
        run_dir: a run folder written by ``layerscope run`` with two or more checkpoints.
        measures: ``"cka"`` (minibatch unbiased linear CKA) and / or ``"svcca"``.
        split: the run's ``"test"`` split (default) or ``"train"`` (without augmentation).
        batch_size: default: the run's; CKA is averaged over batches of this size.
        max_batches, spatial: as in :func:`~layerscope.similarity.similarity_over_epochs`.
        device: default: the run's config.
        report: rewrite the run's report.html (which then shows the section).

    Returns measure -> result, and writes ``similarity_over_epochs.json`` into ``run_dir``.

    Example (not run here: it needs a trained run)::

        over = similarity_over_epochs_run("logs/resnet18_cifar/digits/32/s0")
        over["cka"].to_frame().head()
    """
    run_dir = Path(run_dir)
    measures = tuple(dict.fromkeys(measures))
    unknown = [m for m in measures if m not in MEASURES]
    if unknown or not measures:
        raise OptionError(
            f"measures {list(measures)} must be among {list(MEASURES)} "
            + fix(python="(measures=['cka', 'svcca'])", cli="(--measure cka or svcca)")
        )
    if split not in SPLITS:
        raise OptionError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    found = _kept_checkpoints(run_dir)
    model, data, cfg = load_run_model(run_dir, device=device,
                                      checkpoint=load_checkpoint(found[-1][1]))  # fmt: skip
    states = _ModelStates([path for _, path in found])
    dataset = train_split_without_augmentation(data) if split == "train" else data.test
    loader = DataLoader(dataset, batch_size=batch_size or cfg.batch_size, shuffle=False,
                        num_workers=cfg.num_workers)  # fmt: skip
    epochs = [epoch for epoch, _ in found]
    results = {
        measure: similarity_over_epochs(
            states, loader, model=model, epochs=epochs, measure=measure,
            include=cfg.tracker.include, exclude=cfg.tracker.exclude or None, spatial=spatial,
            max_batches=max_batches,
        )
        for measure in measures
    }  # fmt: skip
    first = next(iter(results.values()))
    payload = {
        "run": cfg.run_id, "split": split, "epochs": list(first.epochs),
        "reference_epoch": first.reference_epoch, "layers": list(first.layers),
        "batch_size": loader.batch_size,
        "measures": {m: {"values": r.values.tolist(), "num_samples": r.num_samples,
                         "spatial": r.spatial} for m, r in results.items()},
    }  # fmt: skip
    atomic_write_json(run_dir / OVER_EPOCHS_FILE, payload)
    if report:
        write_report(run_dir)
    return results
