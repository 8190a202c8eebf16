"""Every streaming statistic through one harness (the shape of sklearn's parametrize_with_checks):
merge(A, B) equals updating with A's then B's batches, sync over 2 gloo processes equals one
process over the union, state_dict round-trips, reset returns to a fresh state, and merging
something else is refused. Every registered spectrum statistic is defined (never NaN) on zero
variance, one sample and rank-deficient data.

A new StreamingStatistic subclass in layerscope fails ``test_every_statistic_has_a_case`` until it
gets a case here.
"""

from __future__ import annotations

import importlib
import math
import os
import pkgutil
import socket
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import layerscope
from layerscope.errors import OptionTypeError, StateMismatchError
from layerscope.similarity import MinibatchCKA
from layerscope.stats import STATISTICS, StreamingCovariance, StreamingStatistic, compute_statistics


@dataclass(frozen=True)
class Case:
    """How to build one kind of statistic, feed it a batch, and read a comparable result."""

    name: str
    make: Any  # () -> StreamingStatistic
    batch: Any  # (generator) -> args of update()
    read: Any  # (statistic) -> list of float64 numpy arrays
    other: Any  # () -> an instance with other options (merge must refuse it)


def _covariance_batch(g):
    return (torch.randn(50, 4, generator=g, dtype=torch.float64) * 3 + 100,)


def _read_covariance(cov):
    result = cov.compute()
    return [np.array([result.count]), result.mean.numpy(), result.covariance.numpy()]


def _cka_batch(g, num_x=1, num_y=1):
    x = [torch.randn(40, 5, generator=g, dtype=torch.float64) for _ in range(num_x)]
    y = [t[:, :3] @ torch.randn(3, 3, generator=g, dtype=torch.float64) for t in x[:1]] * num_y
    return (x, y)


def _read_cka(acc):
    return [acc.compute().numpy(), np.array([int(acc.samples), int(acc.batches)])]


CASES = [
    Case("covariance-float64", lambda: StreamingCovariance(4), _covariance_batch,
         _read_covariance, lambda: StreamingCovariance(5)),
    Case("covariance-mixed", lambda: StreamingCovariance(4, precision="mixed"),
         _covariance_batch, _read_covariance, lambda: StreamingCovariance(3)),
    Case("minibatch-cka", lambda: MinibatchCKA(), _cka_batch, _read_cka,
         lambda: MinibatchCKA(unbiased=False)),
    Case("minibatch-cka-grid", lambda: MinibatchCKA(2, 3, unbiased=False),
         lambda g: _cka_batch(g, 2, 3), _read_cka, lambda: MinibatchCKA(2, 2, unbiased=False)),
]  # fmt: skip
TOLERANCE = {"covariance-mixed": 1e-6}


def _batches(case: Case, count: int, seed: int = 0) -> list:
    g = torch.Generator().manual_seed(seed)
    return [case.batch(g) for _ in range(count)]


def _fed(case: Case, batches) -> StreamingStatistic:
    statistic = case.make()
    for args in batches:
        statistic.update(*args)
    return statistic


def _close(a, b, case: Case) -> None:
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=TOLERANCE.get(case.name, 1e-12), atol=1e-12)


def _concrete_subclasses(cls) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _concrete_subclasses(sub)
    return found


def test_every_statistic_has_a_case():
    for module in pkgutil.walk_packages(layerscope.__path__, "layerscope."):
        importlib.import_module(module.name)
    shipped = {c for c in _concrete_subclasses(StreamingStatistic)
               if c.__module__.startswith("layerscope.")}  # fmt: skip
    covered = {type(case.make()) for case in CASES}
    assert shipped <= covered, f"no conformance case for {shipped - covered}"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_merge_equals_updating_with_both(case):
    batches = _batches(case, 5)
    a, b = _fed(case, batches[:2]), _fed(case, batches[2:])
    _close(case.read(a.merge(b)), case.read(_fed(case, batches)), case)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_merging_an_empty_one_changes_nothing(case):
    batches = _batches(case, 3)
    _close(case.read(_fed(case, batches).merge(case.make())), case.read(_fed(case, batches)), case)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_state_dict_round_trip_and_reset(case):
    batches = _batches(case, 3)
    source = _fed(case, batches)
    copy = case.make()
    copy.load_state_dict(source.state_dict())
    _close(case.read(copy), case.read(source), case)
    source.reset()
    fresh = case.make()
    for name in fresh.state_dict():
        assert torch.equal(source.state_dict()[name], fresh.state_dict()[name]), name


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_merge_refuses_other_options_and_other_kinds(case):
    with pytest.raises(StateMismatchError):
        case.make().merge(case.other())
    other_kind = next(c for c in CASES if type(c.make()) is not type(case.make()))
    with pytest.raises(OptionTypeError):
        case.make().merge(other_kind.make())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sync_worker(rank: int, world: int, port: int, index: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        case = CASES[index]
        batches = _batches(case, 5)
        mine = batches[:3] if rank == 0 else batches[3:]  # unequal shards
        statistic = _fed(case, mine).sync()
        if rank == 0:
            torch.save([torch.from_numpy(np.asarray(a)) for a in case.read(statistic)], out)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c.name for c in CASES])
def test_sync_over_two_processes_equals_one_process(tmp_path, index):
    out = str(tmp_path / "synced.pt")
    mp.spawn(_sync_worker, args=(2, _free_port(), index, out), nprocs=2, join=True)
    case = CASES[index]
    synced = [t.numpy() for t in torch.load(out)]
    _close(synced, case.read(_fed(case, _batches(case, 5))), case)


# ------------------------------------------------------------------ spectrum statistics
def _covariance_of(samples: np.ndarray):
    cov = StreamingCovariance(samples.shape[1])
    cov.update(torch.from_numpy(samples))
    return cov.compute()


DEGENERATE = {
    "zero variance": np.ones((20, 4)) * 3.0,
    "rank deficient": np.random.default_rng(0).normal(size=(30, 2)) @ np.ones((2, 5)),
}


@pytest.mark.parametrize("name", STATISTICS.list())
@pytest.mark.parametrize("data", DEGENERATE, ids=str)
def test_every_registered_statistic_is_defined_on_degenerate_input(name, data):
    values = compute_statistics(_covariance_of(DEGENERATE[data]), [name]).values
    value = np.asarray(values[name], dtype=np.float64)
    assert not np.isnan(value).any(), f"{name} is NaN on {data}"
    if STATISTICS.get(name).scalar and name != "log_determinant":
        assert np.isfinite(value).all(), f"{name} = {value} on {data}"


@pytest.mark.parametrize("name", STATISTICS.list())
def test_every_registered_statistic_gives_a_reason_for_one_sample(name):
    stats = compute_statistics(_covariance_of(np.ones((1, 3))), [name])
    assert stats.values == {} and "at least 2 samples" in stats.reason


def test_zero_variance_values_are_the_documented_ones():
    stats = compute_statistics(_covariance_of(DEGENERATE["zero variance"]))
    assert stats.values["saturation"] == 0.0 and stats.values["intrinsic_dimension"] == 0.0
    assert stats.values["log_determinant"] == -math.inf
    assert {"zero_variance", "singular"} <= stats.flags
