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
(:func:`run_dir`, dissertation 6.2.4). ``run_id`` defaults to ``"{hash}"``: the first 8 hex
digits of the SHA-256 of the resolved config without the technical keys that do not change the
result (``logs_dir``, ``device``, ``num_workers``, ``probes``, ``run_id``). Re-running a config
therefore finds its folders again, also after other values were added to the grid; changing any
experimental value (or a default, in a later version) gives a new folder. ``run_id`` may be a
template over the config's keys, such as ``"w{width}-s{seed}"`` or ``"{optimizer.lr}-{hash}"``.
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

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import json
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass, replace
from fractions import Fraction
from os import PathLike
from pathlib import Path
from typing import Any, ClassVar, Literal

from layerscope.errors import ConfigError, ConfigKeyError
from layerscope.lab.config_check import Context, apply_aliases, build, expand_mapping
from layerscope.lab.config_files import read_config_file
from layerscope.stats.spectrum import DEFAULT_DELTA, DEFAULT_STATISTICS

__all__ = [
    "OptimizerConfig",
    "RunConfig",
    "TrackerConfig",
    "describe_runs",
    "expand",
    "format_width",
    "load_config",
    "read_config_file",
    "resolve_device",
    "run_dir",
]

#: Keys that do not change what a run computes: left out of the default run id's hash.
TECHNICAL_KEYS = ("logs_dir", "device", "num_workers", "probes", "run_id")
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
_RUN_ID_CHARS = re.compile(r"[A-Za-z0-9._=+,@-]+")


def _check(rule: str, test) -> dict:
    """Field metadata: ``test(value)`` must hold, else the error says ``rule``."""
    return {"rule": rule, "test": test}


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
    lr: float | None = field(default=None, metadata=_check("> 0", _positive))
    # SGD / RMSprop momentum, Adam's beta1; None: the optimizer's default.
    momentum: float | None = field(default=None, metadata=_check("in [0, 1)", lambda v: 0 <= v < 1))
    # L2 penalty (decoupled for AdamW); None: the optimizer's default.
    weight_decay: float | None = field(default=None, metadata=_check(">= 0", lambda v: v >= 0))
    # Step schedule (PHD-Lab): multiply lr by `factor` every `step` epochs; None: constant lr.
    step: int | None = field(default=None, metadata=_check(">= 1", _at_least_one))
    factor: float = field(default=0.1, metadata=_check("> 0", _positive))


@dataclass(frozen=True)
class TrackerConfig:
    """What the Tracker records (SPEC C1-C3); defaults follow Delve and the dissertation."""

    # Registered spectrum statistics written per layer and phase.
    statistics: tuple[str, ...] = DEFAULT_STATISTICS
    # Fraction of variance for intrinsic dimension and saturation (dissertation 8.1: 0.99).
    delta: float = field(default=DEFAULT_DELTA, metadata=_check("in (0, 1]", lambda v: 0 < v <= 1))
    # Layer name patterns (fnmatch) to record; None records every recordable layer.
    include: tuple[str, ...] | None = None
    # Layer name patterns to leave out.
    exclude: tuple[str, ...] = ()
    # float64 is what the dissertation insists on; "mixed" (float32 batch Gram) is faster.
    precision: Literal["float64", "mixed"] = "float64"
    # Shrink feature maps to at most this size before accumulating (Delve); None keeps them.
    downsample: int | None = field(default=None, metadata=_check(">= 1", _at_least_one))
    downsample_method: Literal["adaptive_avg", "nearest", "bilinear"] = "adaptive_avg"
    # Record every n-th batch only (Delve's option for long epochs).
    every_n_batches: int = field(default=1, metadata=_check(">= 1", _at_least_one))
    # Stop recording after this many batches per phase; None records all.
    max_batches: int | None = field(default=None, metadata=_check(">= 1", _at_least_one))
    # Cap the samples (rows / positions) one batch contributes per layer; None keeps all.
    max_samples: int | None = field(default=None, metadata=_check(">= 2", lambda v: v >= 2))


@dataclass(frozen=True)
class RunConfig:
    """One training run, fully resolved (no lists left to expand, no defaults left open)."""

    # Registered model name (MODELS), e.g. "vgg11". The only required key.
    model: str = field(metadata={"help": "the registered model to train, e.g. 'vgg11'"})
    # Registered dataset name (DATASETS); digits is embedded and needs no download.
    dataset: str = "digits"
    # Side of the square input images in pixels; part of the run folder path (6.2.4).
    resolution: int = field(default=32, metadata=_check(">= 1", _at_least_one))
    # The dissertation trains 30 epochs unless stated otherwise (ch. 7).
    epochs: int = field(default=30, metadata=_check(">= 1", _at_least_one))
    # The dissertation's batch size (ch. 7, listing 1).
    batch_size: int = field(default=64, metadata=_check(">= 1", _at_least_one))
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    # Seeds torch, numpy, random, data-loader workers and augmentation.
    seed: int = field(default=0, metadata=_check("in [0, 2**63)", lambda v: 0 <= v < 2**63))
    # Registered metric names (METRICS) computed on train and test each epoch.
    metrics: tuple[str, ...] = ("accuracy", "top5")
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    # Root of the run folders.
    logs_dir: str = "logs"
    # "auto" picks cuda, then mps, then cpu (resolve_device); the config stays portable.
    device: str = field(
        default="auto",
        metadata=_check("'auto', 'cpu', 'mps', 'cuda' or 'cuda:N'", _DEVICE.fullmatch),
    )
    # Folder name of the run, a template over the keys; "{hash}" when None (module docstring).
    run_id: str | None = field(default=None, metadata={"parse": _int_to_str})
    # Width factor of the model (1, 1/2, 1/4, ...; fractions as strings allowed).
    width: float = field(default=1.0, metadata={**_check("> 0", _positive), "parse": _parse_width})
    # Extra keyword arguments for the model factory (checked against its signature).
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    # Extra keyword arguments for the dataset factory, e.g. root, canvas, channels.
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)
    # Train logistic-regression probes after training (SPEC C6).
    probes: bool = False
    # Data-loader worker processes; 0 loads in the training process.
    num_workers: int = field(default=0, metadata=_check(">= 0", lambda v: v >= 0))

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
        return _resolve(config, context)

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain JSON-able data; ``from_dict`` of it gives this run back.

        Example:
            >>> RunConfig(model="m", run_id="x").to_dict()["optimizer"]["name"]
            'adam'
        """
        return _plain(self)


# --------------------------------------------------------------------------- resolution
def _load_registries() -> None:
    """Import the modules that fill the registries (models only where that package exists)."""
    for module in ("layerscope.lab.optimizers", "layerscope.lab.metrics", "layerscope.datasets"):
        importlib.import_module(module)
    if importlib.util.find_spec("layerscope.models") is not None:
        importlib.import_module("layerscope.models")


def _lookup(registry, name: str, path: str, context: Context):
    if name not in registry:
        raise ConfigError(f"{context.prefix()}key {path!r}: {registry.unknown_message(name)}")
    return registry.get(name)


def _check_kwargs(factory, kwargs: dict, path: str, reserved: dict, context: Context) -> None:
    for key in kwargs:
        if key in reserved:
            raise ConfigKeyError(
                f"{context.prefix()}key {path}.{key}: {key!r} is set by the top-level key "
                f"{reserved[key]!r}; set it there"
            )
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins without a signature: nothing to check
        return
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return
    accepted = [
        n for n, p in parameters.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    for key in kwargs:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            if close and close[0] in reserved:
                hint = f" Did you mean the top-level key {reserved[close[0]]!r}?"
            accepted = [n for n in accepted if n not in reserved]
            raise ConfigKeyError(
                f"{context.prefix()}key {path}.{key}: the factory does not take {key!r}.{hint} "
                f"It takes: {', '.join(accepted) or 'nothing'}."
            )


def _takes(factory, name: str) -> bool:
    """Whether ``factory`` accepts the keyword ``name`` (or any keyword)."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return True
    return name in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def _resolve_optimizer(cfg: OptimizerConfig, context: Context) -> OptimizerConfig:
    from layerscope.registry import OPTIMIZERS

    factory = _lookup(OPTIMIZERS, cfg.name, "optimizer.name", context)
    parameters = inspect.signature(factory).parameters
    filled = {}
    for key in ("lr", "momentum", "weight_decay"):
        if getattr(cfg, key) is None:
            default = parameters[key].default if key in parameters else inspect.Parameter.empty
            if default is inspect.Parameter.empty:
                raise ConfigKeyError(
                    f"{context.prefix()}key 'optimizer.{key}' is required for optimizer "
                    f"{cfg.name!r}, whose factory has no default for it"
                )
            filled[key] = float(default)
    return replace(cfg, **filled)


def _resolve(cfg: RunConfig, context: Context) -> RunConfig:
    from layerscope.errors import UnknownNameError
    from layerscope.registry import DATASETS, METRICS, MODELS
    from layerscope.stats.spectrum import get_statistic

    _load_registries()
    model = _lookup(MODELS, cfg.model, "model", context)
    dataset = _lookup(DATASETS, cfg.dataset, "dataset", context)
    for i, name in enumerate(cfg.metrics):
        _lookup(METRICS, name, f"metrics[{i}]", context)
    for name in cfg.tracker.statistics:
        try:
            scalar = get_statistic(name).scalar
        except UnknownNameError as error:
            raise ConfigError(f"{context.prefix()}key 'tracker.statistics': {error}") from None
        if not scalar:
            raise ConfigError(
                f"{context.prefix()}key 'tracker.statistics': {name!r} is not a scalar and "
                f"cannot be recorded; choose from `layerscope list statistics`"
            )
    if cfg.width != 1.0 and not _takes(model, "width"):
        raise ConfigError(
            f"{context.prefix()}key 'width': model {cfg.model!r} has no width factor, so width "
            f"= {format_width(cfg.width)} cannot apply; remove the key or choose a model that "
            f"takes one (see `layerscope list models`)"
        )
    reserved = {"width": "width", "num_classes": "dataset", "in_channels": "dataset"}
    _check_kwargs(model, cfg.model_kwargs, "model_kwargs", reserved, context)
    reserved = {"resolution": "resolution", "seed": "seed"}
    _check_kwargs(dataset, cfg.dataset_kwargs, "dataset_kwargs", reserved, context)
    cfg = replace(cfg, optimizer=_resolve_optimizer(cfg.optimizer, context))
    return replace(cfg, run_id=_resolve_run_id(cfg, context))


def _identity_hash(cfg: RunConfig) -> str:
    data = {k: v for k, v in _plain(cfg).items() if k not in TECHNICAL_KEYS}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _resolve_run_id(cfg: RunConfig, context: Context) -> str:
    template = cfg.run_id if cfg.run_id is not None else "{hash}"
    names = {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name != "run_id"}
    try:
        referenced = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as error:
        raise ConfigError(f"{context.prefix()}key 'run_id' = {template!r}: {error}") from None
    for ref in referenced:
        root = re.split(r"[.\[]", ref, maxsplit=1)[0]
        if root not in names and root != "hash":
            close = difflib.get_close_matches(root, [*names, "hash"], n=1)
            hint = f" Did you mean {{{close[0]}}}?" if close else ""
            raise ConfigKeyError(
                f"{context.prefix()}key 'run_id' = {template!r} refers to {{{ref}}}, which is not "
                f"a config key.{hint}"
            )
    try:
        run_id = template.format_map({**names, "hash": _identity_hash(cfg)})
    except (AttributeError, IndexError, KeyError, ValueError) as error:
        raise ConfigError(f"{context.prefix()}key 'run_id' = {template!r}: {error}") from None
    if run_id in (".", "..") or not _RUN_ID_CHARS.fullmatch(run_id):
        raise ConfigError(
            f"{context.prefix()}key 'run_id' = {template!r} gives the folder name {run_id!r}; it "
            f"must be non-empty and use only letters, digits and . _ = + , @ - (no / or spaces)"
        )
    return run_id


def _plain(obj):
    if is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


def expand(config: Mapping[str, Any], *, source: str | None = None) -> list[dict[str, Any]]:
    """The grid of runs a config describes, as raw mappings (validated by ``from_dict``).

    Example:
        >>> runs = expand({"model": ["a", "b"], "width": [1, 0.5], "metrics": ["accuracy", "top5"]})
        >>> [(r["model"], r["width"]) for r in runs]
        [('a', 1), ('a', 0.5), ('b', 1), ('b', 0.5)]
        >>> runs[0]["metrics"]
        ['accuracy', 'top5']
    """
    return expand_mapping(config, Context(RunConfig, source))


def _describe_combo(run: Mapping, swept: Sequence[str]) -> str:
    flat = _flatten(run)
    return ", ".join(f"{k}={flat[k]!r}" for k in swept if k in flat)


def _flatten(data: Mapping, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in data.items():
        if isinstance(value, Mapping) and key in (
            "optimizer",
            "tracker",
            "model_kwargs",
            "dataset_kwargs",
        ):
            out |= _flatten(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def _swept_keys(dicts: Sequence[Mapping]) -> list[str]:
    flats = [_flatten(d) for d in dicts]
    keys = list(dict.fromkeys(k for f in flats for k in f))
    return [
        k
        for k in keys
        if len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flats}) > 1
    ]


def load_config(config: str | Path | Mapping[str, Any]) -> list[RunConfig]:
    """Read a config file (or take a mapping), expand its grid, validate and resolve every run.

    Raises :class:`~layerscope.errors.ConfigError` (or its subclasses) naming the file, the run
    of the grid and the key when anything is wrong, and when two runs would share a folder.

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
    source = None
    if isinstance(config, (str, PathLike)):
        source = str(config)
        config = read_config_file(config)
    raw_runs = expand_mapping(config, Context(RunConfig, source))
    swept = _swept_keys(raw_runs)
    runs = []
    for index, raw in enumerate(raw_runs):
        label = f"run {index + 1} of {len(raw_runs)}"
        if swept:
            label += f" ({_describe_combo(raw, swept)})"
        context = Context(RunConfig, source, label if len(raw_runs) > 1 else None)
        runs.append(_resolve(build(RunConfig, raw, "", context), context))
    folders: dict[Path, int] = {}
    for index, run in enumerate(runs):
        folder = run_dir(run)
        if folder in folders:
            first = folders[folder]
            raise ConfigError(
                f"config {source or '<mapping>'}: runs {first + 1} and {index + 1} would both write "
                f"to {folder}. They differ only in {', '.join(TECHNICAL_KEYS[:-1])} or not at all; "
                f"drop the duplicate, or make run_id tell them apart, e.g. run_id = "
                f'"{{num_workers}}-{{hash}}"'
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


def format_width(width: float) -> str:
    """A width factor as people write it: 0.25 -> "1/4", 1.0 -> "1", 0.75 -> "0.75".

    Example:
        >>> [format_width(w) for w in (1.0, 0.5, 0.125, 2.0, 0.75, 1 / 3)]
        ['1', '1/2', '1/8', '2', '0.75', '1/3']
    """
    fraction = Fraction(width).limit_denominator(1024)
    if float(fraction) == width and fraction.numerator == 1:
        return str(fraction)
    return f"{width:g}"


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
        flat = _flatten(d)
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


def resolve_device(device: str = "auto"):
    """The torch device a config's ``device`` names; "auto" is cuda, else mps, else cpu.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    import torch

    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise ConfigError(f"device {device!r} must be 'auto', 'cpu', 'mps', 'cuda' or 'cuda:N'")
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (resolved.index or 0) >= count:
            raise ConfigError(
                f"device {device!r}: this machine has {count} CUDA device(s); use 'auto' or 'cpu'"
            )
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' is not available on this machine; use 'auto' or 'cpu'")
    return resolved
