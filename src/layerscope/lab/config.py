"""Experiment configs: read, expand into a grid of runs, validate, resolve (SPEC C10).

A config is one mapping of keys to values in JSON (the format of PHD-Lab, dissertation 6.2.3;
``//`` comments allowed as in its listing 1), TOML or YAML. Its keys are the fields of
:class:`RunConfig`; ``optimizer`` and ``tracker`` are sections with their own keys. Everything is
checked before anything trains: an unknown key is rejected with the closest valid key suggested,
a wrong type names the key, the value and the expected type, names of models, datasets,
optimizers, metrics and statistics are looked up in their registries, and ``model_kwargs`` /
``dataset_kwargs`` are checked against the factory's parameters.

Grids. Any list expands into one run per element, and several lists into their cartesian
product (PHD-Lab's rule), ordered like nested loops over the keys in file order, the last
varying fastest. Two kinds of key take lists as their value, and there the rule is by type:

- keys whose value is a list of names (``metrics``, ``tracker.statistics``, ``tracker.include``,
  ``tracker.exclude``): a list of names is ONE value; a list of lists sweeps
  (``metrics = [["accuracy"], ["accuracy", "top5"]]`` is two runs);
- sections (``optimizer``, ``tracker``): a list of tables sweeps whole sections, and lists inside
  a section sweep as anywhere else. ``optimizer = "adam"`` is short for ``{name = "adam"}``.

Anywhere, a table with the single key ``value`` passes its content as one value, unexpanded:
``model_kwargs = {channels = {value = [64, 128]}}`` gives the model ``channels=[64, 128]``.
TOML has no null: write the string ``"none"`` for an optional number or list
(``tracker.downsample = "none"``).

Run folders. Each run writes to ``<logs_dir>/<model>/<dataset>/<resolution>/<run_id>``
(:func:`run_dir`, dissertation 6.2.4). A relative ``logs_dir`` in a config file (and the
default ``"logs"``) is relative to the file's folder; in a mapping, to the working directory.
``run_id`` defaults to ``"{hash}"``: the first 8 hex digits of the SHA-256 of the resolved
config without the technical keys that do not change the result (``logs_dir``, ``device``,
``num_workers``, ``probes``, ``probe_preset``, ``live_report``, ``checkpoints``,
``on_nonfinite``, ``run_id`` and the technical tracker options), so the same config run from another directory, or copied
to another folder, keeps its run ids. Re-running a config therefore finds its folders again,
also after other values were added to the grid; changing any experimental value (or a
default, in a later version) gives a new folder. ``run_id`` may be a template over the
config's keys, such as ``"w{width}-s{seed}"`` or ``"{optimizer.lr}-{hash}"``.
Two runs of one grid that would share a folder are an error.

Example:
    >>> from layerscope.registry import MODELS
    >>> MODELS.add("doc_mlp", lambda width=1.0: None)
    >>> runs = load_config({"model": "doc_mlp", "width": [1, "1/2"], "epochs": 2, "run_id": "w{width}"})
    >>> [(run.width, run.optimizer.name, run.optimizer.lr) for run in runs]
    [(1.0, 'adam', 0.001), (0.5, 'adam', 0.001)]
    >>> run_dir(runs[1]).as_posix()
    'logs/doc_mlp/digits/32/w0.5'
    >>> _ = MODELS.remove("doc_mlp")
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from os import PathLike
from pathlib import Path
from typing import Any, ClassVar

from layerscope.errors import ConfigError
from layerscope.lab.config_check import (
    Context,
    apply_aliases,
    build,
    expand_mapping,
    flatten_keys,
)
from layerscope.lab.config_files import anchor_logs_dir, read_config_file
from layerscope.lab.config_resolve import (
    DEVICE,
    format_width,
    plain,
    resolve,
    resolve_device,
    sequence_arguments,
)
from layerscope.probes.results import PROBE_PRESETS
from layerscope.tracking.options import TrackerOptions, rule

__all__ = [
    "GRID_KEYS",
    "CheckpointConfig",
    "OptimizerConfig",
    "RunConfig",
    "TrackerOptions",
    "describe_runs",
    "expand",
    "format_width",
    "load_config",
    "read_config",
    "read_config_file",
    "resolve_device",
    "run_dir",
]


def _positive(value) -> bool:
    return value > 0


def _at_least_one(value) -> bool:
    return value >= 1


def _parse_width(value):
    """Width factors may be written as fractions: "1/4" -> 0.25."""
    if isinstance(value, str):
        try:
            return float(Fraction(value.strip()))
        except (ValueError, ZeroDivisionError):
            return value  # left for the type check to reject with its message
    return value


def _int_to_str(value):
    """run_id = 3 names the folder "3"."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


#: Keys of the whole grid, not of a run: read by :mod:`layerscope.lab.grid`, never expanded.
GRID_KEYS = ("executor",)


# --------------------------------------------------------------------------- the schema
@dataclass(frozen=True)
class OptimizerConfig:
    """How the weights are updated (registry OPTIMIZERS, :mod:`layerscope.lab.optimizers`)."""

    #: ``optimizer = "adam"`` stands for ``optimizer = {name = "adam"}``.
    SHORTHAND: ClassVar[str] = "name"

    # Registered optimizer name; Adam is the dissertation's choice (ch. 7, 8).
    name: str = "adam"
    # Learning rate; None takes the optimizer's default (adam 1e-3, sgd 0.01) and is resolved
    # to that number so the run folder's config records it.
    lr: float | None = field(default=None, metadata=rule("> 0", _positive))
    # SGD / RMSprop momentum, Adam's beta1; None: the optimizer's default.
    momentum: float | None = field(default=None, metadata=rule("in [0, 1)", lambda v: 0 <= v < 1))
    # L2 penalty (decoupled for AdamW); None: the optimizer's default.
    weight_decay: float | None = field(default=None, metadata=rule(">= 0", lambda v: v >= 0))
    # Step schedule (PHD-Lab): multiply lr by `factor` every `step` epochs; None: constant lr.
    step: int | None = field(default=None, metadata=rule(">= 1", _at_least_one))
    factor: float = field(default=0.1, metadata=rule("> 0", _positive))


def _keep_all(value):
    """checkpoints.keep = "all" keeps every epoch (stored as null in config.json)."""
    return None if isinstance(value, str) and value.lower() == "all" else value


@dataclass(frozen=True)
class CheckpointConfig:
    """Which epoch checkpoints a run keeps (:mod:`layerscope.lab.checkpoint`)."""

    # The newest N are kept; two is enough to resume past a damaged newest one. "all" keeps
    # every epoch, which `layerscope weights RUN_DIR` needs to analyse weights over training.
    keep: int | None = field(default=2, metadata={**rule(">= 1 or 'all'", _at_least_one),
                                                  "parse": _keep_all})  # fmt: skip


@dataclass(frozen=True)
class RunConfig:
    """One training run, fully resolved (no lists left to expand, no defaults left open)."""

    # Registered model name (MODELS), e.g. "vgg11". The only required key.
    model: str = field(metadata={"help": "the registered model to train, e.g. 'vgg11'"})
    # Registered dataset name (DATASETS); digits is embedded and needs no download.
    dataset: str = "digits"
    # Side of the square input images in pixels; part of the run folder path (6.2.4).
    resolution: int = field(default=32, metadata=rule(">= 1", _at_least_one))
    # The dissertation trains 30 epochs unless stated otherwise (ch. 7).
    epochs: int = field(default=30, metadata=rule(">= 1", _at_least_one))
    # The dissertation's batch size (ch. 7, listing 1).
    batch_size: int = field(default=64, metadata=rule(">= 1", _at_least_one))
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    # Seeds torch, numpy, random, data-loader workers and augmentation.
    seed: int = field(default=0, metadata=rule("in [0, 2**63)", lambda v: 0 <= v < 2**63))
    # Registered metric names (METRICS) computed on train and test each epoch.
    metrics: tuple[str, ...] = ("accuracy", "top5")
    tracker: TrackerOptions = field(default_factory=TrackerOptions)
    # Root of the run folders.
    logs_dir: str = "logs"
    # "auto" picks cuda, then mps, then cpu (resolve_device); the config stays portable.
    device: str = field(
        default="auto",
        metadata=rule("'auto', 'cpu', 'mps', 'cuda' or 'cuda:N'", DEVICE.fullmatch),
    )
    # Folder name of the run, a template over the keys; "{hash}" when None (module docstring).
    run_id: str | None = field(default=None, metadata={"parse": _int_to_str})
    # Width factor of the model (1, 1/2, 1/4, ...; fractions as strings allowed).
    width: float = field(default=1.0, metadata={**rule("> 0", _positive), "parse": _parse_width})
    # Extra keyword arguments for the model factory (checked against its signature).
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    # Extra keyword arguments for the dataset factory, e.g. root, canvas, channels.
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)
    # Train logistic-regression probes after training (SPEC C6).
    probes: bool = False
    # Their recipe: "standardized" (default) or "dissertation" (SAGA, 100 epochs, raw features).
    probe_preset: str = field(
        default="standardized",
        metadata=rule("'standardized' or 'dissertation'", lambda v: v in PROBE_PRESETS),
    )
    # Rewrite the run's report.html at every epoch end; false: only when the run ends (a grid of
    # many short runs spends less time on reports).
    live_report: bool = True
    # Data-loader worker processes; 0 loads in the training process.
    num_workers: int = field(default=0, metadata=rule(">= 0", lambda v: v >= 0))
    # Checkpoints kept per run: checkpoints.keep = 2 (default) or "all".
    checkpoints: CheckpointConfig = field(default_factory=CheckpointConfig)
    # A NaN or infinite loss: "stop" ends the run at that epoch as diverged (non-zero exit);
    # "continue" trains on (still marked diverged).
    on_nonfinite: str = field(
        default="stop",
        metadata=rule("'stop' or 'continue'", lambda v: v in ("stop", "continue")),
    )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> RunConfig:
        """Validate one run's mapping (no grid: lists are values here) and resolve defaults.

        Example:
            >>> from layerscope.registry import MODELS
            >>> MODELS.add("doc_net", lambda width=1.0: None)
            >>> cfg = RunConfig.from_dict({"model": "doc_net", "optimizer": {"name": "sgd"}})
            >>> cfg.optimizer.lr, cfg.optimizer.momentum, len(cfg.run_id)
            (0.01, 0.9, 8)
            >>> RunConfig.from_dict(cfg.to_dict()) == cfg
            True
            >>> _ = MODELS.remove("doc_net")
        """
        context = Context(cls, source)
        config = build(cls, apply_aliases(data, context), "", context)
        return resolve(config, context)

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain JSON-able data; ``from_dict`` of it gives this run back.

        Example:
            >>> RunConfig(model="m", run_id="x").to_dict()["optimizer"]["name"]
            'adam'
        """
        return plain(self)


# --------------------------------------------------------------------------- resolution
def expand(config: Mapping[str, Any], *, source: str | None = None) -> list[dict[str, Any]]:
    """The grid of runs a config describes, as raw mappings (validated by ``from_dict``).

    Example:
        >>> runs = expand({"model": ["a", "b"], "width": [1, 0.5], "metrics": ["accuracy", "top5"]})
        >>> [(r["model"], r["width"]) for r in runs]
        [('a', 1), ('a', 0.5), ('b', 1), ('b', 0.5)]
        >>> runs[0]["metrics"]
        ['accuracy', 'top5']
    """
    return expand_mapping(sequence_arguments(config), Context(RunConfig, source))


def _describe_combo(run: Mapping, swept: Sequence[str]) -> str:
    flat = flatten_keys(run)
    return ", ".join(f"{k}={flat[k]!r}" for k in swept if k in flat)


def _swept_keys(dicts: Sequence[Mapping]) -> list[str]:
    flats = [flatten_keys(d) for d in dicts]
    keys = list(dict.fromkeys(k for f in flats for k in f))
    return [
        k
        for k in keys
        if len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flats}) > 1
    ]


def read_config(path: str | Path) -> dict[str, Any]:
    """A config file's mapping (:func:`read_config_file`) with a relative ``logs_dir``, or the
    default ``"logs"``, resolved against the file's folder (:func:`anchor_logs_dir`).

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "c.toml"
        >>> _ = path.write_text('model = "vgg11"')
        >>> read_config(path)["logs_dir"] == (path.parent / "logs").as_posix()
        True
    """
    default = RunConfig.__dataclass_fields__["logs_dir"].default
    return anchor_logs_dir(read_config_file(path), Path(path).parent, default)


def load_config(
    config: str | Path | Mapping[str, Any], *, source: str | None = None
) -> list[RunConfig]:
    """Read a config file (or take a mapping), expand its grid, validate and resolve every run.

    Raises :class:`~layerscope.errors.ConfigError` (or its subclasses) naming the file, the run
    of the grid and the key when anything is wrong, and when two runs would share a folder.
    ``source`` names a mapping's origin in those messages (a path names itself). A file's
    relative ``logs_dir`` is relative to the file's folder (:func:`read_config`); a mapping's
    to the working directory.

    Example:
        >>> from layerscope.registry import MODELS
        >>> MODELS.add("doc_cnn", lambda width=1.0: None)
        >>> grid = load_config({"model": "doc_cnn", "seed": [0, 1], "optimizer": "sgd"})
        >>> [(run.seed, run.optimizer.lr) for run in grid]
        [(0, 0.01), (1, 0.01)]
        >>> load_config({"model": "doc_cnn", "optimizer": {"lr": "high"}})
        Traceback (most recent call last):
        ...
        layerscope.errors.ConfigTypeError: config: key 'optimizer.lr' = 'high' (str) should be a number or none
        >>> _ = MODELS.remove("doc_cnn")
    """
    if isinstance(config, (str, PathLike)):
        source = str(config)
        config = read_config(config)
    if isinstance(config, Mapping):
        config = {key: value for key, value in config.items() if key not in GRID_KEYS}
    raw_runs = expand_mapping(sequence_arguments(config), Context(RunConfig, source))
    swept = _swept_keys(raw_runs)
    runs = []
    for index, raw in enumerate(raw_runs):
        label = f"run {index + 1} of {len(raw_runs)}"
        if swept:
            label += f" ({_describe_combo(raw, swept)})"
        context = Context(RunConfig, source, label if len(raw_runs) > 1 else None)
        runs.append(resolve(build(RunConfig, raw, "", context), context))
    folders: dict[Path, int] = {}
    for index, run in enumerate(runs):
        folder = run_dir(run)
        if folder in folders:
            first = folders[folder]
            a, b = flatten_keys(runs[first].to_dict()), flatten_keys(run.to_dict())
            differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
            how = (f"They differ only in {', '.join(differ)}, which run_id does not tell apart"
                   if differ else "They are identical")  # fmt: skip
            example = differ[0] if differ else "seed"
            raise ConfigError(
                f"config {source or '<mapping>'}: runs {first + 1} and {index + 1} would both write "
                f"to {folder}. {how}; drop the duplicate, or make run_id tell them apart, e.g. "
                f'run_id = "{{{example}}}-{{hash}}"'
            )
        folders[folder] = index
    return runs


def run_dir(config: RunConfig) -> Path:
    """``<logs_dir>/<model>/<dataset>/<resolution>/<run_id>`` (dissertation 6.2.4, figure 42).

    Example:
        >>> run_dir(RunConfig(model="vgg11", run_id="a1")).as_posix()
        'logs/vgg11/digits/32/a1'
    """
    if config.run_id is None:
        raise ConfigError(
            "run_dir needs a resolved run_id: build the config with from_dict or load_config"
        )
    return (
        Path(config.logs_dir)
        / config.model
        / config.dataset
        / str(config.resolution)
        / config.run_id
    )


def describe_runs(configs: Sequence[RunConfig]) -> str:
    """The expanded runs, one line each with what varies and where it writes (for --dry-run).

    Example:
        >>> runs = [RunConfig(model="vgg11", width=w, run_id=f"w{w}") for w in (1.0, 0.5)]
        >>> print(describe_runs(runs))
        2 runs: model='vgg11', dataset='digits', resolution=32, epochs=30, batch_size=64, optimizer=adam, seed=0, device='auto'
          varying: width
          run 1/2  width=1    -> logs/vgg11/digits/32/w1.0
          run 2/2  width=1/2  -> logs/vgg11/digits/32/w0.5
    """
    if not configs:
        return "0 runs"
    dicts = [c.to_dict() for c in configs]
    swept = [k for k in _swept_keys(dicts) if k != "run_id"]
    first = configs[0]
    common = {
        "model": first.model, "dataset": first.dataset, "resolution": first.resolution,
        "epochs": first.epochs, "batch_size": first.batch_size,
    }  # fmt: skip
    shown = [f"{k}={v!r}" for k, v in common.items() if k not in swept]
    if not any(k.startswith("optimizer.") for k in swept):
        shown.append(f"optimizer={first.optimizer.name}")
    shown += [f"{k}={getattr(first, k)!r}" for k in ("seed", "device") if k not in swept]
    lines = [f"{len(configs)} run{'s' * (len(configs) != 1)}: {', '.join(shown)}"]
    if swept:
        lines.append(f"  varying: {', '.join(swept)}")
    cells = []
    for d in dicts:
        flat = flatten_keys(d)
        cells.append(
            "  ".join(f"{k}={format_width(flat[k]) if k == 'width' else flat[k]}" for k in swept)
        )
    width = max(map(len, cells))
    total = len(configs)
    for i, (config, cell) in enumerate(zip(configs, cells, strict=True)):
        lines.append(
            f"  run {i + 1}/{total}  {cell:<{width}}  -> {run_dir(config).as_posix()}".rstrip()
        )
    return "\n".join(lines)
