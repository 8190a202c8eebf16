"""Probe solvers on the same features: SAGA-100 (the dissertation's), sklearn's lbfgs, the default.

    python benchmarks/probes.py [--repeats 3] [--saga-repeats 1] [--threads 1] [--run RUN_DIR]
                                [--skip pixels 512 2048 vgg] [--matched]

Data: digits pixels (scikit-learn's 8 x 8 digits, 64 raw pixels, 1437 train + 360 test),
synthetic features, 20000 train + 5000 test samples of 512 and of 2048 features, 10
classes (class means in a 128-dimensional subspace, noise with a decaying spectrum, per-feature
offsets), and every layer of a VGG11 (width 1/4) trained for 3 epochs on digits at 32 x 32,
average-pooled to at most 4 x 4 (trained into a temporary folder unless --run gives a run folder).

Every solver fits a ``LogisticProbe`` (same standardisation, C = 1, tol = 1e-4, each solver's
default max_iter: SAGA 100 epochs, sklearn lbfgs 100 iterations, the default torch L-BFGS 500).
Configurations are interleaved (repeat 1 of everything, then repeat 2, ...) and the median time
is reported; every process-wide thread pool (torch, BLAS, OpenMP) is limited to --threads.
"objective" is the probe objective on the training set (float64; lower is closer to the common
minimum); "gap" is each solver's objective above the tight minimum, relative (the minimum from
sklearn's lbfgs on float64 features run to tol = 1e-10, untimed; summed over layers); ratios
are median times over the default's, measured in this run. ``--matched`` adds, for each data set
of one problem, scikit-learn's lbfgs at the default's accuracy: the first tol of 1e-4, 3e-5,
1e-5, ... 1e-9 (max_iter 10000) whose gap is at most the default's, or the one with the least
gap when none is, found untimed, then timed interleaved with the default.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _machine import cpu_line
from threadpoolctl import threadpool_limits

from layerscope.probes import LogisticProbe, probe_objective

SOLVERS = ("saga", "sklearn-lbfgs", "lbfgs")
LABELS = {"saga": "SAGA-100", "sklearn-lbfgs": "sklearn lbfgs", "lbfgs": "default"}


def synthetic(n_train: int, n_test: int, d: int, classes: int = 10, seed: int = 0, rank=128):
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    y = rng.integers(0, classes, n)
    basis = rng.standard_normal((rank, d)).astype(np.float32) / np.float32(np.sqrt(d))
    scales = (1.0 / np.arange(1, rank + 1) ** 0.5).astype(np.float32)
    means = rng.standard_normal((classes, rank)).astype(np.float32) * scales
    z = rng.standard_normal((n, rank)).astype(np.float32) * scales * 3
    x = ((z + means[y]) @ basis * np.float32(np.sqrt(d))).astype(np.float32)
    x += np.float32(0.5) * rng.standard_normal((n, d)).astype(np.float32)
    x += rng.standard_normal(d).astype(np.float32) * 2  # offsets: standardisation matters
    return [(x[:n_train], y[:n_train], x[n_train:], y[n_train:])]


def digits_pixels():
    """scikit-learn's 8 x 8 digits as 64 raw pixel features, a fixed stratified 80/20 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    split = train_test_split(X.astype(np.float32), y, test_size=0.2, random_state=0, stratify=y)
    X_train, X_test, y_train, y_test = split
    return [(X_train, y_train, X_test, y_test)]


def vgg_layers(run: str | None, folder: str):
    """(train X, train y, test X, test y) of every layer of a digits VGG run."""
    from layerscope.lab import load_config, probe_run
    from layerscope.lab.trainer import train_run
    from layerscope.probes import LatentManifest, manifest_path

    if run is None:
        cfg = load_config({"model": "vgg11", "width": 0.25, "dataset": "digits", "epochs": 3,
                           "resolution": 32, "device": "cpu", "logs_dir": folder,
                           "run_id": "bench"})[0]  # fmt: skip
        print("training vgg11 (width 1/4) on digits for 3 epochs ...", file=sys.stderr)
        run = train_run(cfg, progress=False).run_dir
    probe_run(run, report=False, progress=False)  # extracts the latents (avg4)
    run_id = json.loads((Path(run) / "config.json").read_text())["run_id"]
    manifest = LatentManifest.read(manifest_path(Path(run) / "latents", run_id, "avg4"))
    y_train, y_test = manifest.labels("train"), manifest.labels("test")
    return [
        (np.asarray(manifest.features(layer.name, "train")), y_train,
         np.asarray(manifest.features(layer.name, "test")), y_test)
        for layer in manifest.layers
    ]  # fmt: skip


def fit(solver: str, problems) -> dict:
    """Fit one probe per problem; totals over problems (one problem for synthetic data)."""
    seconds, iterations, converged, objective, train, test = 0.0, 0, 0, 0.0, [], []
    for X, y, X_test, y_test in problems:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            started = time.perf_counter()
            probe = LogisticProbe(solver=solver).fit(X, y)
            seconds += time.perf_counter() - started
        iterations += probe.n_iter_
        converged += probe.converged_
        objective += probe_objective(probe, X, y)
        train.append(probe.score(X, y))
        test.append(probe.score(X_test, y_test))
    return {"seconds": seconds, "iterations": iterations, "converged": converged,
            "objective": objective, "train": train, "test": test}  # fmt: skip


def tight_minimum(problems) -> float:
    """The objective at scikit-learn's lbfgs on float64 features run to tol = 1e-10 (summed over
    problems)."""
    total = 0.0
    for X, y, _, _ in problems:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            probe = LogisticProbe(
                solver="sklearn-lbfgs", tol=1e-10, max_iter=20_000, dtype="float64"
            ).fit(X, y)
        total += probe_objective(probe, X, y)
    return total


TOLERANCES = (1e-4, 3e-5, 1e-5, 3e-6, 1e-6, 3e-7, 1e-7, 3e-8, 1e-8, 3e-9, 1e-9)


def sklearn_at(tol: float, problems, repeats: int = 1):
    """sklearn lbfgs at ``tol`` (max_iter 10000): (median seconds, result of ``fit``)."""
    found = []
    for _ in range(repeats):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            X, y = problems[0][:2]
            started = time.perf_counter()
            probe = LogisticProbe(solver="sklearn-lbfgs", tol=tol, max_iter=10_000).fit(X, y)
            found.append((time.perf_counter() - started, probe))
    return statistics.median(seconds for seconds, _ in found), found[-1][1]


def matched(name: str, problems, minimum: float, repeats: int) -> None:
    """Print sklearn's lbfgs at the default's accuracy beside the default (see the docstring)."""
    X, y = problems[0][:2]

    def gap(probe) -> float:
        return (probe_objective(probe, X, y) - minimum) / abs(minimum)

    target = gap(LogisticProbe().fit(X, y))
    best = None  # (tol, gap, probe)
    for tol in TOLERANCES:
        probe = sklearn_at(tol, problems)[1]
        reached = gap(probe)
        if best is None or reached < best[1]:
            best = (tol, reached, probe)
        if reached <= target:
            break
    tol, _, probe = best
    times = {"sklearn": [], "default": []}
    for _ in range(repeats):
        times["sklearn"].append(sklearn_at(tol, problems)[0])
        started = time.perf_counter()
        LogisticProbe().fit(X, y)
        times["default"].append(time.perf_counter() - started)
    sk, ours = (statistics.median(times[key]) for key in ("sklearn", "default"))
    print(f"{name:<28} sklearn lbfgs at the default's gap {target:.1e}: tol {tol:g}, "
          f"{probe.n_iter_} iterations, gap {best[1]:.1e}, {sk:.3f} s against {ours:.3f} s: "
          f"{sk / ours:.2f} x default")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed fits per configuration")
    parser.add_argument(
        "--saga-repeats", type=int, default=1, help="SAGA is slow: fewer (0 leaves it out)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--run", help="a finished digits run folder to take the layers from")
    parser.add_argument(
        "--skip", nargs="*", default=[], help="data sets to leave out: pixels, 512, 2048, vgg"
    )
    parser.add_argument(
        "--matched", action="store_true", help="also sklearn lbfgs at the default's accuracy"
    )
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        data = {}
        if "pixels" not in args.skip:
            data["digits pixels 1437 x 64"] = digits_pixels()
        if "512" not in args.skip:
            data["synthetic 20k x 512"] = synthetic(20_000, 5_000, 512)
        if "2048" not in args.skip:
            data["synthetic 20k x 2048"] = synthetic(20_000, 5_000, 2048, seed=1)
        if "vgg" not in args.skip:
            layers = vgg_layers(args.run, folder)
            data[f"digits VGG11/4, {len(layers)} layers"] = layers
        print(f"torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} CPUs, "
              f"load average {load_before[0]:.2f} (1 min) at the start")  # fmt: skip
        print(cpu_line())
        runs: dict[tuple[str, str], list[dict]] = {}
        for repeat in range(max(args.repeats, args.saga_repeats)):
            for name, problems in data.items():
                for solver in SOLVERS:
                    limit = args.saga_repeats if solver == "saga" else args.repeats
                    if repeat < limit:
                        runs.setdefault((name, solver), []).append(fit(solver, problems))
        load_after = os.getloadavg()
        minima = {name: tight_minimum(problems) for name, problems in data.items()}
    header = (f"{'data':<28} {'solver':<14} {'seconds':>8} {'n':>2} {'iters':>6} {'conv':>5} "
              f"{'objective':>10} {'gap':>8} {'train acc':>9} {'test acc':>8} {'x default':>9}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for name in data:
        default = statistics.median(r["seconds"] for r in runs[(name, "lbfgs")])
        for solver in SOLVERS:
            if (name, solver) not in runs:
                continue
            found = runs[(name, solver)]
            median = statistics.median(r["seconds"] for r in found)
            last = found[-1]
            print(f"{name:<28} {LABELS[solver]:<14} {median:>8.2f} {len(found):>2} "
                  f"{last['iterations']:>6} {last['converged']:>2}/{len(last['test']):<2} "
                  f"{last['objective']:>10.5f} "
                  f"{(last['objective'] - minima[name]) / abs(minima[name]):>8.1e} "
                  f"{np.mean(last['train']):>9.4f} "
                  f"{np.mean(last['test']):>8.4f} {median / default:>9.2f}")  # fmt: skip
        f_default = runs[(name, "lbfgs")][-1]["objective"]
        f_sklearn = runs[(name, "sklearn-lbfgs")][-1]["objective"]
        print(f"{'':<28} default's objective relative to sklearn lbfgs's: "
              f"{(f_default - f_sklearn) / abs(f_sklearn):+.2e}")  # fmt: skip
        reference = np.array(runs[(name, "lbfgs")][-1]["test"])
        for solver in ("saga", "sklearn-lbfgs")[args.saga_repeats == 0 :]:
            other = np.array(runs[(name, solver)][-1]["test"])
            print(f"{'':<28} |test acc - default's| per layer, max: {LABELS[solver]} "
                  f"{np.abs(other - reference).max():.4f}")  # fmt: skip
    if args.matched:
        for name, problems in data.items():
            if len(problems) == 1:
                matched(name, problems, minima[name], args.repeats)
    print(f"load average {load_after[0]:.2f} (1 min) at the end; objective and accuracies of "
          f"the last repeat; several layers: times, iterations and objectives summed, "
          f"accuracies averaged")  # fmt: skip


if __name__ == "__main__":
    main()
