"""The Tracker against offline numpy computations on the very outputs it saw."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from layerscope import Tracker
from layerscope.errors import LayerTooWideError, PhaseError


class SmallNet(nn.Module):
    """Conv (with an in-place ReLU after it), LSTM over positions, Linear on tokens."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.lstm = nn.LSTM(6, 5)  # (T, N, C) layout: not batch_first
        self.token_fc = nn.Linear(5, 4)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        x = self.relu(self.conv(x))  # ReLU overwrites conv's output in place
        tokens = x.flatten(2).permute(2, 0, 1)  # (H*W, N, C)
        sequence, _ = self.lstm(tokens)
        y = self.token_fc(sequence.transpose(0, 1))  # (N, T, 4): Linear on tokens
        return self.head(y.mean(1))


def capture_outputs(model: nn.Module, names: list[str]):
    """Independent recording: clone every output (before any in-place op runs)."""
    captured = {name: [] for name in names}
    handles = []
    modules = dict(model.named_modules())
    for name in names:

        def hook(module, args, output, name=name):
            out = output[0] if isinstance(output, tuple) else output
            captured[name].append(out.detach().clone())

        handles.append(modules[name].register_forward_hook(hook))
    return captured, handles


def numpy_eigenvalues(samples: np.ndarray) -> np.ndarray:
    samples = samples.astype(np.float64)
    centred = samples - samples.mean(axis=0)
    return np.sort(np.linalg.eigvalsh(centred.T @ centred / len(samples)))[::-1]


def numpy_intrinsic_dimension(eigenvalues: np.ndarray, delta: float) -> int:
    fractions = np.cumsum(eigenvalues) / eigenvalues.sum()
    return int(np.argmax(fractions >= delta * (1 - 1e-12))) + 1


def test_tracked_model_gives_bit_identical_outputs_and_gradients():
    torch.manual_seed(0)
    model = SmallNet()
    twin = copy.deepcopy(model)
    x = torch.randn(4, 3, 5, 5)
    with Tracker(model, weights=False):
        out = model(x)
        out.sum().backward()
    reference = twin(x)
    reference.sum().backward()
    assert torch.equal(out, reference)
    for (name, p), (_, q) in zip(model.named_parameters(), twin.named_parameters(), strict=True):
        assert torch.equal(p.grad, q.grad), name


def test_saturation_equals_offline_numpy_over_all_batches_of_the_phase():
    torch.manual_seed(1)
    model = SmallNet()
    names = ["conv", "lstm", "token_fc"]
    captured, handles = capture_outputs(model, names)
    batches = [torch.randn(4, 3, 5, 5) for _ in range(3)]
    with Tracker(model, delta=0.9, weights=False) as tracker:
        for x in batches:
            model(x)
        tracker.end_epoch()
    for h in handles:
        h.remove()
    df = tracker.dataframe()
    offline_samples = {
        # conv: every position of every image; captured before the in-place ReLU
        "conv": np.concatenate(
            [o.permute(0, 2, 3, 1).reshape(-1, 6).numpy() for o in captured["conv"]]
        ),
        # LSTM (T, N, C): every token
        "lstm": np.concatenate([o.reshape(-1, 5).numpy() for o in captured["lstm"]]),
        # Linear on (N, T, D): every token, not only the last one
        "token_fc": np.concatenate([o.reshape(-1, 4).numpy() for o in captured["token_fc"]]),
    }
    for name, samples in offline_samples.items():
        rows = df[(df.layer == name) & (df.phase == "train")].set_index("statistic").value
        eigenvalues = numpy_eigenvalues(samples)
        k = numpy_intrinsic_dimension(eigenvalues, 0.9)
        assert rows["samples"] == len(samples), name  # every batch, not only the last
        assert rows["intrinsic_dimension"] == k, name
        assert rows["saturation"] == pytest.approx(k / samples.shape[1]), name
        assert rows["trace"] == pytest.approx(eigenvalues.sum(), rel=1e-6), name  # mixed default


def test_in_place_op_after_layer_does_not_change_the_record():
    model = nn.Sequential(nn.Conv2d(1, 4, 1), nn.ReLU(inplace=True))
    x = torch.randn(8, 1, 4, 4)
    pre_relu = model[0](x).detach()
    with Tracker(model, statistics=["trace"], weights=False) as tracker:
        model(x)
        tracker.end_epoch()
    trace = tracker.dataframe().query("statistic == 'trace'").value.item()
    samples = pre_relu.permute(0, 2, 3, 1).reshape(-1, 4).double().numpy()
    assert trace == pytest.approx(numpy_eigenvalues(samples).sum(), rel=1e-6)


def test_train_and_eval_are_kept_apart():
    model = nn.Sequential(nn.Linear(3, 3))
    train_x, eval_x = torch.randn(50, 3), torch.randn(20, 3) * 5
    with Tracker(model, statistics=["trace"], weights=False) as tracker:
        model(train_x)
        model.eval()
        model(eval_x)
        tracker.end_epoch()
    df = tracker.dataframe().set_index(["phase", "statistic"]).value
    assert df[("train", "samples")] == 50 and df[("eval", "samples")] == 20
    with torch.no_grad():
        expected = numpy_eigenvalues(model(eval_x).numpy()).sum()
    assert df[("eval", "trace")] == pytest.approx(expected, rel=1e-6)


def test_downsampling_records_the_pooled_map():
    model = nn.Sequential(nn.Conv2d(2, 3, 1))
    x = torch.randn(4, 2, 8, 8)
    with Tracker(model, downsample=2, statistics=["trace"], weights=False) as tracker:
        model(x)
        tracker.end_epoch()
    rows = tracker.dataframe().set_index("statistic").value
    with torch.no_grad():
        pooled = F.adaptive_avg_pool2d(model(x), 2)
    samples = pooled.permute(0, 2, 3, 1).reshape(-1, 3).numpy()
    assert rows["samples"] == 4 * 2 * 2
    assert rows["trace"] == pytest.approx(numpy_eigenvalues(samples).sum(), rel=1e-6)


def test_every_n_batches_and_max_batches_take_exactly_those_batches():
    model = nn.Sequential(nn.Linear(2, 2))
    batches = [torch.randn(10, 2) * (i + 1) for i in range(7)]
    with Tracker(model, every_n_batches=3, statistics=["trace"], weights=False) as every:
        for x in batches:
            model(x)
        every.end_epoch()
    with torch.no_grad():
        expected = numpy_eigenvalues(torch.cat([model(batches[i]) for i in (0, 3, 6)]).numpy())
    rows = every.dataframe().set_index("statistic").value
    assert rows["samples"] == 30
    assert rows["trace"] == pytest.approx(expected.sum(), rel=1e-6)

    with Tracker(model, max_batches=2, weights=False) as capped:
        for x in batches:
            model(x)
        capped.end_epoch()
    assert capped.dataframe().query("statistic == 'samples'").value.item() == 20


def test_evaluation_only_needs_no_end_epoch():
    model = nn.Sequential(nn.Linear(4, 4)).eval()
    with Tracker(model, weights=False) as tracker, torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, 4))
    df = tracker.dataframe()
    assert set(df.phase) == {"eval"} and set(df.epoch) == {0}
    assert df.query("statistic == 'samples'").value.item() == 48


def test_training_only_and_several_named_evaluation_sets():
    model = nn.Sequential(nn.Linear(4, 4))
    with Tracker(model, weights=False) as tracker:
        for _ in range(2):  # training only
            model.train()
            model(torch.randn(8, 4))
            tracker.end_epoch()
        model.eval()
        with tracker.phase("validation"):
            model(torch.randn(8, 4))
        with tracker.phase("test"):
            model(torch.randn(8, 4))
        tracker.end_epoch()
    df = tracker.dataframe()
    assert sorted(df[df.epoch < 2].phase.unique()) == ["train"]
    assert sorted(df[df.epoch == 2].phase.unique()) == ["test", "validation"]


def test_forgetting_end_epoch_is_a_clear_error():
    model = nn.Sequential(nn.Linear(2, 2))
    tracker = Tracker(model, weights=False)
    model(torch.randn(4, 2))
    model.eval()
    model(torch.randn(4, 2))
    model.train()
    with pytest.raises(PhaseError, match=r"call tracker\.end_epoch\(\)"):
        model(torch.randn(4, 2))
    tracker.close()


def test_ending_an_epoch_twice_is_a_clear_error():
    model = nn.Sequential(nn.Linear(2, 2))
    with Tracker(model, weights=False) as tracker:
        model(torch.randn(4, 2))
        tracker.end_epoch()
        with pytest.raises(PhaseError, match="called twice"):
            tracker.end_epoch()


def test_close_writes_batches_after_the_last_end_epoch_with_a_warning():
    model = nn.Sequential(nn.Linear(2, 2))
    tracker = Tracker(model, weights=False)
    model(torch.randn(4, 2))
    tracker.end_epoch()
    model(torch.randn(4, 2))
    with pytest.warns(RuntimeWarning, match="written as epoch 1 at close"):
        tracker.close()
    assert set(tracker.dataframe().epoch) == {0, 1}


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_close_removes_every_hook_and_is_safe_twice():
    model = SmallNet()
    tracker = Tracker(model)
    assert hook_count(model) > 0
    model(torch.randn(2, 3, 4, 4))
    tracker.close()
    tracker.close()
    assert hook_count(model) == 0


def test_exception_inside_with_block_leaves_no_hook_and_keeps_finished_phases():
    model = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(RuntimeError, match="boom"), Tracker(model, weights=False) as tracker:
        model(torch.randn(4, 2))
        tracker.end_epoch()
        model(torch.randn(4, 2))
        raise RuntimeError("boom")
    assert hook_count(model) == 0
    assert set(tracker.dataframe().epoch) == {0}  # the interrupted epoch is dropped


def test_nothing_is_written_onto_the_users_modules():
    model = SmallNet()
    before = {name: set(vars(m)) for name, m in model.named_modules()}
    with Tracker(model) as tracker:
        model(torch.randn(2, 3, 4, 4))
        tracker.end_epoch()
    after = {name: set(vars(m)) for name, m in model.named_modules()}
    assert before == after


def test_layer_names_are_unique_and_in_forward_order():
    class Reordered(nn.Module):
        def __init__(self):
            super().__init__()
            self.late = nn.Linear(4, 2)  # registered first, runs second
            self.early = nn.Linear(3, 4)

        def forward(self, x):
            return self.late(self.early(x))

    model = Reordered()
    with Tracker(model, weights=False) as tracker:
        model(torch.randn(5, 3))
        tracker.end_epoch()
    assert [layer.name for layer in tracker.layers] == ["early", "late"]
    assert [layer.index for layer in tracker.layers] == [0, 1]


def test_relative_weight_change_and_distance_match_numpy():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    initial = [model[0].weight.detach().clone().numpy(), model[2].weight.detach().clone().numpy()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    history = [initial]
    with Tracker(model) as tracker:
        for _ in range(2):
            optimizer.zero_grad()
            model(torch.randn(16, 3)).pow(2).sum().backward()
            optimizer.step()
            tracker.end_epoch()
            history.append(
                [model[0].weight.detach().clone().numpy(), model[2].weight.detach().clone().numpy()]
            )
    df = tracker.dataframe().query("phase == 'weights'")
    for epoch in (0, 1):
        for i, layer in enumerate(["0", "2"]):
            rows = df[(df.epoch == epoch) & (df.layer == layer)].set_index("statistic").value
            previous, current = history[epoch][i], history[epoch + 1][i]
            rwc = np.abs(current - previous).sum() / np.abs(previous).sum()
            distance = np.linalg.norm(current - initial[i])
            assert rows["relative_weight_change"] == pytest.approx(rwc, rel=1e-6)
            assert rows["distance_from_init"] == pytest.approx(distance, rel=1e-6)


def test_user_scalars_go_through_the_same_records():
    model = nn.Sequential(nn.Linear(2, 2))
    with Tracker(model, weights=False) as tracker:
        model(torch.randn(4, 2))
        tracker.end_epoch(loss=torch.tensor(0.25), accuracy=0.5)
    df = tracker.dataframe().query("phase == 'epoch'").set_index("statistic").value
    assert df["loss"] == 0.25 and df["accuracy"] == 0.5
    with pytest.raises(TypeError, match="'loss' must be a number"):
        Tracker(model).log(loss="low")


def test_average_saturation_is_the_mean_over_layers_with_trainable_parameters():
    model = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 4), nn.Linear(4, 2))
    model[3].requires_grad_(False)  # a frozen layer is recorded but not part of s_mu
    with Tracker(model, weights=False) as tracker:
        model(torch.randn(40, 3))
        tracker.end_epoch()
    df = tracker.dataframe()
    saturation = df[df.statistic == "saturation"].set_index("layer").value
    assert len(saturation) == 3
    expected = (saturation["0"] + saturation["2"]) / 2
    assert df.query("statistic == 'average_saturation'").value.item() == pytest.approx(expected)


def test_dead_layer_is_flagged_not_nan():
    model = nn.Sequential(nn.Linear(3, 3))
    nn.init.zeros_(model[0].weight)
    nn.init.zeros_(model[0].bias)
    with Tracker(model, weights=False) as tracker:
        model(torch.randn(10, 3))
        tracker.end_epoch()
    rows = tracker.dataframe().set_index("statistic").value
    assert rows["saturation"] == 0.0 and rows["zero_variance"] == 1.0
    assert not rows.drop("log_determinant").isna().any()


def test_nan_outputs_are_rejected_with_a_warning():
    model = nn.Sequential(nn.Linear(2, 2))
    with Tracker(model, weights=False) as tracker:
        model(torch.randn(4, 2))
        model(torch.full((4, 2), float("nan")))
        with pytest.warns(RuntimeWarning, match="1 batch"):
            tracker.end_epoch()
    assert tracker.dataframe().query("statistic == 'samples'").value.item() == 4


def test_bad_options_fail_before_anything_runs():
    model = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(KeyError, match="Did you mean 'saturation'"):
        Tracker(model, statistics=["saturaton"])
    with pytest.raises(ValueError, match="not a scalar"):
        Tracker(model, statistics=["covariance"])
    with pytest.raises(ValueError, match="every_n_batches"):
        Tracker(model, every_n_batches=0)
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        Tracker("model")
    with pytest.raises(LayerTooWideError, match=r"layer '0' \(Linear\) has 9000 output features"):
        Tracker(nn.Sequential(nn.Linear(2, 9000)))
    assert hook_count(model) == 0


def test_refuses_to_mix_into_an_existing_run(tmp_path):
    model = nn.Sequential(nn.Linear(2, 2))
    with Tracker(model, tmp_path / "run") as tracker:
        model(torch.randn(4, 2))
        tracker.end_epoch()
    with pytest.raises(ValueError, match="start_epoch=1"):
        Tracker(model, tmp_path / "run")
    assert hook_count(model) == 0
    with Tracker(model, tmp_path / "run", start_epoch=1) as tracker:
        model(torch.randn(4, 2))
        tracker.end_epoch()
    assert sorted(tracker.dataframe().epoch.unique()) == [1]


def test_works_under_torch_compile_eager_backend():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    compiled = torch.compile(model, backend="eager")
    x = torch.randn(32, 3)
    with Tracker(model, weights=False) as tracker:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = compiled(x)
        tracker.end_epoch()
    assert torch.allclose(out, model(x))
    samples = tracker.dataframe().query("statistic == 'samples'").value
    assert samples.tolist() == [32.0, 32.0]


@pytest.mark.slow
def test_works_under_torch_compile_default_backend():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 2))
    x = torch.randn(8, 3, 6, 6)
    with Tracker(model, weights=False) as tracker:
        compiled = torch.compile(model)
        out = compiled(x)
        tracker.end_epoch()
    assert torch.allclose(out, model(x), atol=1e-5)
    assert tracker.dataframe().query("statistic == 'samples'").value.tolist() == [128.0, 8.0]


def test_channels_last_memory_format_is_read_along_the_right_axis():
    torch.manual_seed(4)
    x = torch.randn(6, 3, 7, 7)
    for memory_format in (torch.contiguous_format, torch.channels_last):
        model = nn.Sequential(nn.Conv2d(3, 5, 3)).to(memory_format=memory_format)
        with Tracker(model, statistics=["trace"], weights=False) as tracker:
            output = model(x.to(memory_format=memory_format)).detach()
            tracker.end_epoch()
        assert output.is_contiguous(memory_format=memory_format)
        rows = tracker.dataframe().set_index("statistic").value
        samples = output.permute(0, 2, 3, 1).reshape(-1, 5).double().numpy()
        assert rows["samples"] == 6 * 5 * 5
        assert rows["trace"] == pytest.approx(numpy_eigenvalues(samples).sum(), rel=1e-6)


def test_statistics_stay_on_the_outputs_device_by_default():
    # The meta device stands in for a GPU: no CUDA default, state goes where outputs are.
    model = nn.Sequential(nn.Linear(2, 2)).to("meta")
    tracker = Tracker(model, weights=False)
    model(torch.randn(3, 2, device="meta"))
    assert [a.device.type for a in tracker._accumulators.values()] == ["meta"]
    tracker._abort()
    cpu_model = nn.Sequential(nn.Linear(2, 2))
    pinned = Tracker(cpu_model, weights=False, device="meta")  # told where to keep them
    cpu_model(torch.randn(3, 2))
    assert [a.device.type for a in pinned._accumulators.values()] == ["meta"]
    pinned._abort()


def test_epochs_are_numbered_before_their_first_batch_or_not_at_all():
    model = nn.Sequential(nn.Linear(2, 2))
    with Tracker(model, weights=False) as tracker:
        tracker.begin_epoch(1)
        model(torch.randn(4, 2))
        model.eval()
        model(torch.randn(4, 2))
        with pytest.raises(PhaseError, match=r"already written as epoch 1"):
            tracker.end_epoch(epoch=2)
        tracker.end_epoch(epoch=1)
        model.train()
        model(torch.randn(4, 2))
        with pytest.raises(PhaseError, match="before the epoch's first batch"):
            tracker.begin_epoch(5)
        tracker.end_epoch()
    assert sorted(tracker.dataframe().epoch.unique().tolist()) == [1, 2]


def test_continuing_a_run_refuses_records_it_would_duplicate(tmp_path):
    model = nn.Sequential(nn.Linear(2, 2))
    with Tracker(model, tmp_path / "run") as tracker:
        for _ in range(2):
            model(torch.randn(4, 2))
            tracker.end_epoch()
    with pytest.raises(ValueError, match="from epoch 1 to 1"):
        Tracker(model, tmp_path / "run", start_epoch=1)
    assert hook_count(model) == 0
