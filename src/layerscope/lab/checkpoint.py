"""Atomic, verified checkpoints of a training run (SPEC C10).

After every epoch the trainer writes ``checkpoints/epoch-NNNN.pt`` through a temporary file,
fsync and rename, so a crash while saving never damages an earlier checkpoint. A checkpoint holds
the model, optimizer and scheduler states, every RNG state (torch, CUDA, numpy, random) and the
epoch; it loads with ``torch.load(weights_only=True)`` (no pickled code). The two newest are kept
by default (config key ``checkpoints.keep``: a number, or ``"all"`` for every epoch, which the
weight-dynamics analyses over training need), so a truncated or corrupt newest one falls back to
the one before, with a message.

PHD-Lab wrote checkpoints in place (a crash while saving lost the run) and resumed when a CSV
existed rather than from a verified checkpoint.
"""

from __future__ import annotations

import random
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from layerscope.errors import StoreError
from layerscope.store.atomic import atomic_save

__all__ = [
    "CHECKPOINT_FORMAT",
    "KEEP",
    "Checkpoint",
    "all_checkpoints",
    "capture_rng_state",
    "latest_checkpoint",
    "load_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "layerscope-checkpoint-1"
_NAME = re.compile(r"epoch-(\d{4,})\.pt")
KEEP = 2


def capture_rng_state() -> dict[str, Any]:
    """Every RNG state a training step can touch, as tensors and plain values.

    Example:
        >>> state = capture_rng_state()
        >>> first = torch.rand(1)
        >>> restore_rng_state(state)
        >>> bool(torch.rand(1) == first)
        True
    """
    # numpy's legacy global generator: user code and data pipelines still draw from it.
    _, keys, position, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    numpy_state = {
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "position": int(position),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }
    state = {"torch": torch.get_rng_state(), "numpy": numpy_state, "random": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back the RNG states captured by :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    numpy = state["numpy"]
    keys = numpy["keys"].numpy().astype(np.uint32)
    legacy = ("MT19937", keys, numpy["position"], numpy["has_gauss"], numpy["cached_gaussian"])
    np.random.set_state(legacy)  # noqa: NPY002
    version, internal, gauss = state["random"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: ``epoch`` finished epochs' index and the saved ``state``."""

    path: Path
    epoch: int
    state: dict[str, Any]


def save_checkpoint(
    folder: str | Path, epoch: int, state: dict[str, Any], keep: int | None = KEEP
) -> Path:
    """Write ``state`` as the checkpoint of ``epoch`` atomically; keep the newest ``keep``
    (``None``: all of them).

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> _ = save_checkpoint(folder, 0, {"model": {"w": torch.ones(2)}})
        >>> latest_checkpoint(folder).epoch
        0
    """
    folder = Path(folder)
    path = folder / f"epoch-{epoch:04d}.pt"
    payload = {"format": CHECKPOINT_FORMAT, "epoch": int(epoch), **state}
    atomic_save(path, lambda handle: torch.save(payload, handle))
    if keep is not None:
        for old in _checkpoints(folder)[max(keep, 1) :]:
            old.unlink(missing_ok=True)
    return path


def _checkpoints(folder: Path) -> list[Path]:
    """Checkpoint files, newest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.fullmatch(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def _load(path: Path, map_location) -> Checkpoint:
    state = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise StoreError(
            f"{path} is not a {CHECKPOINT_FORMAT} file; move it out of {path.parent} (only "
            f"layerscope writes epoch-NNNN.pt files there)"
        )
    return Checkpoint(path, int(state["epoch"]), state)


def all_checkpoints(folder: str | Path) -> list[tuple[int, Path]]:
    """``(epoch, path)`` of every checkpoint file in ``folder``, oldest first (not loaded).

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> for epoch in range(3):
        ...     _ = save_checkpoint(folder, epoch, {"model": {}}, keep=None)
        >>> [epoch for epoch, _ in all_checkpoints(folder)]
        [0, 1, 2]
    """
    found = [
        (int(m.group(1)), p) for p in _checkpoints(Path(folder)) if (m := _NAME.fullmatch(p.name))
    ]
    return sorted(found)


def load_checkpoint(path: str | Path, map_location=None) -> Checkpoint:
    """Load one checkpoint file (raises :class:`~layerscope.errors.StoreError` for a file that
    layerscope did not write)."""
    return _load(Path(path), map_location)


def latest_checkpoint(folder: str | Path, map_location=None) -> Checkpoint | None:
    """The newest checkpoint in ``folder`` that loads; ``None`` if there is none.

    A checkpoint that fails to load (truncated, corrupt, foreign) is reported with a warning
    and the previous one is tried.

    Example:
        >>> import tempfile, pathlib, warnings
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = save_checkpoint(folder, 0, {"model": {}})
        >>> _ = (folder / "epoch-0001.pt").write_bytes(b"truncated")
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     latest_checkpoint(folder).epoch
        0
    """
    for path in _checkpoints(Path(folder)):
        try:
            return _load(path, map_location)
        except Exception as error:  # a damaged file can fail in many ways inside torch.load
            warnings.warn(
                f"checkpoint {path} cannot be loaded ({type(error).__name__}: {error}); "
                f"falling back to the previous one",
                RuntimeWarning,
                stacklevel=2,
            )
    return None
