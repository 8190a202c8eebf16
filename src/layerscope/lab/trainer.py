"""One training run from a :class:`RunConfig`: data, model, Tracker, checkpoints, resume (C10).

The loop is the dissertation's PHD-Lab trainer (6.2) with what it got wrong fixed: losses are
per-sample means over the epoch (not divided by the batch size again), checkpoints are atomic and
verified, and a run resumes from its last good checkpoint, not from the presence of a CSV.

A run folder (``run_dir(cfg)``) holds::

    config.json        the resolved config, written before training: enough to rerun alone
    run.json           versions and tracker options (written by the Tracker)
    records.sqlite     per-layer statistics and per-epoch metrics
    checkpoints/       epoch-NNNN.pt (the newest two, or checkpoints.keep) and initial.pt (the
                       weights at epoch 0)
    figures/, report.html
    done.json          training ended (a rerun skips it): "status" finished, or diverged (a NaN
                       or infinite loss; the epoch and the message say where)
    error.json         the last attempt failed (the error); rerunning resumes and removes it
    latents/, probes/  with ``probes = true``: extracted layer outputs and cached probe results

This module trains; :mod:`layerscope.lab.experiment` runs the whole pipeline of a config's runs
(train, then model size, probes and the final report).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from layerscope.datasets import load_dataset
from layerscope.errors import ConfigError, OptionError, user_context
from layerscope.lab.checkpoint import (
    capture_rng_state,
    latest_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from layerscope.lab.config import RunConfig, format_width, resolve_device, run_dir
from layerscope.lab.config_check import flatten_keys
from layerscope.lab.config_resolve import technical_paths
from layerscope.lab.console import say, show_bars
from layerscope.lab.optimizers import step_schedule
from layerscope.registry import METRICS, MODELS, OPTIMIZERS
from layerscope.report.live import ReportWriter
from layerscope.store.atomic import atomic_save, atomic_write_json, atomic_write_text
from layerscope.store.folder import DONE_FILE, ERROR_FILE
from layerscope.store.runs import load
from layerscope.store.sqlite import SQLiteSink
from layerscope.tracking.tracker import Tracker

__all__ = [
    "RunResult",
    "build_model",
    "nonfinite_metrics",
    "run_epoch",
    "seed_everything",
    "train_run",
]

CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class RunResult:
    """What :func:`train_run` did: ``status`` is ``"finished"``, ``"skipped"`` (finished
    before) or ``"diverged"`` (a loss became NaN or infinite, now or before)."""

    run_dir: Path
    status: str
    epochs_trained: int
    metrics: dict[str, float] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and random (data-loader workers are seeded from torch's seed).

    Example:
        >>> seed_everything(3); a = torch.rand(1)
        >>> seed_everything(3); bool(torch.rand(1) == a)
        True
    """
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the global generator user code draws from
    random.seed(seed)


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)  # noqa: NPY002 - each worker's global generator
    random.seed(seed)


def _write_config(folder: Path, cfg: RunConfig) -> None:
    """Write the resolved config; refuse a folder that holds a different run."""
    path = folder / CONFIG_FILE
    resolved = cfg.to_dict()
    if path.is_file():
        existing = flatten_keys(json.loads(path.read_text(encoding="utf-8")))
        flat = flatten_keys(resolved)
        changed = sorted(k for k in flat.keys() | existing.keys() if flat.get(k) != existing.get(k))
        if not changed:
            return
        technical = technical_paths()
        if any(key not in technical for key in changed):
            raise ConfigError(
                f"{folder} holds a run with another config (differs in {', '.join(changed)}). "
                f"Give this run another run_id or logs_dir, or delete the folder."
            )
        # Only technical keys changed (device, workers, probes, ...): same run, new settings.
    atomic_write_text(path, json.dumps(resolved, indent=2) + "\n")


def build_model(cfg: RunConfig, num_classes: int, in_channels: int) -> nn.Module:
    """The configured model for data of ``num_classes`` and ``in_channels`` (width applied).

    Example:
        >>> from layerscope.lab.config import RunConfig
        >>> model = build_model(RunConfig(model="vgg11", width=0.25, run_id="x"), 10, 1)
        >>> model.features[0].out_channels
        16
    """
    kwargs = dict(cfg.model_kwargs)
    kwargs.setdefault("num_classes", num_classes)
    kwargs.setdefault("in_channels", in_channels)
    if cfg.width != 1.0 or "width" in _parameters(MODELS.get(cfg.model)):
        kwargs["width"] = cfg.width
    return MODELS.create(cfg.model, **kwargs)


def _parameters(factory: Callable) -> set[str]:
    try:
        return set(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        return set()


def run_epoch(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    metrics: dict[str, Callable],
    optimizer: torch.optim.Optimizer | None,
    description: str,
    progress: bool,
) -> dict[str, float]:
    """One pass over ``loader``; trains when an optimizer is given. Returns per-sample means of
    the loss and of every metric (registered metrics return counts that add over batches).

    Example:
        >>> from layerscope.lab.metrics import accuracy
        >>> model = nn.Linear(4, 3)
        >>> batches = [(torch.randn(8, 4), torch.randint(0, 3, (8,))) for _ in range(2)]
        >>> result = run_epoch(model, batches, torch.device("cpu"), {"accuracy": accuracy},
        ...                    None, "eval", progress=False)
        >>> sorted(result), 0.0 <= result["accuracy"] <= 1.0
        (['accuracy', 'loss'], True)
    """
    training = optimizer is not None
    model.train(training)
    loss_function = nn.CrossEntropyLoss(reduction="sum")
    # Sums stay tensors on the device: no host synchronisation per batch.
    totals = {name: torch.zeros((), dtype=torch.float64, device=device)
              for name in ["loss", *metrics]}  # fmt: skip
    seen = 0
    bar = tqdm(loader, desc=description, leave=False, disable=not show_bars(progress),
               file=sys.stderr)  # fmt: skip
    with torch.set_grad_enabled(training):
        for inputs, targets in bar:
            inputs, targets = inputs.to(device), targets.to(device)
            logits = model(inputs)
            if logits.dim() != 2 or logits.shape[0] != len(targets):
                raise OptionError(
                    f"the model returned shape {tuple(logits.shape)} for a batch of "
                    f"{len(targets)}; the trainer trains classifiers returning (batch, classes)"
                )
            loss = loss_function(logits, targets)
            if training:
                optimizer.zero_grad(set_to_none=True)
                (loss / len(targets)).backward()
                optimizer.step()
            seen += len(targets)
            totals["loss"] += loss.detach()
            for name, metric in metrics.items():
                totals[name] += metric(logits.detach(), targets)
    return {name: float(value) / max(seen, 1) for name, value in totals.items()}


def _epoch_seed(seed: int, epoch: int) -> int:
    """Seed of the shuffle order of ``epoch``: depends on (seed, epoch) only, below 2**63."""
    digest = hashlib.sha256(f"layerscope-shuffle:{seed}:{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _restore(checkpoints: Path, state: _TrainingState, progress: bool) -> int:
    """Load the newest good checkpoint into the training state; return the next epoch (0 if
    there is none, after saving the initial weights for distance-from-initialisation)."""
    # On CPU: RNG states must stay CPU tensors; load_state_dict moves the rest where it lives.
    checkpoint = latest_checkpoint(checkpoints, map_location="cpu")
    if checkpoint is None:
        weights = state.model.state_dict()
        atomic_save(checkpoints / "initial.pt", lambda f: torch.save(weights, f))
        return 0
    state.load(checkpoint.state)
    say(
        f"resuming {checkpoints.parent} at epoch {checkpoint.epoch + 2} (from "
        f"{checkpoint.path.name}, epoch {checkpoint.epoch + 1} done)"
    )
    return checkpoint.epoch + 1


def _stored_metrics(folder: Path, run: str, epoch: int) -> dict[str, float]:
    """The train_/test_ metrics recorded for ``epoch`` (a run killed after its last
    checkpoint finishes without training again)."""
    df = load(folder / "records.sqlite")
    rows = df[(df.run == run) & (df.epoch == epoch) & (df.phase == "epoch")]
    rows = rows[rows.statistic.str.startswith(("train_", "test_"))]
    return dict(zip(rows.statistic, rows.value, strict=True))


@user_context("config")  # messages give their fixes as config lines
def train_run(
    cfg: RunConfig,
    *,
    folder: str | Path | None = None,
    position: tuple[int, int] = (1, 1),
    progress: bool = True,
    after_epoch: Callable[[int], None] | None = None,
) -> RunResult:
    """Train one configured run with tracking and a live report; resume it if interrupted.

    Only training: the experiment (:func:`layerscope.lab.experiment.run_one`) adds the model
    size, probes and the final report.

    Args:
        cfg: a resolved config (from :func:`~layerscope.lab.config.load_config`).
        folder: the run folder; default ``run_dir(cfg)`` (relative to the working directory
            when ``logs_dir`` is).
        position: (index, total) of the run in its grid, for the progress bar.
        progress: show progress bars (stderr, on a terminal only; epoch summary lines are
            printed either way, except inside :func:`layerscope.lab.console.quiet`).
        after_epoch: called with the epoch index after each epoch's checkpoint is saved.

    Returns:
        A :class:`RunResult`; a finished run (``done.json`` present) is skipped. A NaN or
        infinite loss ends the run at that epoch as ``"diverged"`` (``cfg.on_nonfinite =
        "continue"`` trains on, still marked diverged).

    Example (trains, so not run here; tests/lab/test_trainer.py runs it on a tiny model):
        ``train_run(load_config("examples/vgg_width_sweep.toml")[0])``
    """
    folder = Path(folder) if folder is not None else run_dir(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    _write_config(folder, cfg)  # refuses a folder that holds another run, finished or not
    if (folder / DONE_FILE).is_file():
        done = json.loads((folder / DONE_FILE).read_text(encoding="utf-8"))
        status = "diverged" if done.get("status") == "diverged" else "skipped"
        return RunResult(folder, status, 0, done.get("metrics", {}))
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    data = load_dataset(cfg.dataset, resolution=cfg.resolution, seed=cfg.seed,
                        **cfg.dataset_kwargs)  # fmt: skip
    state = _TrainingState.build(cfg, data, device)
    checkpoints = folder / "checkpoints"
    start = _restore(checkpoints, state, progress)
    store = SQLiteSink(folder / "records.sqlite")  # records after the checkpoint go
    store.discard_from(cfg.run_id, start)
    store.close()
    (folder / ERROR_FILE).unlink(missing_ok=True)  # this attempt replaces a failed one
    last = _stored_metrics(folder, cfg.run_id, cfg.epochs - 1) if start >= cfg.epochs else {}
    label = f"run {position[0]}/{position[1]} {cfg.model} w={format_width(cfg.width)}"
    last, diverged, trained = _train_epochs(cfg, state, data, folder, start, last, label,
                                            progress, after_epoch)  # fmt: skip
    done = {"status": "diverged" if diverged else "finished", "epochs": cfg.epochs,
            "metrics": last, "data": {"num_classes": data.num_classes,
            "in_channels": data.in_channels, "input_size": data.input_size,
            "train_size": len(data.train), "test_size": len(data.test)},
            "device": str(state.device)}  # fmt: skip
    if diverged:  # the reason only: the status says where ("diverged at epoch k of n: ...")
        done |= {"epoch": diverged[0] + 1, "message": diverged[1].split(" at epoch ")[0]}
    atomic_write_json(folder / DONE_FILE, done)
    return RunResult(folder, "diverged" if diverged else "finished", trained, last)


def nonfinite_metrics(values: dict[str, float]) -> dict[str, float]:
    """The losses among ``values`` that are NaN or infinite (a diverged epoch).

    Example:
        >>> nonfinite_metrics({"train_loss": float("nan"), "test_loss": 0.3, "lr": 1e30})
        {'train_loss': nan}
    """
    return {k: v for k, v in values.items() if k.endswith("loss") and not math.isfinite(v)}


def _divergence(cfg: RunConfig, epoch: int, bad: dict[str, float], lr: float) -> str:
    losses = ", ".join(f"{name} is {value}" for name, value in bad.items())
    then = ("trained on (on_nonfinite = \"continue\")" if cfg.on_nonfinite == "continue"
            else "stopped there; on_nonfinite = \"continue\" in the config trains on")  # fmt: skip
    return (f"{losses} at epoch {epoch + 1} of {cfg.epochs}: the run diverged and {then}. A "
            f"smaller optimizer.lr (now {lr:g}) usually helps")  # fmt: skip


def _train_epochs(cfg, state, data, folder: Path, start: int, last: dict, label: str,
                  progress: bool, after_epoch) -> tuple[dict, tuple[int, str] | None, int]:  # fmt: skip
    """The epoch loop: returns the last metrics, (epoch, message) of the first diverged epoch
    (None: none diverged) and the number of epochs trained. A failure leaves ``error.json``."""
    checkpoints, diverged, epoch = folder / "checkpoints", None, start
    try:
        with _tracker(cfg, state.model, folder, start) as tracker:
            if start > 0:
                initial = torch.load(checkpoints / "initial.pt", map_location="cpu",
                                     weights_only=True)  # fmt: skip
                tracker.set_initial_weights(initial)
            for epoch in range(start, cfg.epochs):
                lr = state.optimizer.param_groups[0]["lr"]
                last = state.epoch(epoch, data, tracker, f"{label} epoch {epoch + 1}/{cfg.epochs}",
                                   progress)  # fmt: skip
                bad = nonfinite_metrics(last)
                if bad and diverged is None:
                    diverged = (epoch, _divergence(cfg, epoch, bad, lr))
                    say(f"{folder}: {diverged[1]}")
                    if cfg.on_nonfinite == "stop":  # no checkpoint of non-finite weights
                        return last, diverged, epoch + 1 - start
                save_checkpoint(checkpoints, epoch, state.checkpoint(), keep=cfg.checkpoints.keep)
                if after_epoch is not None:
                    after_epoch(epoch)
    except Exception as error:
        atomic_write_json(folder / ERROR_FILE, {"status": "failed", "epoch": epoch + 1,
                          "message": f"{type(error).__name__}: {error}"})  # fmt: skip
        raise
    return last, diverged, max(cfg.epochs - start, 0)


def _tracker(cfg: RunConfig, model: nn.Module, folder: Path, start: int) -> Tracker:
    """The run's Tracker: the config's options, always with the SQLite store (resume and the
    reports read it; ``tracker.sinks`` adds others), and a live report."""
    sinks = tuple(cfg.tracker.sinks or ())
    sinks = sinks if "sqlite" in sinks else ("sqlite", *sinks)
    return Tracker(model, folder, run=cfg.run_id, options=cfg.tracker, sinks=sinks,
                   start_epoch=start, metadata={"config": cfg.to_dict()},
                   callbacks=[ReportWriter()] if cfg.live_report else [])  # fmt: skip


@dataclass
class _TrainingState:
    """Model, optimizer, schedule, metrics and loaders of one run; what a checkpoint holds."""

    cfg: RunConfig
    device: torch.device
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    metrics: dict[str, Callable]
    generator: torch.Generator
    train_loader: DataLoader
    test_loader: DataLoader

    @classmethod
    def build(cls, cfg: RunConfig, data, device: torch.device) -> _TrainingState:
        model = build_model(cfg, data.num_classes, data.in_channels).to(device)
        optimizer = OPTIMIZERS.create(
            cfg.optimizer.name, params=model.parameters(), lr=cfg.optimizer.lr,
            momentum=cfg.optimizer.momentum, weight_decay=cfg.optimizer.weight_decay,
        )  # fmt: skip
        generator = torch.Generator()
        train_loader = DataLoader(
            data.train, batch_size=cfg.batch_size, shuffle=True, num_workers=cfg.num_workers,
            worker_init_fn=_seed_worker, generator=generator,
        )  # fmt: skip
        test_loader = DataLoader(data.test, batch_size=cfg.batch_size,
                                 num_workers=cfg.num_workers)  # fmt: skip
        return cls(cfg, device, model, optimizer,
                   step_schedule(optimizer, cfg.optimizer.step, cfg.optimizer.factor),
                   {name: METRICS.get(name) for name in cfg.metrics}, generator,
                   train_loader, test_loader)  # fmt: skip

    def epoch(self, epoch: int, data, tracker: Tracker, label: str, progress: bool) -> dict:
        """Train and evaluate one epoch, record it; returns the train_/test_ metrics."""
        started = time.perf_counter()
        data.set_epoch(epoch)
        # The shuffle order depends on (seed, epoch) only, so a resumed run sees the same
        # batches as an uninterrupted one.
        self.generator.manual_seed(_epoch_seed(self.cfg.seed, epoch))
        lr = self.optimizer.param_groups[0]["lr"]
        train = run_epoch(self.model, self.train_loader, self.device, self.metrics,
                          self.optimizer, label, progress)  # fmt: skip
        test = run_epoch(self.model, self.test_loader, self.device, self.metrics, None,
                         label + " eval", progress)  # fmt: skip
        self.scheduler.step()
        values = {f"train_{k}": v for k, v in train.items()}
        values |= {f"test_{k}": v for k, v in test.items()}
        tracker.end_epoch(**values, lr=lr, seconds=time.perf_counter() - started)
        say(
            f"{label}: train loss {train['loss']:.4f}, test loss {test['loss']:.4f}"
            + "".join(f", test {k} {v:.4f}" for k, v in test.items() if k != "loss")
        )
        return values

    def checkpoint(self) -> dict:
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "rng": capture_rng_state(),
        }  # fmt: skip

    def load(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        restore_rng_state(state["rng"])
