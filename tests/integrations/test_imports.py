"""Importing layerscope, or its integrations, imports no training framework."""

from __future__ import annotations

import subprocess
import sys

FRAMEWORKS = ("lightning", "pytorch_lightning", "transformers", "accelerate")


def test_import_layerscope_and_its_integrations_loads_no_framework():
    code = (
        "import sys, layerscope, layerscope.integrations, layerscope.integrations.lightning, "
        "layerscope.integrations.huggingface\n"
        f"print(sorted(m for m in {FRAMEWORKS!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)  # fmt: skip
    assert result.stdout.strip() == "[]"
