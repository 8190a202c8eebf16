"""Tracking overhead: per-step time ratios, tracked vs untracked, interleaved step by step.

    python benchmarks/overhead.py [--model vgg|small] [--steps 60] [--device cpu|cuda] [--threads N]
    # Delve 0.1.50 in the same process (never a dependency; a throwaway venv holding both):
    python3 -m venv /tmp/venv-16
    /tmp/venv-16/bin/pip install torch==2.13.0            # first, or pip picks a CUDA build
    /tmp/venv-16/bin/pip install --no-deps delve==0.1.50
    /tmp/venv-16/bin/pip install matplotlib pandas tensorboardX tqdm -e .
    /tmp/venv-16/bin/python benchmarks/overhead.py

The default network is VGG-style (benchmarks/_vgg.py: 8 conv layers of 64-512 channels with
batch norm, batch 64 of random 3 x 32 x 32 inputs, SGD); ``--model small`` is a 4-conv CNN.

Every configuration (untracked, each layerscope precision, Delve when it imports) trains its own
copy of the same network in this one process. Step ``i`` runs one training step of every
configuration, in an order rotated from step to step, so that a change in the machine's speed
(other processes, frequency scaling) hits all of them at nearly the same moment. The result of a
configuration is the median over steps of ``time(step i) / time(untracked step i)`` with the
interquartile range of those per-step ratios; milliseconds are printed only for scale. The end of
an epoch (eigendecompositions, records) happens once per epoch and is timed separately.

The "Gram floor" lines time what no tracker of full covariances can avoid: the Gram products of
all recorded layers' outputs alone (float32 and float64 full products, and the float32 lower
block triangle that layerscope forms on CPU), interleaved with untracked steps too.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _machine import cpu_line
from _vgg import MODELS, make_step

from layerscope import Tracker
from layerscope.stats.covariance import _gram


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(step: Callable[[], None], device: torch.device) -> float:
    _synchronise(device)
    start = time.perf_counter()
    step()
    _synchronise(device)
    return time.perf_counter() - start


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """(first quartile, median, third quartile)."""
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


def _delve_step(model: torch.nn.Module, folder: str, device: torch.device):
    """A training step of ``model`` under Delve 0.1.50's SaturationTracker, or None."""
    try:
        from delve import SaturationTracker
    except ImportError:
        return None
    SaturationTracker(
        str(Path(folder) / "delve"),
        save_to="csv",
        modules=model,
        device=str(device),
        stats=["lsat"],
    )
    return make_step(model, device=device)


def _gram_floor_step(
    model: torch.nn.Module, device: torch.device, dtype: torch.dtype, half: bool = False
):
    """A step that does the untracked step, then the Gram products of every recorded layer's
    output in ``dtype`` (outputs captured by hooks, multiplied after the step): one full
    product each, or with ``half`` the lower block triangle that layerscope forms on CPU."""
    captured: list[tuple[torch.Tensor, int]] = []

    def hook(module, args, output):
        feature_dim = 1 if output.dim() > 2 else -1
        captured.append((output.detach(), feature_dim))

    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d | torch.nn.Linear):
            module.register_forward_hook(hook)
    plain = make_step(model, device=device)
    buffers: dict[int, torch.Tensor] = {}

    def step() -> None:
        plain()
        for index, (output, feature_dim) in enumerate(captured):
            d = output.shape[feature_dim]
            rows = output.movedim(feature_dim, 0)
            buffer = buffers.get(index)
            if buffer is None:
                buffer = buffers[index] = torch.empty(rows.shape, dtype=dtype, device=device)
            buffer.copy_(rows)
            flat = buffer.view(d, -1)
            _gram(flat.T) if half else flat @ flat.T
        captured.clear()

    return step


def measure(model_name: str, steps: int, device: torch.device, floor: bool) -> None:
    torch.manual_seed(0)
    base = MODELS[model_name]().to(device)
    configurations: dict[str, Callable[[], None]] = {
        "untracked": make_step(copy.deepcopy(base), device=device)
    }
    trackers = {}
    for precision in ("float64", "mixed"):
        model = copy.deepcopy(base)
        trackers[precision] = Tracker(model, precision=precision)
        configurations[f"layerscope {precision}"] = make_step(model, device=device)
    with tempfile.TemporaryDirectory() as folder:
        delve = _delve_step(copy.deepcopy(base), folder, device)
        if delve is not None:
            configurations["delve 0.1.50"] = delve
        if floor:
            for dtype in (torch.float32, torch.float64):
                name = f"Gram floor {str(dtype)[6:]}"
                configurations[name] = _gram_floor_step(copy.deepcopy(base), device, dtype)
            configurations["Gram floor f32 half"] = _gram_floor_step(
                copy.deepcopy(base), device, torch.float32, half=True
            )
        names = list(configurations)
        for name in names:  # warm-up: allocator, first touch of buffers, Delve's setup
            configurations[name]()
        times: dict[str, list[float]] = {name: [] for name in names}
        for i in range(steps):
            shift = i % len(names)
            for name in names[shift:] + names[:shift]:
                times[name].append(_timed(configurations[name], device))
    end_of_epoch = {}
    for precision, tracker in trackers.items():
        start = time.perf_counter()
        tracker.end_epoch()
        end_of_epoch[precision] = time.perf_counter() - start
        tracker.close()

    untracked = times["untracked"]
    print(f"{'configuration':<20} {'median ms':>9} {'ratio':>7} {'IQR of ratios':>17}")
    for name in names:
        ratios = [t / u for t, u in zip(times[name], untracked, strict=True)]
        q1, median, q3 = quartiles(ratios)
        milliseconds = statistics.median(times[name]) * 1e3
        print(f"{name:<20} {milliseconds:>9.1f} {median:>7.3f} {q1:>8.3f} - {q3:.3f}")
    for precision, seconds in end_of_epoch.items():
        print(f"end_epoch ({precision}): {seconds * 1e3:.0f} ms once per epoch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="interleaved steps (>= 40)")
    parser.add_argument(
        "--model",
        choices=sorted(MODELS),
        default="vgg",
        help="vgg: 8 conv layers, 64-512 channels (default); small: 4 conv layers",
    )
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--no-floor", action="store_true", help="leave out the bare Gram products")
    parser.add_argument("--threads", type=int, help="torch's thread count (default: its own)")
    args = parser.parse_args()
    if args.steps < 4:
        parser.error("--steps must be at least 4 (quartiles)")
    device = torch.device(args.device)
    if args.threads:  # 1 gives tight ratios on a busy machine
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    print(
        f"torch {torch.__version__}, {threads} threads, device {device}, model {args.model}, "
        f"batch 64, 3x32x32, {args.steps} interleaved steps"
    )
    print(cpu_line())
    measure(args.model, args.steps, device, floor=not args.no_floor)


if __name__ == "__main__":
    main()
