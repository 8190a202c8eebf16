"""``layerscope similarity`` on saved activation files."""

from __future__ import annotations

import numpy as np
import torch

from layerscope.cli import main
from layerscope.similarity import cka, pwcca


def test_all_measures_on_npy_and_pt_files(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6))
    y = x[:, :3] @ rng.normal(size=(3, 4)) + 0.3 * rng.normal(size=(400, 4))
    np.save(tmp_path / "x.npy", x)
    torch.save(torch.from_numpy(y), tmp_path / "y.pt")
    assert main(["similarity", str(tmp_path / "x.npy"), str(tmp_path / "y.pt")]) == 0
    out = capsys.readouterr().out
    assert "(400, 6) vs" in out
    lines = dict(line.split() for line in out.splitlines()[1:])
    assert set(lines) == {"cca", "svcca", "pwcca", "cka", "cka_biased"}
    assert float(lines["cka"]) == np.float64(f"{cka(x, y):.6f}")  # unbiased, the default
    assert float(lines["cka_biased"]) == np.float64(f"{cka(x, y, unbiased=False):.6f}")
    assert float(lines["pwcca"]) == np.float64(f"{pwcca(x, y).similarity:.6f}")


def test_feature_maps_need_spatial_and_errors_are_messages(tmp_path, capsys):
    maps = np.random.default_rng(1).normal(size=(30, 3, 4, 4))
    np.save(tmp_path / "a.npy", maps)
    np.save(tmp_path / "b.npy", maps[:, :2] * 2)
    assert main(["similarity", str(tmp_path / "a.npy"), str(tmp_path / "b.npy")]) == 2
    assert "spatial='positions'" in capsys.readouterr().err
    args = [str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--spatial", "positions"]
    assert main(["similarity", *args, "--measure", "cka"]) == 0
    assert "cka" in capsys.readouterr().out
    (tmp_path / "c.txt").write_text("1")
    assert main(["similarity", str(tmp_path / "c.txt"), str(tmp_path / "a.npy")]) == 2
    assert "unknown file type" in capsys.readouterr().err


def test_a_failing_measure_prints_na_and_the_others_still_run(tmp_path, capsys):
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))  # too few samples for most
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    assert main(["similarity", str(tmp_path / "x.npy"), str(tmp_path / "y.npy")]) == 0
    lines = dict(line.split(maxsplit=1) for line in capsys.readouterr().out.splitlines()[1:])
    assert float(lines["cka_biased"]) == np.float64(f"{cka(x, y, unbiased=False):.6f}")
    assert lines["cka"] == "n/a: this measure needs at least 4 samples, got 3"  # unbiased
    assert all(lines[name].startswith("n/a: ") for name in ("cca", "svcca", "pwcca"))


def test_run_options_need_run_folders_and_kinds_cannot_mix(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((8, 2)))
    files = [str(tmp_path / "x.npy"), str(tmp_path / "x.npy")]
    assert main(["similarity", *files, "--out", str(tmp_path / "a.png")]) == 2
    assert "--out only apply when comparing two run folders" in capsys.readouterr().err
    assert main(["similarity", str(tmp_path), files[0]]) == 2
    assert "two activation files or two run folders" in capsys.readouterr().err


def test_empty_or_damaged_activation_files_end_with_one_line(tmp_path, capsys):
    from layerscope.cli import main

    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a torch file")
    assert main(["similarity", str(empty), str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is empty" in err
    assert main(["similarity", str(broken), str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a readable torch file" in err
