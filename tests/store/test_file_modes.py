"""Files a run writes get the user's umask (as open() would give them), not mkstemp's 0600, so
colleagues on a shared machine can read reports, configs and checkpoints."""

from __future__ import annotations

import os
import stat

import pytest

from layerscope.store.atomic import atomic_write_json, atomic_write_text


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_follow_the_umask(tmp_path, mask, expected):
    old = os.umask(mask)
    try:
        atomic_write_text(tmp_path / "report.html", "<html></html>")
        atomic_write_json(tmp_path / "done.json", {"loss": float("nan")})
        plain = tmp_path / "plain.txt"
        plain.write_text("x")  # what open() gives, the reference
    finally:
        os.umask(old)
    for name in ("report.html", "done.json"):
        mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
        assert mode == expected == stat.S_IMODE(plain.stat().st_mode), (name, oct(mode))
    assert (tmp_path / "done.json").read_text() == '{\n  "loss": null\n}\n'
