"""``layerscope similarity RUN_DIR --over-epochs``: each recorded layer at every kept checkpoint
against the last, checked against linear CKA computed in numpy (float64) from the activations of
the two checkpoints, written into the run folder and shown by the report only then."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from layerscope.cli import main
from layerscope.errors import RunFolderError
from layerscope.lab import load_config, run_one
from layerscope.lab.checkpoint import all_checkpoints, load_checkpoint
from layerscope.lab.runs import load_run_model
from layerscope.lab.similarity_epochs import OVER_EPOCHS_FILE, similarity_over_epochs_run


def unbiased_linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA from the unbiased HSIC estimator (Song et al. 2012), float64."""

    def hsic(k, m):
        n = len(k)
        k, m = k.copy(), m.copy()
        np.fill_diagonal(k, 0.0)
        np.fill_diagonal(m, 0.0)
        ones = np.ones(n)
        trace = np.sum(k * m)
        middle = (ones @ k @ ones) * (ones @ m @ ones) / ((n - 1) * (n - 2))
        last = 2.0 / (n - 2) * (ones @ k @ m @ ones)
        return (trace + middle - last) / (n * (n - 3))

    k, m = x @ x.T, y @ y.T
    return hsic(k, m) / np.sqrt(hsic(k, k) * hsic(m, m))


def activations(model: nn.Module, inputs: torch.Tensor) -> dict[str, np.ndarray]:
    """Every Linear layer's output on ``inputs``, float64, by name (own hooks, not the library's)."""
    found, handles = {}, []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(
                lambda _m, _i, out, name=name: found.__setitem__(name, out.detach().double())
            ))  # fmt: skip
    try:
        with torch.no_grad():
            model.eval()(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return {name: value.flatten(1).numpy() for name, value in found.items()}


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("over")
    (cfg,) = load_config({
        "model": "mlp", "model_kwargs": {"input_size": 8, "hidden": {"value": [16]}},
        "resolution": 8, "epochs": 3, "batch_size": 128, "device": "cpu", "seed": 2,
        "metrics": ["accuracy"], "run_id": "r", "logs_dir": str(root / "logs"),
        "checkpoints": {"keep": "all"}, "optimizer": {"lr": 0.01},
    })  # fmt: skip
    return run_one(cfg, progress=False).run_dir


def test_cka_over_epochs_equals_numpy_cka_of_the_checkpoints_activations(run_folder):
    report = run_folder / "report.html"
    assert "Similarity over epochs" not in report.read_text(encoding="utf-8")
    (run_folder / OVER_EPOCHS_FILE).unlink(missing_ok=True)
    results = similarity_over_epochs_run(run_folder, batch_size=10_000)  # one batch: exact CKA
    result = results["cka"]
    found = all_checkpoints(run_folder / "checkpoints")
    assert result.epochs == (0, 1, 2) == tuple(e for e, _ in found)
    models = [load_run_model(run_folder, device="cpu", checkpoint=load_checkpoint(p))
              for _, p in found]  # fmt: skip
    data = models[0][1]
    inputs = torch.stack([data.test[i][0] for i in range(len(data.test))])
    last = activations(models[-1][0], inputs)
    assert result.layers == tuple(last)
    for i, (model, _, _) in enumerate(models):
        acts = activations(model, inputs)
        expected = [unbiased_linear_cka(acts[name], last[name]) for name in result.layers]
        np.testing.assert_allclose(result.values[i], expected, rtol=1e-4, atol=1e-5)
    assert result.num_samples == len(inputs)
    stored = json.loads((run_folder / OVER_EPOCHS_FILE).read_text(encoding="utf-8"),
                        parse_constant=lambda c: pytest.fail(f"not valid JSON: {c}"))  # fmt: skip
    assert stored["epochs"] == [0, 1, 2] and stored["reference_epoch"] == 2
    np.testing.assert_allclose(stored["measures"]["cka"]["values"], result.values)
    page = report.read_text(encoding="utf-8")
    assert "Similarity over epochs" in page and "similarity_over_epochs_cka" in page
    assert "from epoch</th>" in page  # the table


def test_the_command_and_svcca(run_folder, capsys):
    assert main(["similarity", str(run_folder), "--over-epochs", "--measure", "all",
                 "--max-batches", "2"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "cka against epoch 2" in out and "svcca against epoch 2" in out
    stored = json.loads((run_folder / OVER_EPOCHS_FILE).read_text(encoding="utf-8"))
    svcca = np.array(stored["measures"]["svcca"]["values"])
    np.testing.assert_allclose(svcca[-1], 1.0, atol=1e-6)  # the last epoch against itself
    assert main(["similarity", str(run_folder)]) == 2
    assert "--over-epochs" in capsys.readouterr().err


def test_fewer_than_two_checkpoints_names_the_config_lines(run_folder, tmp_path, capsys):
    copy = tmp_path / "one"
    shutil.copytree(run_folder, copy)
    for _, path in all_checkpoints(copy / "checkpoints")[:-1]:
        path.unlink()
    with pytest.raises(RunFolderError, match="kept 1 epoch checkpoint") as info:
        similarity_over_epochs_run(copy)
    block = str(info.value).split(":\n", 1)[1]
    config = tmp_path / "c.toml"
    config.write_text(f'model = "mlp"\n{block}\n')
    assert load_config(config)[0].checkpoints.keep is None  # "all"
    (copy / OVER_EPOCHS_FILE).unlink(missing_ok=True)
    from layerscope.report.html import write_report

    write_report(copy)
    assert "Similarity over epochs" not in (copy / "report.html").read_text(encoding="utf-8")
    assert main(["similarity", str(copy), "--over-epochs"]) == 2
    assert "[checkpoints]" in capsys.readouterr().err
