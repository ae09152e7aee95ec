"""The model options the reference recipes need, held against small ports of their code:
Greydanus' residual SparseMLP, PyTorch's default Linear/Conv init (the notebook's and OpenLTH's
biases), OpenLTH's bn_initializers.uniform; and the two presets that use them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.config import ConfigError, from_dict, load_config, resolve_schedule
from engine.models import build_model, init_std, layer_kinds
from engine.training import generator

PRESETS = Path(__file__).resolve().parent.parent / "presets"


def test_residual_mlp_is_the_notebooks_sparse_mlp():
    """notebooks/lottery-tickets.ipynb: h = relu(l1(x)); h = h + relu(l2(h)); out = l3(h)."""
    model = build_model("mlp", input_shape=(40,), num_classes=10, hidden=[50, 50], residual=True,
                        generator=generator(0, "init")).double()
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    x = np.random.default_rng(0).normal(size=(7, 40))
    relu = lambda a: np.maximum(a, 0)  # noqa: E731
    h = relu(x @ state["fc_layers.0.weight"].T + state["fc_layers.0.bias"])
    h = h + relu(h @ state["fc_layers.1.weight"].T + state["fc_layers.1.bias"])
    expected = h @ state["fc.weight"].T + state["fc.bias"]
    assert np.allclose(model(torch.from_numpy(x)).detach().numpy(), expected, rtol=1e-12, atol=1e-12)
    plain = build_model("mlp", input_shape=(40,), num_classes=10, hidden=[50, 50], generator=generator(0, "init"))
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), model.float().state_dict().values()))
    assert list(layer_kinds(model)) == ["fc_layers.0.weight", "fc_layers.1.weight", "fc.weight"]


def test_residual_needs_an_mlp_with_matching_widths():
    with pytest.raises(ConfigError, match="model.residual"):
        from_dict({"model": {"name": "mlp", "hidden": [300, 100], "residual": True}})
    with pytest.raises(ConfigError, match="model.residual"):
        from_dict({"model": {"name": "lenet-300-100", "residual": True}})


def test_torch_default_init_and_biases():
    """PyTorch's nn.Linear default: weight kaiming_uniform_(a=√5) and bias, both U(±1/√fan_in)."""
    model = build_model("mlp", input_shape=(40,), num_classes=10, hidden=[500], init="torch-default",
                        bias_init="torch-default", generator=generator(1, "init"))
    for name in ("fc_layers.0", "fc"):
        weight, bias = model.get_parameter(f"{name}.weight").detach(), model.get_parameter(f"{name}.bias").detach()
        bound = 1 / math.sqrt(weight.shape[1])
        assert bound >= weight.abs().max() > 0.95 * bound and bound >= bias.abs().max() > 0
        assert len(set(bias.sign().tolist())) == 2
        assert init_std(model, f"{name}.weight", "torch-default") == pytest.approx(bound / math.sqrt(3))
        assert float(weight.std()) == pytest.approx(bound / math.sqrt(3), rel=0.05 if name == "fc_layers.0" else 0.2)
    again = build_model("mlp", input_shape=(40,), num_classes=10, hidden=[500], init="torch-default",
                        bias_init="torch-default", generator=generator(1, "init"))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_openlth_batchnorm_and_bias_init():
    """bn_initializers.uniform: BN weight U[0,1), bias 0; conv/linear biases at PyTorch's default."""
    plain = build_model("vgg16", input_shape=(3, 32, 32), num_classes=10, init="kaiming-normal",
                        generator=generator(0, "init"))
    model = build_model("vgg16", input_shape=(3, 32, 32), num_classes=10, init="kaiming-normal", bn_init="uniform",
                        bias_init="torch-default", generator=generator(0, "init"))
    bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    weights = torch.cat([m.weight.detach() for m in bn])
    assert 0 <= float(weights.min()) and float(weights.max()) < 1 and 0.4 < float(weights.mean()) < 0.6
    assert all(float(m.bias.detach().abs().max()) == 0 for m in bn)
    conv = model.layers[0].conv
    assert 0 < float(conv.bias.detach().abs().max()) <= 1 / math.sqrt(3 * 9)
    assert all(float(m.weight.detach().min()) == 1.0 for m in plain.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert float(plain.layers[0].conv.bias.detach().abs().max()) == 0.0


def test_greydanus_preset_follows_the_notebook():
    c = load_config(PRESETS / "mnist1d-greydanus.toml")
    assert (c.model.hidden, c.model.residual, c.model.init, c.model.bias_init) == ([500, 500], True, "torch-default",
                                                                                   "torch-default")
    assert (c.train.optimizer, c.train.lr, c.train.batch_size, c.train.weight_decay, c.train.schedule) == ("adam", 2e-2,
                                                                                                           100, 0.0,
                                                                                                           "constant")
    assert resolve_schedule(c, 4000).iterations == 1502 and c.data.val_size == 0
    assert c.prune.rate["fc"] == c.prune.rate["output"] and c.prune.scope == "layerwise" and c.trials == 2
    assert (1 - c.prune.rate["fc"]) ** c.prune.rounds <= 0.02  # the reproduction goes down to <= 2% weights
    lottery = load_config(PRESETS / "mnist1d-lottery.toml")  # kept as it was
    assert lottery.config_hash()[:16] == "d7b410df3b43db10"


def test_last_batch_keep_covers_every_example_once_per_epoch():
    """OpenLTH's epochs: ceil(N / batch) steps, the last one short, every training example once."""
    from engine.datasets import load_dataset
    from engine.feeding import Batches

    data = load_dataset("digits", val_size=300)  # 1137 training examples
    config = from_dict({"train": {"batch_size": 100, "last_batch": "keep", "iterations": "2ep"}})
    schedule = resolve_schedule(config, len(data.train_x))
    assert schedule.iterations_per_epoch == 12 and schedule.iterations == 24
    batches = Batches(data, lambda epoch: torch.randperm(len(data.train_x), generator=generator(0, "order", epoch)),
                      100, schedule.iterations_per_epoch, torch.device("cpu"))
    for epoch in range(2):
        seen = torch.cat([batches.index(epoch * 12 + i) for i in range(12)])
        assert [len(batches.index(epoch * 12 + i)) for i in (0, 11)] == [100, 37]
        assert sorted(seen.tolist()) == list(range(1137))
    drop = resolve_schedule(from_dict({"train": {"batch_size": 100, "iterations": "2ep"}}), len(data.train_x))
    assert drop.iterations_per_epoch == 11
