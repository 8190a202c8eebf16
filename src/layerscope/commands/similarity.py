"""``layerscope similarity``: CCA, SVCCA, PWCCA and CKA between two saved activation matrices, or
layer by layer between two trained runs (SPEC C9).

- ``layerscope similarity a.npy b.npy``: activations a user saved (e.g. with
  ``np.save("a.npy", layer_output.numpy())``) over the same samples in the same order; every
  measure is printed, a measure that cannot be computed as ``n/a: reason``.
- ``layerscope similarity RUN_A RUN_B``: two run folders of the trainer, compared by
  :func:`layerscope.lab.compare_runs` (every recorded layer of A against every one of B on run
  A's data split). The matrix is printed; ``--out`` writes it as a heatmap.
- ``layerscope similarity RUN_DIR --over-epochs``: every recorded layer at each kept checkpoint
  against itself at the last (:func:`layerscope.lab.similarity_epochs.similarity_over_epochs_run`),
  written to the run folder and shown in its report.

CKA is the unbiased estimator everywhere (docs/similarity.md); ``cka_biased`` is Kornblith et
al.'s biased one (``cka_unbiased`` is accepted as another name for ``cka``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from layerscope.errors import LayerscopeError, OptionError, RunFolderError

MEASURE_NAMES = ("cca", "svcca", "pwcca", "cka", "cka_biased")
#: Accepted as --measure too: the name of the unbiased CKA before it became the default.
ALIASES = {"cka_unbiased": "cka"}


def _measure_errors() -> tuple[type[BaseException], ...]:
    """What a single measure may fail with and still leave the others to print: a user-level
    error, or linear algebra that did not converge on these data."""
    import torch

    return (LayerscopeError, ArithmeticError, torch.linalg.LinAlgError)


#: Options that only mean something when comparing two runs.
_RUN_OPTIONS = ("split", "max_batches", "batch_size", "device", "out")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "similarity",
        help="CCA, SVCCA, PWCCA and CKA between two activation files, or layer by layer "
        "between two trained runs",
        description="Two activation files (.npy, or .pt holding one tensor) over the same "
        "samples: every measure once (a (N, C, H, W) feature map needs --spatial). Two run "
        "folders: every recorded layer of RUN_A against every one of RUN_B on RUN_A's data "
        "split, printed as a matrix and, with --out, drawn as a heatmap.",
    )
    parser.add_argument("x", help="first activations (.npy or .pt), or run folder RUN_A")
    parser.add_argument(
        "y", nargs="?", help="second activations (same samples, same order), or RUN_B"
    )
    parser.add_argument(
        "--over-epochs",
        action="store_true",
        help="one run folder: each recorded layer at every kept checkpoint against the last "
        "(cka, or --measure svcca / all); written to RUN/similarity_over_epochs.json and the "
        "report",
    )
    parser.add_argument(
        "--measure",
        choices=(*MEASURE_NAMES, *ALIASES, "all"),
        help="files: which measure to print (default: all); runs: cka (default, minibatch "
        "unbiased CKA), cca, svcca, pwcca or all",
    )
    parser.add_argument(
        "--spatial",
        choices=("positions", "pool", "flatten"),
        help="feature maps: positions as samples, average-pool, or flatten (runs: flatten for "
        "cka, pool for the CCA family)",
    )
    parser.add_argument(
        "--variance", type=float, default=0.99, help="SVCCA variance fraction (0.99)"
    )
    runs = parser.add_argument_group("two runs")
    runs.add_argument("--split", choices=("test", "train"), help="RUN_A's split to run (test)")
    runs.add_argument("--max-batches", type=int, metavar="N", help="stop after N batches")
    runs.add_argument("--batch-size", type=int, help="batch size (RUN_A's)")
    runs.add_argument("--device", help="cpu, cuda, ... (default: RUN_A's config)")
    runs.add_argument(
        "--out",
        metavar="PATH",
        help="write the heatmap there (.png, .pdf, .svg, ...); with --measure all one file per "
        "measure, named <stem>-<measure><suffix>",
    )
    parser.set_defaults(handler=run)


def _load(path: str):
    import numpy as np
    import torch

    if not Path(path).is_file():
        raise RunFolderError(
            f"{path} does not exist; give two activation files (.npy, .pt) or two run folders"
        )
    if Path(path).stat().st_size == 0:
        raise OptionError(f"{path} is empty; save the activations again (np.save / torch.save)")
    if path.endswith(".npy"):
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, EOFError, OSError) as error:
            raise OptionError(f"{path} is not a readable .npy file ({error})") from None
    if path.endswith((".pt", ".pth")):
        try:
            value = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # a damaged file fails in many ways inside torch.load
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise OptionError(f"{path} is not a readable torch file ({first})") from None
        if not isinstance(value, torch.Tensor):
            raise OptionError(f"{path}: expected one saved tensor, got {type(value).__name__}")
        return value
    raise OptionError(
        f"{path}: unknown file type; save activations as .npy or .pt, or give two run folders"
    )


def _each(names, compute, show) -> None:
    """``compute(name)`` for every measure, shown with ``show``; a failing one prints
    ``n/a: reason``. Raises the last error only when every measure failed."""
    errors = []
    for name in names:
        try:
            result = compute(name)
        except _measure_errors() as error:
            reason = str(error) if isinstance(error, LayerscopeError) else repr(error)
            print(f"  {name:<14} n/a: {reason}")
            errors.append(error)
            continue
        show(name, result)
    if len(errors) == len(names):
        raise errors[-1]


def run(args: argparse.Namespace) -> int:
    if args.over_epochs:
        return _over_epochs(args)
    if args.y is None:
        raise OptionError(
            f"give a second activation file or run folder after {args.x!r}, or --over-epochs "
            f"to compare one run's epochs"
        )
    folders = [Path(p).is_dir() for p in (args.x, args.y)]
    if all(folders):
        return _compare_runs(args)
    if any(folders):
        raise OptionError(
            f"give two activation files or two run folders, got {args.x!r} and {args.y!r}"
        )
    given = [f"--{o.replace('_', '-')}" for o in _RUN_OPTIONS if getattr(args, o) is not None]
    if given:
        raise OptionError(f"{', '.join(given)} only apply when comparing two run folders")
    return _compare_files(args)


def _compare_files(args: argparse.Namespace) -> int:
    from layerscope.similarity import cca, cka, pwcca, svcca

    x, y = _load(args.x), _load(args.y)
    options = dict(spatial=args.spatial)
    measures = {
        "cca": lambda: cca(x, y, **options).similarity,
        "svcca": lambda: svcca(x, y, variance=args.variance, **options).similarity,
        "pwcca": lambda: pwcca(x, y, **options).similarity,
        "cka": lambda: cka(x, y, **options),
        "cka_biased": lambda: cka(x, y, unbiased=False, **options),
    }
    measure = ALIASES.get(args.measure, args.measure)
    chosen = MEASURE_NAMES if measure in (None, "all") else (measure,)
    print(f"{args.x} {tuple(x.shape)} vs {args.y} {tuple(y.shape)}")
    _each(chosen, lambda name: measures[name](), lambda name, v: print(f"  {name:<14} {v:.6f}"))
    return 0


def _compare_runs(args: argparse.Namespace) -> int:
    from layerscope.lab.compare import RunPair
    from layerscope.similarity.measures import MEASURES

    measure = ALIASES.get(args.measure, args.measure)
    if measure == "cka_biased":
        raise OptionError(
            "--measure cka_biased is for activation files; between runs, cka is the unbiased "
            "minibatch CKA (the biased estimator depends on the batch size)"
        )
    chosen = tuple(MEASURES.list()) if measure == "all" else (measure or "cka",)
    if args.out is not None:
        _check_image_suffix(args.out)
    pair = RunPair.open(args.x, args.y, split=args.split or "test", batch_size=args.batch_size,
                        device=args.device)  # fmt: skip
    cfg_a, cfg_b = pair.config_a, pair.config_b
    names = _labels(args.x, args.y)
    print(f"rows: {names[0]} ({cfg_a.model}), columns: {names[1]} ({cfg_b.model}); inputs: "
          f"{pair.split} split of {cfg_a.dataset} at {cfg_a.resolution} px (run A's data)")  # fmt: skip
    if (cfg_b.dataset, cfg_b.resolution) != (cfg_a.dataset, cfg_a.resolution):
        print(f"note: run B was trained on {cfg_b.dataset} at {cfg_b.resolution} px")

    def compute(name: str):
        return pair.similarity(name, spatial=args.spatial, max_batches=args.max_batches,
                               variance=args.variance)  # fmt: skip

    def show(name: str, matrix) -> None:
        print(f"{name} ({matrix.num_samples} samples, spatial={matrix.spatial}):")
        print(_table(matrix))
        if args.out is not None:
            from layerscope.report.similarity import plot_similarity_matrix

            path = Path(args.out)
            if len(chosen) > 1:
                path = path.with_name(f"{path.stem}-{name}{path.suffix}")
            plot_similarity_matrix(matrix, path=path, labels=names)
            print(f"heatmap: {path}")

    _each(chosen, compute, show)
    return 0


def _over_epochs(args: argparse.Namespace) -> int:
    from layerscope.lab.similarity_epochs import MEASURES, similarity_over_epochs_run
    from layerscope.report.similarity import OVER_EPOCHS_FILE, plot_similarity_over_epochs

    if args.y is not None or not Path(args.x).is_dir():
        raise OptionError(
            f"--over-epochs takes one run folder, got {' and '.join(filter(None, (args.x, args.y)))}"
        )
    measure = ALIASES.get(args.measure, args.measure) or "cka"
    chosen = MEASURES if measure == "all" else (measure,)
    if args.out is not None:
        _check_image_suffix(args.out)
    results = similarity_over_epochs_run(
        args.x, measures=chosen, split=args.split or "test", batch_size=args.batch_size,
        max_batches=args.max_batches, spatial=args.spatial, device=args.device,
    )  # fmt: skip
    import pandas as pd

    for name, result in results.items():
        print(f"{name} against epoch {result.reference_epoch} ({result.num_samples} samples, "
              f"spatial={result.spatial}):")  # fmt: skip
        frame = pd.DataFrame(result.values, index=list(result.epochs), columns=list(result.layers))
        print(frame.rename_axis("epoch").to_string(float_format=lambda v: f"{v:.3f}", na_rep="n/a"))
        if args.out is not None:
            path = Path(args.out)
            if len(results) > 1:
                path = path.with_name(f"{path.stem}-{name}{path.suffix}")
            plot_similarity_over_epochs(result, path=path)
            print(f"figure: {path}")
    print(f"written: {Path(args.x) / OVER_EPOCHS_FILE}; report: {Path(args.x) / 'report.html'}")
    return 0


def _check_image_suffix(out: str) -> None:
    from matplotlib.figure import Figure

    formats = Figure().canvas.get_supported_filetypes()
    if Path(out).suffix.lower().lstrip(".") not in formats:
        raise OptionError(
            f"--out {out!r} needs an image suffix matplotlib writes: .png, .pdf, .svg, "
            f"... ({', '.join(sorted(formats))})"
        )


def _labels(a: str, b: str) -> tuple[str, str]:
    """Short names of the two runs for the table and the heatmap's axes."""
    short = Path(a).resolve().name, Path(b).resolve().name
    return short if short[0] != short[1] else (str(a), str(b))


def _table(matrix) -> str:
    import pandas as pd

    frame = pd.DataFrame(matrix.values, index=list(matrix.rows), columns=list(matrix.cols))
    return frame.to_string(float_format=lambda v: f"{v:.3f}", na_rep="n/a")
