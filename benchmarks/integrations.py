"""What the framework callbacks cost at import: ``import layerscope`` against each extra.

    python benchmarks/integrations.py [--repeats 3]

Each row is a fresh interpreter that first imports torch and layerscope (not timed), then times
one statement inside the process: importing layerscope's integration modules (which import no
framework), and making each callback, which imports its framework (``lightning``,
``pytorch_lightning``, ``transformers.trainer_callback``); the Hugging Face ``Trainer`` itself
is timed too, since a user imports it anyway. Medians of ``--repeats`` interpreters; the ratio
column is against ``import torch`` timed the same way in a fresh interpreter.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

TIMED = """
import time, torch, layerscope, layerscope.tracking
start = time.perf_counter()
{statement}
print(time.perf_counter() - start)
"""

ROWS = {
    "import torch (reference)": None,
    "import layerscope.integrations.lightning, .huggingface": (
        "import layerscope.integrations.lightning, layerscope.integrations.huggingface"
    ),
    "lightning: LayerscopeCallback() (import lightning)": (
        "from layerscope.integrations.lightning import LayerscopeCallback\n"
        "import lightning\nLayerscopeCallback()"
    ),
    "lightning: LayerscopeCallback() (import pytorch_lightning)": (
        "from layerscope.integrations.lightning import LayerscopeCallback\n"
        "import pytorch_lightning\nLayerscopeCallback()"
    ),
    "huggingface: LayerscopeCallback()": (
        "from layerscope.integrations.huggingface import LayerscopeCallback\nLayerscopeCallback()"
    ),
    "huggingface: from transformers import Trainer": "from transformers import Trainer",
}


def seconds(statement: str | None) -> float:
    if statement is None:
        code = "import time; start = time.perf_counter(); import torch\n"
        code += "print(time.perf_counter() - start)"
    else:
        code = TIMED.format(statement=statement)
    env = {"HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, env={**os.environ, **env})  # fmt: skip
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    repeats = parser.parse_args().repeats
    results = {name: statistics.median(seconds(code) for _ in range(repeats))
               for name, code in ROWS.items()}  # fmt: skip
    reference = results["import torch (reference)"]
    print(f"{'statement':62s} {'seconds':>8s} {'x torch':>8s}")
    for name, value in results.items():
        print(f"{name:62s} {value:8.2f} {value / reference:8.2f}")


if __name__ == "__main__":
    main()
