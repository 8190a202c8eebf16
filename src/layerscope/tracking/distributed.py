"""The Tracker under ``torch.distributed``: one set of statistics for all ranks (SPEC C13).

In a data-parallel loop (``DistributedDataParallel``, or any loop with an initialised process
group) each rank sees its own shard of every phase. The statistics of a layer must be those of
the union of the shards, so when an epoch ends (or the tracker closes) every rank hands its
finished phases to :func:`merge_phases`, which

1. gathers from every rank the phases it finished, in its order, and the layers it saw with
   their widths and forward order (one ``all_gather_object``);
2. builds one order for everyone: phases by first appearance, rank 0 first; layers in rank 0's
   forward order, a layer only another rank saw placed right after its predecessor there;
3. all-reduces the state of every (phase, layer) pair in that order with the exact
   :meth:`~layerscope.stats.base.StreamingStatistic.sync` (Chan's formula from sums), a rank
   that did not see a layer in that phase (or ran no batch at all) taking part with a fresh,
   zero-count state.

Every rank then holds the same merged accumulators; only rank 0 (:func:`is_writer`) writes
records, ``run.json``, ``layers.json`` and figures, and computes weight statistics (weights are
replicated under DDP).

Example (no process group: everything is local, one rank, the writer):
    >>> world(None)
    >>> is_writer(None)
    True
    >>> from torch import nn
    >>> type(bare_model(nn.DataParallel(nn.Linear(2, 2)))).__name__
    'Linear'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from layerscope.errors import OptionError
from layerscope.stats.base import StreamingStatistic

__all__ = ["World", "any_rank", "bare_model", "is_writer", "merge_phases", "world"]


def bare_model(model: nn.Module) -> nn.Module:
    """The model inside ``DistributedDataParallel`` / ``DataParallel`` wrappers (layer names
    then carry no ``module.`` prefix); any other model as it is."""
    wrappers = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    while isinstance(model, wrappers):
        model = model.module
    return model


class World:
    """The process group a Tracker merges over: ``rank``, ``size`` and ``group``."""

    def __init__(self, group=None) -> None:
        import torch.distributed as dist

        self.group = group
        self.rank = dist.get_rank(group)
        self.size = dist.get_world_size(group)
        backend = str(dist.get_backend(group)).lower()
        # NCCL moves CUDA tensors only; gloo is given CPU tensors.
        self.device = (
            torch.device("cuda", torch.cuda.current_device())
            if "nccl" in backend
            else torch.device("cpu")
        )

    def gather(self, value: object) -> list[object]:
        import torch.distributed as dist

        values: list[object] = [None] * self.size
        dist.all_gather_object(values, value, group=self.group)
        return values

    def __repr__(self) -> str:
        return f"World(rank={self.rank}, size={self.size}, device={self.device})"


def world(distributed: bool | None, group=None) -> World | None:
    """The :class:`World` to merge over, or ``None`` to stay local.

    ``distributed=None`` (the default) merges whenever a process group is initialised;
    ``False`` never does (e.g. a tracker created on rank 0 only); ``True`` insists on one.
    """
    import torch.distributed as dist

    initialised = dist.is_available() and dist.is_initialized()
    if distributed is True and not initialised:
        raise OptionError(
            "Tracker(distributed=True) needs an initialised process group: call "
            "torch.distributed.init_process_group(...) first (torchrun sets the environment), "
            "or leave distributed=None to merge only when one exists"
        )
    if distributed is False or not initialised:
        return None
    return World(group)


def is_writer(world: World | None) -> bool:
    """Whether this process writes files: always without a world, else rank 0 only."""
    return world is None or world.rank == 0


def _union_order(orders: Sequence[Sequence[str]]) -> list[str]:
    """Layer names in rank 0's forward order; a name first seen on another rank is placed right
    after its predecessor in that rank's order (at the front if it has none)."""
    merged: list[str] = []
    for order in orders:
        for position, name in enumerate(order):
            if name in merged:
                continue
            at = merged.index(order[position - 1]) + 1 if position else 0
            merged.insert(at, name)
    return merged


def merge_phases(
    world: World | None,
    phases: list[str],
    accumulators: dict[tuple[str, str], StreamingStatistic],
    order: list[str],
    widths: dict[str, int],
    factory: Callable[[int, str, Any], StreamingStatistic],
    options: Any,
) -> list[str]:
    """Merge the finished ``phases`` of every rank; every rank must call it at the same point.

    Args:
        phases: the phases this rank finished since the last merge, in order; emptied.
        accumulators: this rank's states by (phase, layer); the merged states replace them.
        order, widths: the layers this rank saw (forward order) and their widths; they become
            those of all ranks.
        factory, options: ``factory(width, name, options)`` builds a zero-count state for a
            layer this rank did not see in a phase.

    Returns:
        The phases of all ranks, in one order (none without a world).
    """
    if world is None:
        return []
    mine = sorted(key for key in accumulators if key[0] in phases)
    shared = world.gather((list(phases), list(order), dict(widths), mine))
    phases.clear()
    all_phases: list[str] = []
    for rank_phases, *_ in shared:
        all_phases += [p for p in rank_phases if p not in all_phases]
    order[:] = _union_order([rank_order for _, rank_order, _, _ in shared])
    for _, _, rank_widths, _ in shared:
        for name, width in rank_widths.items():
            if widths.setdefault(name, width) != width:
                raise OptionError(
                    f"layer {name!r} has {width} output features on one rank and "
                    f"{widths[name]} on another; every rank must run the same model"
                )
    seen = {tuple(key) for *_, keys in shared for key in keys}
    for phase in all_phases:
        for name in order:
            if (phase, name) not in seen:
                continue
            state = accumulators.get((phase, name))
            if state is None:
                state = factory(widths[name], name, options)
            accumulators[(phase, name)] = state.to(world.device).sync(world.group)
    return all_phases


def any_rank(world: World | None, flag: bool) -> bool:
    """Whether ``flag`` is true on some rank (every rank must call it); ``flag`` without one."""
    return bool(flag) if world is None else any(world.gather(bool(flag)))
