"""Resolving a validated config: registry lookups, factory options, optimizer defaults, run ids.

Works on the config dataclasses of :mod:`layerscope.lab.config` without importing them (it reads
their fields), so that module can call it. Everything here raises
:class:`~layerscope.errors.ConfigError` with the file, the run of the grid and the key path.
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
from dataclasses import fields, is_dataclass, replace
from fractions import Fraction

from layerscope import registry
from layerscope.errors import ConfigError, ConfigKeyError, UnknownNameError
from layerscope.lab.config_check import Context
from layerscope.stats.spectrum import get_statistic
from layerscope.store.sinks import SINKS
from layerscope.tracking.options import TrackerOptions

__all__ = [
    "TECHNICAL_KEYS",
    "format_width",
    "plain",
    "resolve",
    "resolve_device",
    "sequence_arguments",
    "technical_paths",
]

#: Top-level keys that do not change what a run computes: left out of the default run id's hash.
TECHNICAL_KEYS = (
    "logs_dir",
    "device",
    "num_workers",
    "probes",
    "probe_preset",
    "live_report",
    "checkpoints",
    "on_nonfinite",
    "run_id",
)
DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
_RUN_ID_CHARS = re.compile(r"[A-Za-z0-9._=+,@-]+")


def technical_paths() -> tuple[str, ...]:
    """Every key path that does not change a run's results: :data:`TECHNICAL_KEYS` and the
    tracker options marked ``technical`` (where records go, where covariances live, ...).

    Example:
        >>> "tracker.sinks" in technical_paths() and "logs_dir" in technical_paths()
        True
    """
    tracker = [f"tracker.{f.name}" for f in fields(TrackerOptions) if f.metadata.get("technical")]
    return (*TECHNICAL_KEYS, *tracker)


def _load_registries() -> None:
    """Import the modules that fill the registries (models only where that package exists)."""
    for module in ("layerscope.lab.optimizers", "layerscope.lab.metrics", "layerscope.datasets"):
        importlib.import_module(module)
    if importlib.util.find_spec("layerscope.models") is not None:
        importlib.import_module("layerscope.models")


_SEQUENCE = re.compile(r"\b(Sequence|Iterable|Collection|list|tuple|List|Tuple)\b")


def _sequence_parameters(factory) -> set[str]:
    """Parameters of ``factory`` whose annotation is a sequence (``Sequence[int]``, ``list``,
    ``int | tuple[int, ...]``, ...)."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return set()
    return {name for name, p in parameters.items()
            if p.annotation is not p.empty and _SEQUENCE.search(str(p.annotation))}  # fmt: skip


def sequence_arguments(config):
    """A list given to a factory keyword whose annotation is a sequence is ONE value, as for the
    flat name lists (``model_kwargs = {hidden = [64, 32]}`` is one MLP with two hidden layers);
    a list of lists sweeps (``hidden = [[64], [64, 32]]``). Returns the config with such lists
    marked ``{"value": ...}``; everything else is left to the grid rules.

    Example:
        >>> sequence_arguments({"model": "mlp", "model_kwargs": {"hidden": [64, 32]}})
        {'model': 'mlp', 'model_kwargs': {'hidden': {'value': [64, 32]}}}
        >>> sequence_arguments({"model": "mlp", "model_kwargs": {"hidden": [[64], [8, 8]]}})
        {'model': 'mlp', 'model_kwargs': {'hidden': [[64], [8, 8]]}}
    """
    if not isinstance(config, dict):
        return config
    _load_registries()
    config = dict(config)
    for key, kind, default in (("model_kwargs", "model", None), ("dataset_kwargs", "dataset",
                                                                  "digits")):  # fmt: skip
        kwargs = config.get(key)
        names = config.get(kind, default)
        names = names if isinstance(names, list) else [names]
        registry_ = registry.MODELS if kind == "model" else registry.DATASETS
        factories = [registry_.get(n) for n in names if isinstance(n, str) and n in registry_]
        if not isinstance(kwargs, dict) or not factories:
            continue
        sequences = set().union(*(_sequence_parameters(f) for f in factories))
        config[key] = {
            name: {"value": value}
            if name in sequences and isinstance(value, list) and value
            and not all(isinstance(v, list) for v in value) else value
            for name, value in kwargs.items()
        }  # fmt: skip
    return config


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


def _resolve_optimizer(cfg, context: Context):
    factory = _lookup(registry.OPTIMIZERS, cfg.name, "optimizer.name", context)
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


def resolve(cfg, context: Context):
    _load_registries()
    model = _lookup(registry.MODELS, cfg.model, "model", context)
    dataset = _lookup(registry.DATASETS, cfg.dataset, "dataset", context)
    for i, name in enumerate(cfg.metrics):
        _lookup(registry.METRICS, name, f"metrics[{i}]", context)
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
    for name in cfg.tracker.sinks or ():
        _lookup(SINKS, name, "tracker.sinks", context)
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


def _identity_hash(cfg) -> str:
    data = plain(cfg)
    for path in technical_paths():
        section, _, key = path.rpartition(".")
        (data.get(section, {}) if section else data).pop(key, None)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _resolve_run_id(cfg, context: Context) -> str:
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


def plain(obj):
    if is_dataclass(obj):
        return {f.name: plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, tuple):
        return [plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    return obj


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


def resolve_device(device: str = "auto"):
    """The torch device a config's ``device`` names; "auto" is cuda, else mps, else cpu.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    import torch

    if not isinstance(device, str) or not DEVICE.fullmatch(device):
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
