"""Reading config files: JSON (with // and /* */ comments, as in dissertation 6.2.3), TOML, YAML.

Only the syntax is handled here; what the keys mean is checked in :mod:`layerscope.lab.config`.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

from layerscope.errors import ConfigError, ConfigTypeError

__all__ = ["anchor_logs_dir", "read_config_file"]


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


def anchor_logs_dir(
    data: dict[str, Any], folder: str | os.PathLike, default: str
) -> dict[str, Any]:
    """``data`` with a relative ``logs_dir`` (its ``default`` when the key is absent) resolved
    against ``folder``, the config file's folder: the run folders of a config file do not depend
    on the directory the command runs in. Absolute paths stay; a list (a sweep) or
    ``{value = ...}`` has each path resolved; other values are left for validation to reject.

    Example:
        >>> anchor_logs_dir({"model": "m"}, "exp", "logs")["logs_dir"]
        'exp/logs'
        >>> anchor_logs_dir({"logs_dir": ["../a", "/abs"]}, "exp", "logs")["logs_dir"]
        ['a', '/abs']
    """

    def anchored(value):
        if isinstance(value, str) and not os.path.isabs(value):
            return Path(os.path.normpath(Path(folder) / value)).as_posix()
        if isinstance(value, list):
            return [anchored(v) for v in value]
        if isinstance(value, dict) and set(value) == {"value"}:
            return {"value": anchored(value["value"])}
        return value

    return {**data, "logs_dir": anchored(data.get("logs_dir", default))}
