"""``layerscope list``: the catalogue it reads equals the real registries, and plugins make it
import them (tests/test_cli.py checks that no kind imports torch)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import layerscope
from layerscope.commands import catalogue
from layerscope.commands import list as list_command
from layerscope.registry import OPTIMIZERS


@pytest.mark.parametrize("kind", sorted(list_command.KINDS))
def test_catalogue_equals_the_imported_registry(kind):
    # If this fails after a built-in entry changed, regenerate the catalogue:
    #     python -m layerscope.commands.list
    group, imported = list_command.imported_entries(kind)
    assert catalogue.GROUPS[kind] == group
    # Entries that other tests or doctests registered and did not remove are not built in: the
    # catalogue must hold exactly the built-ins, so compare against a fresh interpreter below.
    assert set(catalogue.ENTRIES[kind]) <= set(imported)
    for name, description in catalogue.ENTRIES[kind].items():
        assert imported[name] == description, name


def test_catalogue_is_exactly_the_built_in_registries():
    # A fresh interpreter holds only what importing layerscope registers.
    code = "from layerscope.commands import list as l\nprint(l.catalogue_source(), end='')\n"
    completed = _fresh(code)
    assert completed.stdout == Path(catalogue.__file__).read_text(encoding="utf-8")


def test_a_plugin_group_lists_the_imported_registry(monkeypatch):
    # An installed package adding optimizers through the entry-point group makes `list` import
    # the registry (which loads the plugins); without one it reads the catalogue.
    OPTIMIZERS.add("plugin_sgd_doc", lambda parameters: None)
    try:
        monkeypatch.setattr(list_command, "entry_points", lambda group: ["a plugin"])
        assert list_command.entries("optimizers", "plugin_*") == [("plugin_sgd_doc", "")]
        monkeypatch.setattr(list_command, "entry_points", lambda group: [])
        assert list_command.entries("optimizers", "plugin_*") == []
    finally:
        OPTIMIZERS.remove("plugin_sgd_doc")


def _fresh(code: str) -> subprocess.CompletedProcess:
    source = str(Path(layerscope.__file__).parent.parent)
    env = {**os.environ, "PYTHONPATH": source + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
