"""Config loading, --set overrides and the errors bad input gets."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from engine.config import (
    ConfigError,
    ExperimentConfig,
    all_keys,
    apply_overrides,
    choices,
    from_dict,
    load_config,
    resolve_schedule,
    to_toml,
)
from engine.steps import Step
from lth_tui.presets import builtin_dir, list_presets

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_fill_every_field():
    config = from_dict({})
    assert config.prune.criterion == "large_final"
    assert config.prune.rate == {"conv": 0.1, "fc": 0.2, "output": 0.1}
    assert config.train.iterations == Step(2000)
    plain = config.to_dict()
    for key in all_keys():
        node = plain
        for part in key.split("."):
            assert part in node, key
            node = node[part]


def test_partial_rate_table_keeps_other_kinds():
    config = from_dict({"prune": {"rate": {"fc": 0.3}}})
    assert config.prune.rate == {"conv": 0.1, "fc": 0.3, "output": 0.1}


def test_every_shipped_preset_loads():
    names = {p.name for p in list_presets()}
    assert {"digits-quick", "mnist1d-lottery", "lenet-mnist", "conv2-cifar10", "conv4-cifar10", "conv6-cifar10",
            "resnet20-cifar10", "vgg16-cifar10"} <= names
    for path in builtin_dir().glob("*.toml"):
        config = load_config(path)
        assert config.description, path.name
        assert config.name == path.stem


def test_paper_recipes_match_their_tables():
    lenet = load_config(builtin_dir() / "lenet-mnist.toml")
    assert (lenet.train.optimizer, lenet.train.lr, lenet.train.batch_size, lenet.train.iterations) == ("adam", 1.2e-3,
                                                                                                       60, Step(50000))
    assert lenet.prune.rate["fc"] == 0.2 and lenet.prune.rate["output"] == 0.1 and lenet.prune.scope == "layerwise"
    for name, lr, its, conv in (("conv2", 2e-4, 20000, 0.1), ("conv4", 3e-4, 25000, 0.1), ("conv6", 3e-4, 30000, 0.15)):
        c = load_config(builtin_dir() / f"{name}-cifar10.toml")
        assert (c.train.lr, c.train.iterations, c.prune.rate["conv"], c.train.batch_size) == (lr, Step(its), conv, 60)
    resnet = load_config(builtin_dir() / "resnet20-cifar10.toml")
    schedule = resolve_schedule(resnet, 50000)  # OpenLTH holds nothing out: all 50,000 images train
    assert schedule.iterations_per_epoch == 391 and schedule.iterations == 62560  # ceil(50000 / 128) per epoch
    assert schedule.milestones == (80 * 391, 120 * 391)
    assert resnet.prune.scope == "global" and resnet.train.momentum == 0.9 and resnet.train.weight_decay == 1e-4
    # OpenLTH's cifar_resnet_20 prunes every layer, fc included; cifar_vgg_16 ignores fc.weight
    assert resnet.prune.rate == {"conv": 0.2, "fc": 0.2, "output": 0.2}
    vgg = load_config(builtin_dir() / "vgg16-cifar10.toml")
    assert vgg.prune.rate["output"] == 0.0 and vgg.prune.rate["conv"] == 0.2
    for c in (resnet, vgg):
        assert (c.data.val_size, c.model.bn_init, c.model.bias_init, c.train.last_batch) == (0, "uniform",
                                                                                             "torch-default", "keep")
    # "drop" stays the default
    assert resolve_schedule(from_dict({"train": {"batch_size": 128}}), 50000).iterations_per_epoch == 390


def test_overrides_parse_toml_values_and_bare_strings():
    raw = apply_overrides({}, ["prune.criterion=movement", "model.hidden=[64, 32]", "prune.rate.fc=0.3",
                               "train.iterations=2ep", "data.augment=true", "train.lr=1e-2"])
    config = from_dict(raw)
    assert config.prune.criterion == "movement"
    assert config.model.hidden == [64, 32]
    assert config.prune.rate["fc"] == 0.3
    assert config.train.iterations == Step(2, "ep")
    assert config.data.augment is True
    assert config.train.lr == 0.01


@pytest.mark.parametrize("raw, key, fragment", [
    ({"prune": {"critrion": "x"}}, "prune.critrion", "allowed here: rounds"),
    ({"train": {"lr": "fast"}}, "train.lr", "expected a number"),
    ({"prune": {"criterion": "biggest"}}, "prune.criterion", "large_final"),
    ({"model": {"name": "gpt"}}, "model.name", "lenet-300-100"),
    ({"data": {"name": "imagenet"}}, "data.name", "mnist1d"),
    ({"prune": {"rate": {"fc": 1.5}}}, "prune.rate.fc", "0 <= rate < 1"),
    ({"prune": {"rate": {"fc": -0.1}}}, "prune.rate.fc", "0 <= rate < 1"),
    ({"prune": {"rate": {"attention": 0.1}}}, "prune.rate.attention", "conv, fc, output"),
    ({"train": {"iterations": "3 weeks"}}, "train.iterations", "2ep"),
    ({"trials": 0}, "trials", "at least 1"),
    ({"trials": True}, "trials", "integer"),
    ({"device": "tpu"}, "device", "cuda:N"),
    ({"prune": {"mask0": "melt"}}, "prune.mask0", "freeze_init"),
])
def test_bad_values_name_key_value_and_allowed(raw, key, fragment):
    with pytest.raises(ConfigError) as info:
        from_dict(raw, "bad.toml")
    message = str(info.value)
    assert message.startswith("bad.toml: ")
    assert key in message and fragment in message


def test_missing_file_and_syntax_error(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "broken.toml"
    bad.write_text("name = \n[prune\n")
    with pytest.raises(ConfigError, match="broken.toml: TOML syntax error"):
        load_config(bad)


def test_unknown_override_key_lists_keys():
    with pytest.raises(ConfigError, match="unknown key; allowed: .*prune.criterion"):
        apply_overrides({}, ["prune.critrion=random"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["prune.criterion"])


def test_rewind_iteration_must_fall_inside_training():
    config = from_dict({"train": {"iterations": 100}, "prune": {"rewind_iteration": 100}})
    with pytest.raises(ConfigError, match="prune.rewind_iteration"):
        resolve_schedule(config, 1000)


def test_toml_round_trip_and_hash():
    config = from_dict({"train": {"iterations": "3ep", "milestones": ["1ep", 200]}, "device": "cpu"})
    again = from_dict(tomllib.loads(to_toml(config)))
    assert again == config
    machine = from_dict({**tomllib.loads(to_toml(config)), "device": "cuda:1", "data": {"dir": "/x", "download": True}})
    assert machine.config_hash() == config.config_hash()
    assert from_dict({"seed": 1}).config_hash() != from_dict({"seed": 2}).config_hash()


def test_choices_come_from_registries():
    from engine.criteria import CRITERIA

    assert choices()["prune.criterion"] == tuple(CRITERIA)
    assert isinstance(ExperimentConfig().get("prune.rate.fc"), float)
