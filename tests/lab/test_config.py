"""Config files: grid expansion, every error path, round trips and run folders."""

import json
import sys
from pathlib import Path

import pytest

from layerscope.errors import ConfigError, ConfigKeyError, ConfigTypeError
from layerscope.lab.config import (
    RunConfig,
    describe_runs,
    expand,
    load_config,
    read_config_file,
    resolve_device,
    run_dir,
)
from layerscope.registry import MODELS

EXAMPLE = Path(__file__).parents[2] / "examples" / "vgg_width_sweep.toml"


def _tiny_mlp(*, width=1.0, num_classes=10, in_channels=1, hidden=16):
    return ("mlp", width, hidden)


def _vgg11(*, width=1.0, num_classes=10, in_channels=3, dilation=1):
    return ("vgg11", width)


@pytest.fixture(autouse=True)
def models():
    """Throwaway models in MODELS (the real ones are built on another branch); removed after."""
    added = [name for name in ("tiny_mlp", "vgg11") if name not in MODELS]
    for name in added:
        MODELS.add(name, {"tiny_mlp": _tiny_mlp, "vgg11": _vgg11}[name])
    yield
    for name in added:
        MODELS.remove(name)


def runs(**config):
    return load_config({"model": "tiny_mlp", **config})


def error(exc, match, **config):
    with pytest.raises(exc, match=match) as info:
        runs(**config)
    return str(info.value)


# ------------------------------------------------------------------------------ grid expansion
def test_lists_expand_to_the_cartesian_product_in_file_order():
    grid = runs(width=[1, 0.5], seed=[0, 1, 2], optimizer={"lr": [0.1, 0.01]})
    assert len(grid) == 12
    assert [(r.width, r.seed, r.optimizer.lr) for r in grid[:4]] == [
        (1.0, 0, 0.1), (1.0, 0, 0.01), (1.0, 1, 0.1), (1.0, 1, 0.01),
    ]  # fmt: skip
    assert len({run_dir(r) for r in grid}) == 12


def test_name_lists_are_one_value_and_lists_of_lists_sweep():
    (single,) = runs(metrics=["accuracy", "top5"])
    assert single.metrics == ("accuracy", "top5")
    swept = runs(metrics=[["accuracy"], ["accuracy", "top5"]])
    assert [r.metrics for r in swept] == [("accuracy",), ("accuracy", "top5")]
    stats = runs(tracker={"statistics": [["saturation"], ["trace", "saturation"]]})
    assert [r.tracker.statistics for r in stats] == [("saturation",), ("trace", "saturation")]
    assert runs(metrics="accuracy")[0].metrics == ("accuracy",)
    assert runs(metrics=[])[0].metrics == ()


def test_value_wrapper_passes_a_list_as_one_value():
    (run,) = runs(model_kwargs={"hidden": {"value": [8, 4]}})
    assert run.model_kwargs == {"hidden": [8, 4]}
    swept = runs(model_kwargs={"hidden": [8, 16]})
    assert [r.model_kwargs["hidden"] for r in swept] == [8, 16]
    tables = runs(model_kwargs=[{"hidden": 2}, {"hidden": [3, 4]}])
    assert [r.model_kwargs for r in tables] == [{"hidden": 2}, {"hidden": 3}, {"hidden": 4}]
    pairs = runs(model_kwargs={"hidden": [{"value": [1, 2]}, {"value": [3]}]})
    assert [r.model_kwargs["hidden"] for r in pairs] == [[1, 2], [3]]
    assert runs(metrics={"value": ["top5"]})[0].metrics == ("top5",)


def test_sections_sweep_as_lists_of_tables_and_optimizer_shorthand():
    grid = runs(optimizer=[{"name": "sgd", "lr": 0.1}, "adam", {"name": "adamw", "step": [2, 4]}])
    assert [(r.optimizer.name, r.optimizer.lr, r.optimizer.step) for r in grid] == [
        ("sgd", 0.1, None), ("adam", 0.001, None), ("adamw", 0.001, 2), ("adamw", 0.001, 4),
    ]  # fmt: skip
    assert [r.optimizer.name for r in runs(optimizer=["sgd", "rmsprop"])] == ["sgd", "rmsprop"]


def test_optimizer_defaults_are_resolved_from_the_factory():
    (sgd,) = runs(optimizer="sgd")
    (adamw,) = runs(optimizer={"name": "adamw", "momentum": 0.8})
    assert (sgd.optimizer.lr, sgd.optimizer.momentum, sgd.optimizer.weight_decay) == (
        0.01,
        0.9,
        0.0,
    )
    assert (adamw.optimizer.lr, adamw.optimizer.momentum, adamw.optimizer.weight_decay) == (
        0.001, 0.8, 0.01,
    )  # fmt: skip


def test_expand_alone_returns_raw_runs():
    raw = expand({"model": "m", "epoch": [1, 2], "tracker": {"delta": [0.9, 0.99]}})
    assert raw == [
        {"model": "m", "epochs": 1, "tracker": {"delta": 0.9}},
        {"model": "m", "epochs": 1, "tracker": {"delta": 0.99}},
        {"model": "m", "epochs": 2, "tracker": {"delta": 0.9}},
        {"model": "m", "epochs": 2, "tracker": {"delta": 0.99}},
    ]


def test_phd_lab_spellings():
    (run,) = runs(epoch=[12], optimizer="adam", width="1/4")
    assert (run.epochs, run.optimizer.name, run.width) == (12, "adam", 0.25)


def test_toml_none_for_optional_values():
    (run,) = runs(tracker={"downsample": "none", "max_batches": "None", "include": "none"})
    assert run.tracker.downsample is None and run.tracker.include is None


# ------------------------------------------------------------------------------ key errors
def test_unknown_key_suggests_the_closest():
    message = error(ConfigKeyError, "Did you mean 'optimizer'", optimiser="sgd")
    assert "unknown key 'optimiser'" in message and "Valid keys at the top level" in message


def test_unknown_nested_key_suggests_within_the_section():
    error(
        ConfigKeyError,
        r"unknown key 'tracker.detla'. Did you mean 'tracker.delta'",
        tracker={"detla": 0.9},
    )
    error(
        ConfigKeyError, r"unknown key 'optimizer.learning_rate'", optimizer={"learning_rate": 0.1}
    )
    error(ConfigKeyError, r"unknown key 'optimizer.SHORTHAND'", optimizer={"SHORTHAND": "sgd"})


def test_keys_of_other_sections_are_pointed_to():
    error(ConfigKeyError, "Did you mean 'optimizer.lr'", lr=0.1)
    error(ConfigKeyError, "Did you mean 'tracker.delta'", delta=0.9)
    error(ConfigKeyError, "Did you mean 'optimizer.momentum'", tracker={"momentum": 0.9})


def test_phd_lab_keys_get_a_hint():
    error(ConfigKeyError, "data-parallel training is not a config key", data_parallel=True)
    error(ConfigKeyError, r"tracker.downsample.*use tracker.downsample", downsampling=None)


def test_missing_model_and_duplicate_alias():
    with pytest.raises(ConfigKeyError, match="missing required key 'model': the registered model"):
        load_config({"epochs": 3})
    error(ConfigKeyError, "both 'epoch' and 'epochs'", epoch=3, epochs=4)


# ------------------------------------------------------------------------------ type errors
@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"epochs": "30"}, r"key 'epochs' = '30' \(str\) should be an int"),
        ({"epochs": True}, r"key 'epochs' = True \(bool\) should be an int"),
        ({"batch_size": 64.0}, r"key 'batch_size' = 64.0 \(float\) should be an int"),
        (
            {"optimizer": {"lr": "fast"}},
            r"key 'optimizer.lr' = 'fast' \(str\) should be a number or none",
        ),
        ({"probes": "yes"}, r"key 'probes' = 'yes' \(str\) should be true/false"),
        ({"metrics": [1, 2]}, r"key 'metrics' = \[1, 2\] \(list\) should be a list of strings"),
        ({"model_kwargs": [1]}, r"key 'model_kwargs' = 1 \(int\) should be a table"),
        ({"model_kwargs": "x"}, r"key 'model_kwargs' = 'x' \(str\) should be a table"),
        ({"tracker": 5}, r"key 'tracker' = 5 \(int\) should be a table of TrackerOptions keys"),
        ({"optimizer": 3}, r"key 'optimizer' = 3 \(int\) should be a table of OptimizerConfig"),
        ({"width": "wide"}, r"key 'width' = 'wide' \(str\) should be a number"),
        ({"width": "1/0"}, r"key 'width' = '1/0' \(str\) should be a number"),
        ({"dataset": 3}, r"key 'dataset' = 3 \(int\) should be a string"),
        ({"run_id": 1.5}, r"key 'run_id' = 1.5 \(float\) should be a string or none"),
    ],
)
def test_wrong_types_name_key_value_and_expected_type(config, match):
    error(ConfigTypeError, match, **config)


def test_mixed_name_lists_are_ambiguous():
    error(ConfigTypeError, "mixes names and lists", metrics=["accuracy", ["top5"]])


def test_from_dict_does_not_expand_lists():
    with pytest.raises(
        ConfigTypeError, match="lists expand into a grid only when reading a config"
    ):
        RunConfig.from_dict({"model": "tiny_mlp", "epochs": [1, 2]})


def test_empty_list_makes_no_runs():
    error(ConfigError, r"key 'width' is an empty list", width=[])


def test_top_level_must_be_a_mapping():
    with pytest.raises(ConfigTypeError, match="a config is a table of keys"):
        load_config([{"model": "x"}])


# ------------------------------------------------------------------------------ value errors
@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"epochs": 0}, r"key 'epochs' = 0 must be >= 1"),
        ({"resolution": 0}, r"key 'resolution' = 0 must be >= 1"),
        ({"batch_size": -4}, r"key 'batch_size' = -4 must be >= 1"),
        ({"seed": -1}, r"key 'seed' = -1 must be in \[0, 2\*\*63\)"),
        ({"width": 0}, r"key 'width' = 0.0 must be > 0"),
        ({"num_workers": -1}, r"key 'num_workers' = -1 must be >= 0"),
        (
            {"device": "gpu"},
            r"key 'device' = 'gpu' must be 'auto', 'cpu', 'mps', 'cuda' or 'cuda:N'",
        ),
        ({"optimizer": {"lr": -0.1}}, r"key 'optimizer.lr' = -0.1 must be > 0"),
        ({"optimizer": {"momentum": 1.0}}, r"key 'optimizer.momentum' = 1.0 must be in \[0, 1\)"),
        ({"optimizer": {"weight_decay": -1}}, r"key 'optimizer.weight_decay' = -1.0 must be >= 0"),
        ({"optimizer": {"step": 0}}, r"key 'optimizer.step' = 0 must be >= 1"),
        ({"optimizer": {"factor": 0}}, r"key 'optimizer.factor' = 0.0 must be > 0"),
        ({"tracker": {"delta": 1.5}}, r"key 'tracker.delta' = 1.5 must be in \(0, 1\]"),
        ({"tracker": {"downsample": 0}}, r"key 'tracker.downsample' = 0 must be >= 1"),
        ({"tracker": {"every_n_batches": 0}}, r"key 'tracker.every_n_batches' = 0 must be >= 1"),
        ({"tracker": {"max_batches": 0}}, r"key 'tracker.max_batches' = 0 must be >= 1"),
        (
            {"tracker": {"precision": "double"}},
            r"'tracker.precision' = 'double' must be one of 'float64', 'mixed'",
        ),
        ({"tracker": {"downsample_method": "adaptive"}}, r"Did you mean 'adaptive_avg'"),
    ],
)
def test_out_of_range_values_state_the_rule(config, match):
    message = error(ConfigError, match, **config)
    assert not isinstance(message, ConfigTypeError)


# ------------------------------------------------------------------------------ registries
@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"model": "tiny_mpl"}, r"key 'model': unknown model 'tiny_mpl'. Did you mean 'tiny_mlp'"),
        ({"dataset": "digit"}, r"key 'dataset': unknown dataset 'digit'. Did you mean 'digits'"),
        (
            {"optimizer": "sdg"},
            r"key 'optimizer.name': unknown optimizer 'sdg'. Did you mean 'sgd'",
        ),
        (
            {"metrics": ["accuracy", "Top5"]},
            r"key 'metrics\[1\]': unknown metric 'Top5'. Did you mean 'top5'",
        ),
        (
            {"tracker": {"statistics": ["saturaton"]}},
            r"unknown statistic 'saturaton'. Did you mean 'saturation'",
        ),
    ],
)
def test_names_are_checked_against_the_registries(config, match):
    error(ConfigError, match, **config)


def test_factory_keyword_arguments_are_checked():
    error(
        ConfigKeyError, r"model_kwargs.hiden: .* Did you mean 'hidden'", model_kwargs={"hiden": 3}
    )
    error(
        ConfigKeyError,
        r"model_kwargs.width: 'width' is set by the top-level key",
        model_kwargs={"width": 2},
    )
    error(
        ConfigKeyError,
        r"dataset_kwargs.canvs: .* Did you mean 'canvas'",
        dataset_kwargs={"canvs": 64},
    )
    error(
        ConfigKeyError,
        r"'resolution' is set by the top-level key",
        dataset_kwargs={"resolution": 8},
    )
    (run,) = runs(dataset_kwargs={"canvas": 64, "channels": 3}, model_kwargs={"hidden": 4})
    assert run.dataset_kwargs == {"canvas": 64, "channels": 3}


def test_a_model_registered_inside_a_test_with_a_monkeypatched_registry(monkeypatch):
    from layerscope.registry import Registry

    registry = Registry("model")
    registry.add("only_here", lambda **kwargs: None)
    monkeypatch.setattr("layerscope.registry.MODELS", registry)
    (run,) = load_config({"model": "only_here", "model_kwargs": {"anything": 1}})
    assert run.model == "only_here"
    with pytest.raises(ConfigError, match="Known models: only_here"):
        load_config({"model": "tiny_mlp"})


# ------------------------------------------------------------------------------ run ids
def test_default_run_id_is_a_stable_hash_of_the_experiment():
    (a,) = runs(width=0.25, epochs=3)
    (b,) = load_config(
        {"epochs": 3, "width": "1/4", "model": "tiny_mlp", "device": "cpu", "num_workers": 2}
    )
    (c,) = runs(width=0.25, epochs=4)
    assert len(a.run_id) == 8 and all(ch in "0123456789abcdef" for ch in a.run_id)
    assert a.run_id == b.run_id  # key order, spelling of the width and technical keys don't count
    assert a.run_id != c.run_id
    grid = runs(width=[0.25, 0.5], epochs=3)
    assert grid[0].run_id == a.run_id  # the same run found again inside a bigger grid


def test_run_id_templates_and_their_errors():
    grid = runs(width=[1, 0.5], run_id="w{width}-lr{optimizer.lr}")
    assert [r.run_id for r in grid] == ["w1.0-lr0.001", "w0.5-lr0.001"]
    assert runs(run_id=7)[0].run_id == "7"
    assert runs(run_id="{seed}-{hash}")[0].run_id.startswith("0-")
    error(
        ConfigKeyError,
        r"refers to \{widht\}, which is not a config key. Did you mean \{width\}",
        run_id="{widht}",
    )
    error(ConfigError, "must be non-empty and use only letters", run_id="a/b")
    error(ConfigError, "must be non-empty and use only letters", run_id="..")
    error(ConfigError, r"key 'run_id' = 'x\{': ", run_id="x{")
    error(ConfigError, r"key 'run_id' = '\{optimizer.rate\}'", run_id="{optimizer.rate}")


def test_runs_sharing_a_folder_are_an_error():
    message = error(ConfigError, "runs 1 and 2 would both write to", num_workers=[0, 2])
    assert "run_id" in message
    # The message names the keys that really differ, not a fixed list of technical keys.
    assert "differ only in num_workers," in message and "logs_dir" not in message
    message = error(ConfigError, "would both write to", width=[1, 0.5], run_id="same")
    assert "differ only in width," in message and 'run_id = "{width}-{hash}"' in message
    message = error(ConfigError, "would both write to", seed=[3, 3])
    assert "They are identical" in message


def test_a_list_for_a_sequence_argument_is_one_value_and_a_list_of_lists_sweeps():
    from layerscope.models.mlp import MLP

    (one,) = load_config({"model": "mlp", "model_kwargs": {"hidden": [64, 32]}})
    assert one.model_kwargs == {"hidden": [64, 32]}
    from layerscope.lab.trainer import build_model

    model = build_model(one, 10, 1)
    assert isinstance(model, MLP)
    assert [m.out_features for m in model.layers if hasattr(m, "out_features")] == [64, 32, 10]
    two = load_config({"model": "mlp", "model_kwargs": {"hidden": [[8], [8, 4]]}})
    assert [run.model_kwargs["hidden"] for run in two] == [[8], [8, 4]]
    # Lists of other keys sweep as before.
    widths = load_config({"model": "mlp", "width": [1, 0.5]})
    assert [run.width for run in widths] == [1.0, 0.5]


# ------------------------------------------------------------------------------ round trips
def test_to_dict_is_json_and_from_dict_restores_the_run():
    (run,) = runs(width=0.5, model_kwargs={"hidden": 4}, tracker={"include": ["features.*"]})
    data = json.loads(json.dumps(run.to_dict()))
    assert RunConfig.from_dict(data) == run
    assert data["optimizer"]["lr"] == 0.001 and data["tracker"]["include"] == ["features.*"]
    assert data["run_id"] == run.run_id


def test_run_dir_layout():
    (run,) = runs(logs_dir="out", resolution=16, run_id="r1")
    assert run_dir(run) == Path("out/tiny_mlp/digits/16/r1")
    with pytest.raises(ConfigError, match="resolved run_id"):
        run_dir(RunConfig(model="m"))


def test_describe_runs_lists_each_run_and_folder():
    text = describe_runs(runs(width=[1, 0.25], seed=[0, 1], run_id="w{width}s{seed}"))
    lines = text.splitlines()
    assert lines[0].startswith("4 runs: model='tiny_mlp', dataset='digits', resolution=32")
    assert lines[1] == "  varying: seed, width"  # in the order of RunConfig's fields
    assert lines[2].split() == [
        "run",
        "1/4",
        "seed=0",
        "width=1",
        "->",
        "logs/tiny_mlp/digits/32/w1.0s0",
    ]
    assert "width=1/4" in lines[5] and lines[5].endswith("w0.25s1")
    assert describe_runs([]) == "0 runs"


# ------------------------------------------------------------------------------ files
def test_json_with_comments_like_the_dissertation_listing(tmp_path):
    path = tmp_path / "exp.json"
    path.write_text(
        """{
            // experiment configuration
            "model": ["tiny_mlp", "vgg11"],
            "epoch": 120, /* PHD-Lab's name for epochs */
            "batch_size": 64,
            "dataset": "digits",
            "resolution": 32,
            "optimizer": "adam",
            // evaluation configuration
            "metrics": ["accuracy", "top5"],
            // technical configuration
            "logs_dir": "./logs/",
            "device": "cpu",
            "run_id": "a//b-is-not-a-comment-inside-a-string"
        }"""
    )
    assert read_config_file(path)["run_id"] == "a//b-is-not-a-comment-inside-a-string"
    path.write_text(path.read_text().replace("a//b-is-not-a-comment-inside-a-string", "x"))
    grid = load_config(path)
    assert [(r.model, r.epochs, r.device) for r in grid] == [
        ("tiny_mlp", 120, "cpu"),
        ("vgg11", 120, "cpu"),
    ]


def test_toml_and_yaml_give_the_same_runs(tmp_path):
    (tmp_path / "c.toml").write_text(
        'model = "tiny_mlp"\nwidth = [1, "1/2"]\n[optimizer]\nname = "sgd"\nlr = 1e-3\nstep = 2\n'
    )
    (tmp_path / "c.yaml").write_text(
        "model: tiny_mlp\nwidth: [1, 1/2]\noptimizer:\n  name: sgd\n  lr: 1e-3\n  step: 2\n"
    )
    toml_runs, yaml_runs = load_config(tmp_path / "c.toml"), load_config(tmp_path / "c.yaml")
    assert toml_runs == yaml_runs
    assert [r.width for r in toml_runs] == [1.0, 0.5] and toml_runs[0].optimizer.lr == 0.001


def test_the_example_width_sweep():
    grid = load_config(EXAMPLE)
    assert [r.width for r in grid] == [1.0, 0.5, 0.25, 0.125]
    assert {(r.model, r.dataset, r.resolution) for r in grid} == {("vgg11", "digits", 32)}
    assert 4 <= grid[0].epochs <= 6
    assert [run_dir(r).name for r in grid] == ["w1.0", "w0.5", "w0.25", "w0.125"]


def test_errors_name_the_file_and_the_run(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('model = "tiny_mlp"\nwidth = [1, 0.5]\n[optimizer]\nlr = [0.1, -1]\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"config {path}, run 2 of 4 (width=1, optimizer.lr=-1): ")
    assert "key 'optimizer.lr' = -1.0 must be > 0" in message


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("c.json", '{"model": "x",}', "is not valid JSON"),
        ("c.toml", "model = ", "is not valid TOML"),
        ("c.yaml", "model: [x", "is not valid YAML"),
        ("c.yaml", "- a\n- b\n", "the top level must be a table of keys, got list"),
        ("c.ini", "model=x", "unknown format '.ini'"),
    ],
)
def test_file_errors(tmp_path, name, text, match):
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(tmp_path / name)


def test_missing_file_and_missing_pyyaml(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    (tmp_path / "c.yml").write_text("model: x\n")
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml now raises ImportError
    with pytest.raises(ConfigError, match="needs PyYAML: pip install pyyaml"):
        load_config(tmp_path / "c.yml")


# ------------------------------------------------------------------------------ devices
def test_resolve_device():
    import torch

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ConfigError, match="must be 'auto'"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="has 0 CUDA device"):
            resolve_device("cuda:1")


# ------------------------------------------------------------------------------ tracker options
def test_the_tracker_section_is_the_trackers_options():
    from layerscope.tracking import TrackerOptions

    (run,) = runs(tracker={"sinks": ["csv"], "max_features": 9000, "weights": False})
    assert isinstance(run.tracker, TrackerOptions)
    assert run.tracker.sinks == ("csv",) and run.tracker.max_features == 9000
    error(
        ConfigError, r"key 'tracker.sinks': unknown sink 'parquet'", tracker={"sinks": ["parquet"]}
    )
    error(ConfigError, r"key 'tracker.max_features' = 0 must be >= 1", tracker={"max_features": 0})
    grid = runs(tracker={"downsample": [4, 8]})  # a list of numbers sweeps
    assert [r.tracker.downsample for r in grid] == [4, 8]


def test_technical_tracker_options_do_not_change_the_run_id():
    (a,) = runs()
    (b,) = runs(tracker={"sinks": ["sqlite", "jsonl"], "max_features": 100, "device": "cpu"})
    (c,) = runs(tracker={"delta": 0.9})
    assert a.run_id == b.run_id != c.run_id
