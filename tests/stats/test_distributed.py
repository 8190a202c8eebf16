"""StreamingCovariance.sync across real torch.distributed processes (gloo, CPU)."""

from __future__ import annotations

import os
import socket

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from layerscope.stats import StreamingCovariance


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, data: np.ndarray, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        cov = StreamingCovariance(data.shape[1])
        shard = np.array_split(data, world)[rank]  # unequal shards on purpose
        for part in np.array_split(shard, 3):
            cov.update(torch.from_numpy(part))
        cov.sync()
        if rank == 0:
            torch.save(cov.compute().covariance, out)
    finally:
        dist.destroy_process_group()


def test_sync_equals_single_process(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(301, 5)) * 3 + 1e4  # a mean offset tests the re-centring
    out = str(tmp_path / "cov.pt")
    mp.spawn(_worker, args=(3, _free_port(), data, out), nprocs=3, join=True)
    synced = torch.load(out).numpy()
    centred = data - data.mean(0)
    reference = centred.T @ centred / len(data)
    assert np.linalg.norm(synced - reference) / np.linalg.norm(reference) < 1e-10


def test_sync_without_process_group_is_a_no_op():
    cov = StreamingCovariance(2)
    cov.update(torch.randn(10, 2))
    before = cov.compute().covariance
    assert torch.equal(cov.sync().compute().covariance, before)
