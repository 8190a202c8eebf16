"""One line naming the CPU a benchmark ran on, for its header.

Two machines of the same description (2 cores, Intel Xeon, AVX-512) ranked matrix layouts and
block products differently (docs/performance.md, "Tracking overhead"), so every result should
say which CPU it came from. Linux's /proc/cpuinfo gives the model and the flags; elsewhere the
platform module's processor string stands in.
"""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_line() -> str:
    """``"cpu: <model name>, model <n>, AMX <yes|no>, cache <size>"`` or the platform's string.

    Example:
        >>> cpu_line().startswith("cpu: ")
        True
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return f"cpu: {platform.processor() or platform.machine()}"
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the first processor's block is enough
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    flags = set(fields.get("flags", "").split())
    amx = "yes" if "amx_tile" in flags else "no"
    return (
        f"cpu: {fields.get('model name', platform.processor())}, model {fields.get('model', '?')}, "
        f"AMX {amx}, cache {fields.get('cache size', '?')}"
    )


if __name__ == "__main__":
    print(cpu_line())
