"""Both callbacks under 2-process data parallelism on CPU (gloo): Lightning's ddp and ddp_spawn
strategies and torchrun for the Hugging Face Trainer. The ranks run in subprocesses (a
framework launching ranks must not relaunch pytest)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy_reference import capture, saturation
from torch.utils.data import DataLoader, Subset

import layerscope as ls

HERE = Path(__file__).parent
STATISTICS = ["samples", "saturation", "intrinsic_dimension", "trace"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(arguments, tmp_path) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path]),
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}  # fmt: skip
    result = subprocess.run([sys.executable, *arguments], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def layer_table(run_dir):
    frame = ls.load(run_dir)
    frame = frame[frame.layer.notna() & frame.statistic.isin(STATISTICS)]
    return frame.set_index(["epoch", "phase", "layer", "statistic"]).value.sort_index()


@pytest.fixture(scope="module")
def single_process(tmp_path_factory):
    """The same 2 epochs in one process, over the same samples in batches of 100 and 60."""
    import lightning as L
    from test_lightning import DigitsModule, make_trainer

    from layerscope.integrations.lightning import LayerscopeCallback

    run_dir = tmp_path_factory.mktemp("single") / "run"
    splits = ls.load_dataset("digits", resolution=8, augment=False)
    trainer = make_trainer(L, [LayerscopeCallback(run_dir)])
    trainer.fit(DigitsModule(), DataLoader(Subset(splits.train, range(1400)), batch_size=100),
                DataLoader(splits.test, batch_size=60))  # fmt: skip
    return run_dir


@pytest.mark.slow
def test_lightning_ddp_equals_one_process_and_only_rank_0_writes(single_process, tmp_path):
    run([str(HERE / "ddp_lightning.py"), "ddp", str(tmp_path / "run")], tmp_path)
    ddp, single = layer_table(tmp_path / "run"), layer_table(single_process)
    assert list(ddp.index) == list(single.index)
    assert sorted({(e, p) for e, p, *_ in ddp.index}) == [
        (0, "eval"), (0, "train"), (1, "eval"), (1, "train")]  # fmt: skip
    exact = ddp.index.get_level_values("statistic") != "trace"
    assert ddp[exact].tolist() == single[exact].tolist()  # samples, saturation, dimension
    np.testing.assert_allclose(ddp[~exact], single[~exact], rtol=1e-6)  # float32 sums
    assert ddp.loc[(0, "eval", "net.3", "samples")] == 360  # both halves, no sanity batches
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "layers.json", "records.sqlite", "run.json"]  # fmt: skip
    assert len(ls.load(tmp_path / "run")) == len(ls.load(single_process))  # written once


@pytest.mark.slow
def test_lightning_ddp_spawn_records_reach_the_run_folder(single_process, tmp_path):
    out = run([str(HERE / "ddp_lightning.py"), "ddp_spawn", str(tmp_path / "run")], tmp_path)
    assert "parent records: 0" in out  # the ranks wrote, not the parent's callback
    spawned, single = layer_table(tmp_path / "run"), layer_table(single_process)
    assert list(spawned.index) == list(single.index)
    samples = spawned.index.get_level_values("statistic") == "samples"
    assert spawned[samples].tolist() == single[samples].tolist()


@pytest.mark.slow
def test_huggingface_under_torchrun_merges_the_ranks(tmp_path):
    from test_huggingface import LAYERS, TEST, TRAIN, Tokens, tiny_bert

    weights = tmp_path / "final.pt"
    run(["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
         str(HERE / "ddp_huggingface.py"), str(tmp_path / "run"), str(weights)], tmp_path)  # fmt: skip
    frame = ls.load(tmp_path / "run")
    samples = frame[(frame.statistic == "samples") & (frame.layer == "classifier")]
    assert samples.groupby(["epoch", "phase"]).value.sum().to_dict() == {
        (0, "eval"): TEST,
        (0, "train"): TRAIN,
        (1, "eval"): TEST,
        (1, "train"): TRAIN,
    }
    model = tiny_bert().eval()
    model.load_state_dict(torch.load(weights))
    modules = dict(model.named_modules())
    outputs, handles = capture({n: modules[n] for n in LAYERS}, lambda: True)
    with torch.no_grad():
        for batch in DataLoader(Tokens(TEST, 1), batch_size=8):
            model(**batch)
    for handle in handles:
        handle.remove()
    last = frame[(frame.epoch == 1) & (frame.phase == "eval") & (frame.statistic == "saturation")]
    for name in LAYERS:  # the last evaluation ran with the final weights, split over 2 ranks
        assert last[last.layer == name].value.tolist() == [
            saturation(np.concatenate(outputs[name]))
        ]
