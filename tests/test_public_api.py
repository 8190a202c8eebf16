"""The public surface: a small sorted API imported on first use, one error hierarchy, a fast CLI."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
import types

import pytest

import layerscope
from layerscope import errors


def test_all_is_sorted_and_every_name_resolves():
    assert layerscope.__all__ == sorted(layerscope.__all__)
    for name in layerscope.__all__:
        assert getattr(layerscope, name) is not None, name
    assert set(dir(layerscope)) == set(layerscope.__all__)


def test_no_third_party_name_leaks_and_unknown_names_are_attribute_errors():
    for leaked in ("PackageNotFoundError", "version", "importlib", "Any", "TYPE_CHECKING"):
        assert leaked not in dir(layerscope)
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        layerscope.nonexistent  # noqa: B018


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


def test_importing_layerscope_and_building_the_cli_load_no_heavy_package():
    heavy = "sorted(m for m in ('torch', 'pandas', 'matplotlib', 'scipy', 'sklearn') if m in sys.modules)"
    assert _run(f"import sys, layerscope; print({heavy})") == "[]"
    assert (
        _run(f"import sys; from layerscope.cli import build_parser; build_parser(); print({heavy})")
        == "[]"
    )


def _modules():
    for module in pkgutil.walk_packages(layerscope.__path__, "layerscope."):
        yield importlib.import_module(module.name)


def test_every_exception_lives_in_errors_under_one_base():
    for module in _modules():
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__.startswith("layerscope"):
                assert value.__module__ == "layerscope.errors", f"{value} outside errors.py"
    for name in errors.__all__:
        value = getattr(errors, name)
        assert issubclass(value, (errors.LayerscopeError, errors.LayerscopeWarning)), name


def test_no_module_is_shadowed_by_a_function():
    for module in _modules():
        if not hasattr(module, "__path__"):
            continue
        for sub in pkgutil.iter_modules(module.__path__):
            attr = getattr(module, sub.name, None)
            assert attr is None or isinstance(attr, types.ModuleType), (
                f"{module.__name__}.{sub.name}"
            )


def test_the_cli_shows_user_errors_as_one_line_and_bugs_as_tracebacks(monkeypatch, capsys):
    from layerscope import cli
    from layerscope.commands import spectrum

    assert cli.main(["spectrum", "missing.npy"]) == 2  # a missing file is the user's mistake
    assert capsys.readouterr().err.strip() == (
        "layerscope spectrum: error: missing.npy does not exist; give a .npy file of a 2-D array"
    )

    def bug(args):
        raise KeyError("an internal bug")

    monkeypatch.setattr(spectrum, "run", bug)
    with pytest.raises(KeyError, match="internal bug"):
        cli.main(["spectrum"])
