"""Weight-spectrum metrics of the zoo's ResNet18 (CIFAR stem): layerscope against weightwatcher
0.7.7 on the same weights in one process (largest difference per metric, speed as a ratio), and
the cost of recording the frame potential per epoch.

weightwatcher is never a dependency of layerscope. Install it in a throwaway virtual environment
(torch first, pinned, so pip does not fetch another build):

    python3 -m venv /tmp/venv-ww
    /tmp/venv-ww/bin/pip install torch==2.13.0
    /tmp/venv-ww/bin/pip install weightwatcher==0.7.7
    PYTHONPATH=src /tmp/venv-ww/bin/python benchmarks/weights.py

Without weightwatcher the script still measures layerscope and the frame-potential cost.
Options: ``--checkpoint PATH`` (an epoch checkpoint of a trained resnet18_cifar run, e.g.
``logs/resnet18_cifar/digits/32/s0/checkpoints/epoch-0003.pt`` from
``examples/weights_resnet18_digits.toml``, with its ``--width``; default: the initial weights),
``--repeats N`` (timing repeats, best of), ``--seed S``, ``--width W``, ``--threads T``
(torch and BLAS threads, default 1: both libraries then run on the same single core, which keeps
the ratio stable on a shared machine).
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch

from layerscope.models import create_model
from layerscope.tracking.weights import WeightSnapshots
from layerscope.weights import weight_spectra

METRICS = ("alpha", "alpha_weighted", "log_norm", "log_spectral_norm", "stable_rank",
           "matrix_rank", "entropy", "lambda_max", "num_pl_spikes", "D", "xmin",
           "log_alpha_norm")  # fmt: skip
_WW_NAMES = {"lambda_max": "lambda_max", "matrix_rank": "matrix_rank", "entropy": "entropy"}


def _best_of(function, repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def _weightwatcher(model, repeats: int, randomize: bool):
    import weightwatcher

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    watcher = weightwatcher.WeightWatcher(model=model)
    return _best_of(lambda: watcher.analyze(randomize=randomize), repeats)


def compare(model, repeats: int) -> None:
    ours_time, ours = _best_of(lambda: weight_spectra(model, conv="slices"), repeats)
    print(f"layerscope weight_spectra(conv='slices'): {ours_time:.3f} s, {len(ours)} layers")
    try:
        ww_time, ww = _weightwatcher(model, repeats, randomize=False)
    except ImportError:
        print("weightwatcher is not installed: see this file's docstring for the comparison")
        return
    ww_default, _ = _weightwatcher(model, 1, randomize=True)
    ww = ww.set_index("longname") if "longname" in ww.columns else ww.set_index("name")
    ours = ours.set_index("layer")
    common = [layer for layer in ours.index if layer in ww.index]
    print(f"weightwatcher analyze(randomize=False): {ww_time:.3f} s, {len(ww)} layers, "
          f"{len(common)} in common")  # fmt: skip
    print(f"speed ratio (weightwatcher / layerscope): {ww_time / ours_time:.1f}x; "
          f"against weightwatcher's default analyze() (randomize=True, once): "
          f"{ww_default / ours_time:.1f}x")  # fmt: skip
    print(f"{'metric':>18}  {'max |diff|':>11}  {'max rel diff':>12}  worst layer")
    for metric in METRICS:
        a = ours.loc[common, metric].astype(float).to_numpy()
        b = ww.loc[common, _WW_NAMES.get(metric, metric)].astype(float).to_numpy()
        diff = np.abs(a - b)
        relative = diff / np.maximum(np.abs(b), 1e-300)
        worst = common[int(np.nanargmax(relative))] if len(common) else "-"
        print(f"{metric:>18}  {np.nanmax(diff):11.3e}  {np.nanmax(relative):12.3e}  {worst}")


def frame_potential_cost(model, repeats: int) -> None:
    layers = [(name, m) for name, m in model.named_modules()
              if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]  # fmt: skip
    with_fp = WeightSnapshots(layers, frame_potential=True)
    without = WeightSnapshots(layers, frame_potential=False)
    fp_time, _ = _best_of(with_fp.step, repeats)
    plain_time, _ = _best_of(without.step, repeats)
    print(f"weight snapshot per epoch: {plain_time * 1e3:.1f} ms without, {fp_time * 1e3:.1f} ms "
          f"with frame potential ({fp_time / plain_time:.1f}x), {len(layers)} layers")  # fmt: skip
    x = torch.randn(128, 3, 32, 32)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def step():
        optimizer.zero_grad()
        model(x).square().mean().backward()
        optimizer.step()

    batch_time, _ = _best_of(step, repeats)
    print(f"one training step of 128 images at 32 px: {batch_time * 1e3:.1f} ms; frame potential "
          f"per epoch = {fp_time / batch_time:.2f} training steps")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint", help="epoch checkpoint of a resnet18_cifar run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(args.threads)
    torch.manual_seed(args.seed)
    model = create_model("resnet18_cifar", num_classes=10, width=args.width)
    if args.checkpoint:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        print(f"weights of {args.checkpoint} (epoch {state['epoch']})")
    print(f"threads: {torch.get_num_threads()}")
    compare(model, args.repeats)
    frame_potential_cost(model, args.repeats)


if __name__ == "__main__":
    main()
