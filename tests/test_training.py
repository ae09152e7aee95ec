"""Masked training: pruned weights stay exactly put under every optimizer, and checkpoints resume bit for bit."""

from __future__ import annotations

import pytest
import torch

from engine.config import from_dict, resolve_schedule
from engine.datasets import load_dataset
from engine.models import build_model, layer_kinds
from engine.training import Cancelled, TrainJob, generator, lr_factor, train_round


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", val_size=300)


def _setup(digits, optimizer: str, **train):
    config = from_dict({"train": {"optimizer": optimizer, "iterations": 120, "eval_every": 40, "batch_size": 32,
                                  **train},
                        "model": {"hidden": [64, 32]}})
    model = build_model("mlp", input_shape=digits.input_shape, num_classes=10, hidden=[64, 32],
                        generator=generator(3, "init"))
    kinds = layer_kinds(model)
    g = torch.Generator().manual_seed(0)
    masks = {n: torch.rand(dict(model.named_parameters())[n].shape, generator=g) > 0.8 for n in kinds}
    return config, model, masks


OPTIMIZERS = [("sgd", {"momentum": 0.9, "weight_decay": 1e-2, "lr": 0.1}), ("adam", {"weight_decay": 1e-2, "lr": 1e-2})]


@pytest.mark.parametrize("optimizer, train", OPTIMIZERS)
def test_pruned_weights_stay_exactly_zero(digits, optimizer, train):
    config, model, masks = _setup(digits, optimizer, **train)
    schedule = resolve_schedule(config, len(digits.train_x))
    with torch.no_grad():
        for name, mask in masks.items():
            dict(model.named_parameters())[name].mul_(mask)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_round(model, TrainJob(data=digits, config=config.train, schedule=schedule, masks=masks, frozen=None, seed=1))
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        assert torch.count_nonzero(params[name][~mask]) == 0, name
        assert not torch.equal(params[name][mask], before[name][mask]), "kept weights must train"


@pytest.mark.parametrize("optimizer, train", OPTIMIZERS)
def test_frozen_weights_are_bit_identical(digits, optimizer, train):
    """freeze_init: pruned weights hold θ0 exactly; momentum, Adam moments and weight decay move nothing."""
    config, model, masks = _setup(digits, optimizer, **train)
    schedule = resolve_schedule(config, len(digits.train_x))
    theta0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    frozen = {n: theta0[n] for n in masks}
    seen_states = []

    def on_eval(point):
        seen_states.append({n: p.detach().clone() for n, p in model.named_parameters()})

    train_round(model, TrainJob(data=digits, config=config.train, schedule=schedule, masks=masks, frozen=frozen, seed=1,
                                on_eval=on_eval))
    assert len(seen_states) == 4
    for state in seen_states + [dict(model.named_parameters())]:
        for name, mask in masks.items():
            assert torch.equal(state[name][~mask], theta0[name][~mask]), name
    for name, mask in masks.items():
        assert not torch.equal(model.state_dict()[name][mask], theta0[name][mask])


def test_checkpoint_resume_is_bit_identical(digits, tmp_path):
    config, model, masks = _setup(digits, "sgd", momentum=0.9, lr=0.05)
    schedule = resolve_schedule(config, len(digits.train_x))
    start = {k: v.clone() for k, v in model.state_dict().items()}

    def job(**extra):
        return TrainJob(data=digits, config=config.train, schedule=schedule, masks=masks, frozen=None, seed=7, **extra)

    straight = train_round(model, job())
    expected = {k: v.clone() for k, v in model.state_dict().items()}

    model.load_state_dict(start)
    calls = {"n": 0}

    def stop_after_70():
        calls["n"] += 1
        return calls["n"] > 70

    with pytest.raises(Cancelled):
        train_round(model, job(should_stop=stop_after_70, checkpoint_dir=tmp_path, checkpoint_seconds=0))
    assert (tmp_path / "checkpoint.safetensors").is_file()
    fresh = build_model("mlp", input_shape=digits.input_shape, num_classes=10, hidden=[64, 32],
                        generator=generator(99, "init"))
    fresh.load_state_dict(start)
    resumed = train_round(fresh, job(checkpoint_dir=tmp_path, checkpoint_seconds=0))
    for key, value in expected.items():
        assert torch.equal(fresh.state_dict()[key], value), key
    assert resumed.evals == straight.evals
    assert resumed.early_stop_iteration == straight.early_stop_iteration


def test_a_kill_between_the_checkpoint_files_still_resumes_exactly(digits, tmp_path, monkeypatch):
    """kill -9 after the new checkpoint tensors landed but before checkpoint.json did: the
    JSON says an older step. Resuming must follow the tensors' own step, not the stale JSON
    (the run's figures would silently differ from an uninterrupted run)."""
    import engine.store as store

    config, model, masks = _setup(digits, "adam", lr=2e-3)
    schedule = resolve_schedule(config, len(digits.train_x))
    start = {k: v.clone() for k, v in model.state_dict().items()}

    def job(**extra):
        return TrainJob(data=digits, config=config.train, schedule=schedule, masks=masks, frozen=None, seed=3, **extra)

    straight = train_round(model, job())
    expected = {k: v.clone() for k, v in model.state_dict().items()}

    model.load_state_dict(start)
    saves = {"n": 0}
    write_json = store.write_json_atomic

    def dies_before_the_second_json(path, data):
        saves["n"] += 1
        if saves["n"] == 2:  # the second checkpoint: tensors written, then "killed"
            raise Cancelled("killed between the two files")
        write_json(path, data)

    monkeypatch.setattr(store, "write_json_atomic", dies_before_the_second_json)
    with pytest.raises(Cancelled):
        train_round(model, job(checkpoint_dir=tmp_path, checkpoint_seconds=0))
    monkeypatch.undo()
    stale = store.read_json(tmp_path / "checkpoint.json")["step"]
    assert store.checkpoint_meta(tmp_path)["step"] > stale  # the tensors are one checkpoint ahead

    fresh = build_model("mlp", input_shape=digits.input_shape, num_classes=10, hidden=[64, 32],
                        generator=generator(99, "init"))
    fresh.load_state_dict(start)
    resumed = train_round(fresh, job(checkpoint_dir=tmp_path, checkpoint_seconds=0))
    for key, value in expected.items():
        assert torch.equal(fresh.state_dict()[key], value), key
    assert resumed.evals == straight.evals


def test_early_stop_is_the_minimum_validation_loss(digits):
    config, model, masks = _setup(digits, "adam", lr=5e-3)
    schedule = resolve_schedule(config, len(digits.train_x))
    out = train_round(model,
                      TrainJob(data=digits, config=config.train, schedule=schedule, masks=masks, frozen=None, seed=2))
    best = min(out.evals, key=lambda e: e["val_loss"])
    assert out.early_stop_iteration == best["iteration"]
    assert out.test_accuracy_at_early_stop == best["test_accuracy"]
    assert out.supermask_accuracy == out.evals[0]["test_accuracy"] and out.evals[0]["iteration"] == 0
    assert [e["iteration"] for e in out.evals] == [0, 40, 80, 120]


def test_learning_rate_schedules():
    config = from_dict({"train": {"iterations": 100, "warmup_iterations": 10, "schedule": "multistep",
                                  "milestones": [50, 80], "gamma": 0.1}})
    schedule = resolve_schedule(config, 6000)
    assert lr_factor(0, config.train, schedule) == pytest.approx(0.1)
    assert lr_factor(9, config.train, schedule) == pytest.approx(1.0)
    assert lr_factor(49, config.train, schedule) == pytest.approx(1.0)
    assert lr_factor(50, config.train, schedule) == pytest.approx(0.1)
    assert lr_factor(80, config.train, schedule) == pytest.approx(0.01)
    cosine = from_dict({"train": {"iterations": 100, "schedule": "cosine"}})
    s = resolve_schedule(cosine, 6000)
    assert lr_factor(0, cosine.train, s) == pytest.approx(1.0)
    assert lr_factor(50, cosine.train, s) == pytest.approx(0.5)


@pytest.mark.parametrize("optimizer, train", OPTIMIZERS)
@pytest.mark.parametrize("action", ["zero", "freeze_init"])
def test_pruned_positions_hold_at_every_single_step(digits, optimizer, train, action):
    """Checked before every step (not only at evaluations, where the loop re-applies the mask)."""
    config, model, masks = _setup(digits, optimizer, **train)
    schedule = resolve_schedule(config, len(digits.train_x))
    theta0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    frozen = {n: theta0[n] for n in masks} if action == "freeze_init" else None
    expected = {n: (theta0[n] if frozen else torch.zeros_like(theta0[n]))[~m] for n, m in masks.items()}
    params = dict(model.named_parameters())
    checks = {"n": 0}

    def check_then_continue():
        for name, mask in masks.items():
            assert torch.equal(params[name].detach()[~mask], expected[name]), (name, checks["n"])
        checks["n"] += 1
        return False

    train_round(model, TrainJob(data=digits, config=config.train, schedule=schedule, masks=masks, frozen=frozen, seed=1,
                                should_stop=check_then_continue))
    assert checks["n"] == schedule.iterations
