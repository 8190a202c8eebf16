"""The schema-driven machinery behind configs: grid expansion, type checks, error messages.

Works on any tree of frozen dataclasses (the schema of :mod:`layerscope.lab.config`): the type
annotations decide how a value expands and how it is checked, and field metadata carries the
rules (``rule``/``test``: a value check; ``parse``: a conversion before the type check;
``help``: shown when a required key is missing). A section class may name a ``SHORTHAND`` field
so that a plain string stands for ``{SHORTHAND: string}`` (``optimizer = "adam"``).
"""

from __future__ import annotations

import difflib
import itertools
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields, is_dataclass
from typing import Any, Literal

from layerscope.errors import ConfigError, ConfigKeyError, ConfigTypeError

__all__ = [
    "ALIASES",
    "KEY_HINTS",
    "Context",
    "apply_aliases",
    "build",
    "expand_mapping",
    "flatten_keys",
]

#: PHD-Lab's key names accepted for ours (dissertation 6.2.3, listing 1).
ALIASES = {"epoch": "epochs"}
#: Hints for PHD-Lab keys that layerscope handles elsewhere.
KEY_HINTS = {
    "data_parallel": "data-parallel training is not a config key yet (SPEC C13); remove it",
    "downsampling": "use tracker.downsample (an int size) and tracker.downsample_method",
    "conv_method": "layerscope always treats each spatial position as a sample; remove it",
}


@dataclass
class Context:
    """Where an error happened (the file and, in a grid, which run) and the schema's root."""

    root: type
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


def _field_types(cls) -> dict[str, Any]:
    """Resolved annotations of the dataclass fields only (ClassVars such as SHORTHAND are not keys)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}


def _all_paths(cls, prefix="") -> list[str]:
    paths = []
    hints = _field_types(cls)
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
    paths = _all_paths(context.root)
    leaves = {p.rsplit(".", 1)[-1]: p for p in paths if "." in p}
    leaves |= {p: p for p in paths if "." not in p and path_prefix}
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
    """A tuple of names (``tuple[str, ...]``, or of ``str | X``), possibly optional: a key whose
    single value is a list. A tuple of numbers (``tracker.downsample``) is not: lists sweep."""
    members = (
        typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    )
    for member in members:
        if typing.get_origin(member) is tuple:
            element = typing.get_args(member)[0]
            inner = (
                typing.get_args(element)
                if typing.get_origin(element) in (typing.Union, types.UnionType)
                else (element,)
            )
            if str in inner:
                return True
    return False


def _is_free_dict(tp) -> bool:
    return typing.get_origin(tp) is dict


def _alternatives(value, tp, path: str, context: Context) -> list:
    """The values a key takes across the grid (one element: no sweep here)."""
    if is_dataclass(tp):  # a section: lists sweep whole sections, keys inside expand too
        if isinstance(value, list):
            return _sweep(value, path, context, lambda v: _alternatives(v, tp, path, context))
        if isinstance(value, str) and getattr(tp, "SHORTHAND", None):
            value = {tp.SHORTHAND: value}
        if not isinstance(value, Mapping):
            return [value]  # rejected with a type error by _build
        hints = _field_types(tp)
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


def _scalar_alternatives(value, path: str, context: Context) -> list:
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


def apply_aliases(data: Mapping, context: Context) -> dict:
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


def expand_mapping(config: Mapping[str, Any], context: Context) -> list[dict[str, Any]]:
    """The grid of runs of a top-level mapping, as raw mappings (see layerscope.lab.config)."""
    data = apply_aliases(config, context)
    hints = _field_types(context.root)
    options = {}
    for key, value in data.items():
        if key not in hints:
            raise _unknown_key(context.root, key, "", context)
        options[key] = _alternatives(value, hints[key], key, context)
    return _product(options)


# --------------------------------------------------------------------------- validation
def _coerce(value, tp, path: str, context: Context):
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
        if isinstance(value, str) and getattr(tp, "SHORTHAND", None):
            value = {tp.SHORTHAND: value}  # optimizer = "adam", as in PHD-Lab configs
        if not isinstance(value, Mapping):
            raise _type_error(context, path, value, tp)
        return build(tp, value, f"{path}.", context)
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


def build(cls, data: Mapping, prefix: str, context: Context):
    """Instantiate ``cls`` from ``data``, checking keys, types and field rules."""
    if not isinstance(data, Mapping):
        raise _type_error(context, prefix[:-1] or "<config>", data, cls)
    hints = _field_types(cls)
    for key in data:
        if key not in hints:
            raise _unknown_key(cls, key, prefix, context)
    values = {}
    for f in fields(cls):
        path = f"{prefix}{f.name}"
        if f.name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                help_text = f.metadata.get("help")
                raise ConfigKeyError(
                    f"{context.prefix()}missing required key {path!r}"
                    + (f": {help_text}" if help_text else "")
                )
            continue
        raw = f.metadata.get("parse", lambda v: v)(data[f.name])
        value = _coerce(raw, hints[f.name], path, context)
        rule = f.metadata.get("rule")
        if rule and value is not None and not f.metadata["test"](value):
            raise ConfigError(f"{context.prefix()}key {path!r} = {_show(value)} must be {rule}")
        values[f.name] = value
    return cls(**values)


def flatten_keys(data: Mapping, prefix: str = "") -> dict[str, Any]:
    """A run's mapping with its sections spelled as key paths (``optimizer.lr``).

    Example:
        >>> flatten_keys({"model": "m", "optimizer": {"lr": 0.1}})
        {'model': 'm', 'optimizer.lr': 0.1}
    """
    out = {}
    for key, value in data.items():
        if isinstance(value, Mapping) and key in (
            "optimizer",
            "tracker",
            "model_kwargs",
            "dataset_kwargs",
        ):
            out |= flatten_keys(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out
