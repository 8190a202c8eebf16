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
    >>> from layerscope.lab.registry import MODELS
    >>> MODELS.add("doc_mlp", lambda width=1.0: None)
    >>> runs = load_config({"model": "doc_mlp", "width": [1, "1/2"], "epochs": 2, "run_id": "w{width}"})
    >>> [(run.width, run.optimizer.name, run.optimizer.lr) for run in runs]
    [(1.0, 'adam', 0.001), (0.5, 'adam', 0.001)]
    >>> run_dir(runs[1]).as_posix()
    'logs/doc_mlp/digits/32/w0.5'
    >>> _ = MODELS._entries.pop("doc_mlp")
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import itertools
import json
import re
import string
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from fractions import Fraction
from os import PathLike
from pathlib import Path
from typing import Any, Literal

from layerscope.errors import ConfigError, ConfigKeyError, ConfigTypeError
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
#: PHD-Lab's key names accepted for ours (dissertation 6.2.3, listing 1).
ALIASES = {"epoch": "epochs"}
#: Hints for PHD-Lab keys that layerscope handles elsewhere.
KEY_HINTS = {
    "data_parallel": "data-parallel training is not a config key yet (SPEC C13); remove it",
    "downsampling": "use tracker.downsample (an int size) and tracker.downsample_method",
    "conv_method": "layerscope always treats each spatial position as a sample; remove it",
}
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


# --------------------------------------------------------------------------- the schema
@dataclass(frozen=True)
class OptimizerConfig:
    """How the weights are updated (registry OPTIMIZERS, :mod:`layerscope.lab.optimizers`)."""

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
    # float64 is what the dissertation insists on; "mixed" is faster on GPUs.
    precision: Literal["float64", "mixed"] = "float64"
    # Shrink feature maps to at most this size before accumulating (Delve); None keeps them.
    downsample: int | None = field(default=None, metadata=_check(">= 1", _at_least_one))
    downsample_method: Literal["adaptive_avg", "nearest", "bilinear"] = "adaptive_avg"
    # Record every n-th batch only (Delve's option for long epochs).
    every_n_batches: int = field(default=1, metadata=_check(">= 1", _at_least_one))
    # Stop recording after this many batches per phase; None records all.
    max_batches: int | None = field(default=None, metadata=_check(">= 1", _at_least_one))


@dataclass(frozen=True)
class RunConfig:
    """One training run, fully resolved (no lists left to expand, no defaults left open)."""

    # Registered model name (MODELS), e.g. "vgg11". The only required key.
    model: str
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
    run_id: str | None = None
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
            >>> from layerscope.lab.registry import MODELS
            >>> MODELS.add("doc_net", lambda width=1.0: None)
            >>> cfg = RunConfig.from_dict({"model": "doc_net", "optimizer": {"name": "sgd"}})
            >>> cfg.optimizer.lr, cfg.optimizer.momentum, len(cfg.run_id)
            (0.01, 0.9, 8)
            >>> RunConfig.from_dict(cfg.to_dict()) == cfg
            True
            >>> _ = MODELS._entries.pop("doc_net")
        """
        context = _Context(source)
        data = _apply_aliases(data, context)
        config = _build(cls, data, "", context)
        return _resolve(config, context)

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain JSON-able data; ``from_dict`` of it gives this run back.

        Example:
            >>> RunConfig(model="m", run_id="x").to_dict()["optimizer"]["name"]
            'adam'
        """
        return _plain(self)


# --------------------------------------------------------------------------- errors
@dataclass
class _Context:
    """Where an error happened: the file and, in a grid, which run."""

    source: str | None = None
    run: str | None = None

    def prefix(self) -> str:
        parts = [f"config {self.source}" if self.source else "config", self.run]
        return ", ".join(p for p in parts if p) + ": "


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(tp)))
    if origin is tuple:
        return "a list of strings"
    if origin is dict:
        return "a table (dict)"
    if is_dataclass(tp):
        return f"a table of {tp.__name__} keys"
    return {
        type(None): "none",
        float: "a number",
        int: "an int",
        str: "a string",
        bool: "true/false",
    }.get(tp, getattr(tp, "__name__", str(tp)))


def _type_error(context, path, value, tp, extra="") -> ConfigTypeError:
    return ConfigTypeError(
        f"{context.prefix()}key {path!r} = {_show(value)} ({type(value).__name__}) should be "
        f"{_type_name(tp)}{extra}"
    )


def _all_paths(cls, prefix="") -> list[str]:
    paths = []
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        tp = hints[f.name]
        if is_dataclass(tp):
            paths += _all_paths(tp, f"{prefix}{f.name}.")
        else:
            paths.append(f"{prefix}{f.name}")
    return paths


def _unknown_key(cls, key, path_prefix, context) -> ConfigKeyError:
    valid = [f.name for f in fields(cls)]
    full = f"{path_prefix}{key}"
    # A key of another section (top-level "lr" -> "optimizer.lr") wins when it matches exactly;
    # then close keys of this level; then close keys elsewhere ("downsampling").
    leaves = {p.rsplit(".", 1)[-1]: p for p in _all_paths(RunConfig) if "." in p}
    leaves |= {p: p for p in _all_paths(RunConfig) if "." not in p and path_prefix}
    close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.7)
    near = difflib.get_close_matches(str(key), list(leaves), n=1, cutoff=0.75)
    if key in leaves and key not in valid:
        hint = f" Did you mean {leaves[key]!r}?"
    elif close:
        hint = f" Did you mean {path_prefix + close[0]!r}?"
    else:
        hint = f" Did you mean {leaves[near[0]]!r}?" if near else ""
    if key in KEY_HINTS:
        hint += f" ({KEY_HINTS[key]})"
    where = f"in section {path_prefix[:-1]!r}" if path_prefix else "at the top level"
    return ConfigKeyError(
        f"{context.prefix()}unknown key {full!r}.{hint} Valid keys {where}: {', '.join(valid)}."
    )


# --------------------------------------------------------------------------- expansion
def _is_literal(value) -> bool:
    return isinstance(value, Mapping) and list(value) == ["value"]


def _is_names(tp) -> bool:
    """tuple[str, ...], possibly optional: a key whose single value is a list."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return any(typing.get_origin(a) is tuple for a in typing.get_args(tp))
    return typing.get_origin(tp) is tuple


def _is_free_dict(tp) -> bool:
    return typing.get_origin(tp) is dict


def _alternatives(value, tp, path: str, context: _Context) -> list:
    """The values a key takes across the grid (one element: no sweep here)."""
    if is_dataclass(tp):  # a section: lists sweep whole sections, keys inside expand too
        if isinstance(value, list):
            return _sweep(value, path, context, lambda v: _alternatives(v, tp, path, context))
        if isinstance(value, str) and tp is OptimizerConfig:
            value = {"name": value}
        if not isinstance(value, Mapping):
            return [value]  # rejected with a type error by _build
        hints = typing.get_type_hints(tp)
        options = {}
        for key, sub in value.items():
            if key not in hints:
                raise _unknown_key(tp, key, f"{path}.", context)
            options[key] = _alternatives(sub, hints[key], f"{path}.{key}", context)
        return _product(options)
    if _is_free_dict(tp):  # keyword arguments: each value expands like a scalar key
        if isinstance(value, list):  # a list of tables sweeps, like a section
            return _sweep(value, path, context, lambda v: _alternatives(v, tp, path, context))
        if not isinstance(value, Mapping):
            return [value]
        return _product(
            {k: _scalar_alternatives(v, f"{path}.{k}", context) for k, v in value.items()}
        )
    if _is_names(tp) and isinstance(value, list):
        nested = [isinstance(v, list) or _is_literal(v) for v in value]
        if any(nested) and not all(nested):
            raise ConfigTypeError(
                f"{context.prefix()}key {path!r} mixes names and lists: {_show(value)}. A list "
                f"of names is one value; a list of lists sweeps over several values."
            )
        if not (value and all(nested)):
            return [value]
    return _scalar_alternatives(value, path, context)


def _scalar_alternatives(value, path: str, context: _Context) -> list:
    """A list sweeps over its elements; {"value": X} is X unexpanded."""
    if _is_literal(value):
        return [value["value"]]
    if isinstance(value, list):
        return _sweep(value, path, context, lambda v: [v["value"]] if _is_literal(v) else [v])
    return [value]


def _sweep(values: list, path, context, each) -> list:
    if not values:
        raise ConfigError(
            f"{context.prefix()}key {path!r} is an empty list, which would make no runs; give "
            f"at least one value (to pass an empty list as the value, write {{value = []}})"
        )
    return [alt for v in values for alt in each(v)]


def _product(options: dict[str, list]) -> list[dict]:
    keys = list(options)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*options.values())]


def _apply_aliases(data: Mapping, context: _Context) -> dict:
    if not isinstance(data, Mapping):
        raise ConfigTypeError(
            f"{context.prefix()}a config is a table of keys (a JSON object, TOML document or "
            f"YAML mapping), got {type(data).__name__}"
        )
    out = {}
    for key, value in data.items():
        canonical = ALIASES.get(key, key)
        if canonical in out:
            alias = next(a for a, c in ALIASES.items() if c == canonical)
            raise ConfigKeyError(
                f"{context.prefix()}both {alias!r} and {canonical!r} are given; they are the same "
                f"key ({alias!r} is PHD-Lab's name). Keep one."
            )
        out[canonical] = value
    return out


def expand(config: Mapping[str, Any], *, source: str | None = None) -> list[dict[str, Any]]:
    """The grid of runs a config describes, as raw mappings (validated by ``from_dict``).

    Example:
        >>> runs = expand({"model": ["a", "b"], "width": [1, 0.5], "metrics": ["accuracy", "top5"]})
        >>> [(r["model"], r["width"]) for r in runs]
        [('a', 1), ('a', 0.5), ('b', 1), ('b', 0.5)]
        >>> runs[0]["metrics"]
        ['accuracy', 'top5']
    """
    context = _Context(source)
    data = _apply_aliases(config, context)
    hints = typing.get_type_hints(RunConfig)
    options = {}
    for key, value in data.items():
        if key not in hints:
            raise _unknown_key(RunConfig, key, "", context)
        options[key] = _alternatives(value, hints[key], key, context)
    return _product(options)


# --------------------------------------------------------------------------- validation
def _coerce(value, tp, path: str, context: _Context):
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if isinstance(value, str) and value.lower() in ("none", "null") and str not in inner:
            return None  # TOML has no null
        try:
            return _coerce(value, inner[0], path, context)
        except ConfigTypeError:
            raise _type_error(context, path, value, tp) from None
    if is_dataclass(tp):
        if isinstance(value, str) and tp is OptimizerConfig:
            value = {"name": value}  # optimizer = "adam", as in PHD-Lab configs
        if not isinstance(value, Mapping):
            raise _type_error(context, path, value, tp)
        return _build(tp, value, f"{path}.", context)
    if origin is Literal:
        options = typing.get_args(tp)
        if value not in options:
            close = difflib.get_close_matches(str(value), [str(o) for o in options], n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"{context.prefix()}key {path!r} = {_show(value)} must be one of "
                f"{', '.join(map(repr, options))}.{hint}"
            )
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise _type_error(context, path, value, tp, ', e.g. ["accuracy", "top5"]')
        return tuple(value)
    if origin is dict:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise _type_error(context, path, value, tp, " of keyword arguments")
        return json.loads(json.dumps(value)) if _jsonable(value) else dict(value)
    hint = ""
    if isinstance(value, list):
        hint = "; lists expand into a grid only when reading a config (load_config / expand)"
    if tp is bool:
        if not isinstance(value, bool):
            raise _type_error(context, path, value, tp, hint)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(context, path, value, tp, hint)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(context, path, value, tp, hint)
        return float(value)
    if tp is str:
        if isinstance(value, int) and not isinstance(value, bool) and path == "run_id":
            return str(value)
        if not isinstance(value, str):
            raise _type_error(context, path, value, tp, hint)
        return value
    raise TypeError(f"config schema: unsupported annotation {tp!r} at {path!r}")  # pragma: no cover


def _jsonable(value) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _build(cls, data: Mapping, prefix: str, context: _Context):
    """Instantiate ``cls`` from ``data``, checking keys, types and field rules."""
    if not isinstance(data, Mapping):
        raise _type_error(context, prefix[:-1] or "<config>", data, cls)
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in hints:
            raise _unknown_key(cls, key, prefix, context)
    values = {}
    for f in fields(cls):
        path = f"{prefix}{f.name}"
        if f.name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                raise ConfigKeyError(
                    f"{context.prefix()}missing required key {path!r}{_required_hint(path)}"
                )
            continue
        raw = f.metadata.get("parse", lambda v: v)(data[f.name])
        value = _coerce(raw, hints[f.name], path, context)
        rule = f.metadata.get("rule")
        if rule and value is not None and not f.metadata["test"](value):
            raise ConfigError(f"{context.prefix()}key {path!r} = {_show(value)} must be {rule}")
        values[f.name] = value
    return cls(**values)


def _required_hint(path: str) -> str:
    if path != "model":
        return ""  # pragma: no cover - model is the only required key
    from layerscope.lab.registry import MODELS

    _load_registries()
    known = MODELS.list()
    return f": the registered model to train, one of {', '.join(known) or '(none registered)'}"


# --------------------------------------------------------------------------- resolution
def _load_registries() -> None:
    """Import the modules that fill the registries (models only where that package exists)."""
    for module in ("layerscope.lab.optimizers", "layerscope.lab.metrics", "layerscope.datasets"):
        importlib.import_module(module)
    if importlib.util.find_spec("layerscope.models") is not None:
        importlib.import_module("layerscope.models")


def _lookup(registry, name: str, path: str, context: _Context):
    if name not in registry:
        raise ConfigError(f"{context.prefix()}key {path!r}: {registry.unknown_message(name)}")
    return registry.get(name)


def _check_kwargs(factory, kwargs: dict, path: str, reserved: dict, context: _Context) -> None:
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


def _resolve_optimizer(cfg: OptimizerConfig, context: _Context) -> OptimizerConfig:
    from layerscope.lab.registry import OPTIMIZERS

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
    return _replace(cfg, **filled)


def _replace(obj, **changes):
    import dataclasses

    return dataclasses.replace(obj, **changes) if changes else obj


def _resolve(cfg: RunConfig, context: _Context) -> RunConfig:
    from layerscope.lab.registry import DATASETS, METRICS, MODELS
    from layerscope.stats.spectrum import list_statistics

    _load_registries()
    model = _lookup(MODELS, cfg.model, "model", context)
    dataset = _lookup(DATASETS, cfg.dataset, "dataset", context)
    for i, name in enumerate(cfg.metrics):
        _lookup(METRICS, name, f"metrics[{i}]", context)
    known = list_statistics()
    for name in cfg.tracker.statistics:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"{context.prefix()}key 'tracker.statistics': unknown statistic {name!r}.{hint} "
                f"Known statistics: {', '.join(known)}."
            )
    _check_kwargs(model, cfg.model_kwargs, "model_kwargs", {"width": "width"}, context)
    reserved = {"resolution": "resolution", "seed": "seed"}
    _check_kwargs(dataset, cfg.dataset_kwargs, "dataset_kwargs", reserved, context)
    cfg = _replace(cfg, optimizer=_resolve_optimizer(cfg.optimizer, context))
    return _replace(cfg, run_id=_resolve_run_id(cfg, context))


def _identity_hash(cfg: RunConfig) -> str:
    data = {k: v for k, v in _plain(cfg).items() if k not in TECHNICAL_KEYS}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _resolve_run_id(cfg: RunConfig, context: _Context) -> str:
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


# --------------------------------------------------------------------------- files
def _strip_json_comments(text: str) -> str:
    """Remove // and /* */ comments outside strings (listing 1 of dissertation 6.2.3 has them)."""
    out, i, in_string = [], 0, False
    while i < len(text):
        char = text[i]
        if in_string:
            out.append(char)
            if char == "\\":
                out.append(text[i + 1 : i + 2])
                i += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
            out.append(char)
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            chunk = text[i : len(text) if end < 0 else end + 2]
            out.append("\n" * chunk.count("\n"))  # keep line numbers for error messages
            i += len(chunk)
            continue
        else:
            out.append(char)
        i += 1
    return "".join(out)


def _yaml_loader():
    try:
        import yaml
    except ImportError:
        raise ConfigError(
            "reading YAML configs needs PyYAML: pip install pyyaml (or layerscope[yaml]), or "
            "write the config as TOML or JSON"
        ) from None

    class Loader(yaml.SafeLoader):
        """SafeLoader that reads 1e-3 as a float (YAML 1.2), not as the string '1e-3'."""

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:\d[\d_]*)?(?:\.\d*)?[eE][-+]?\d+$"),
        list("-+0123456789."),
    )
    return yaml, Loader


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping stored in a .json, .toml, .yaml or .yml config file.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "c.json"
        >>> _ = path.write_text('{"model": "vgg11", // the network\\n "epoch": 3}')
        >>> read_config_file(path)
        {'model': 'vgg11', 'epoch': 3}
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".toml", ".yaml", ".yml"):
        raise ConfigError(
            f"config {path}: unknown format {suffix!r}; use .json, .toml, .yaml or .yml"
        )
    if not path.is_file():
        raise ConfigError(f"config {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if suffix == ".json":
            data = json.loads(_strip_json_comments(text))
        elif suffix == ".toml":
            data = tomllib.loads(text)
        else:
            yaml, loader = _yaml_loader()
            try:
                data = yaml.load(text, Loader=loader)
            except yaml.YAMLError as error:
                raise ValueError(str(error)) from error
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, ValueError) as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"config {path} is not valid {suffix[1:].upper()}: {error}") from None
    if not isinstance(data, dict):
        raise ConfigTypeError(
            f"config {path}: the top level must be a table of keys, got {type(data).__name__}"
        )
    return data


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
    """
    source = None
    if isinstance(config, (str, PathLike)):
        source = str(config)
        config = read_config_file(config)
    raw_runs = expand(config, source=source)
    swept = _swept_keys(raw_runs)
    runs = []
    for index, raw in enumerate(raw_runs):
        label = f"run {index + 1} of {len(raw_runs)}"
        if swept:
            label += f" ({_describe_combo(raw, swept)})"
        context = _Context(source, label if len(raw_runs) > 1 else None)
        runs.append(_resolve(_build(RunConfig, raw, "", context), context))
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
