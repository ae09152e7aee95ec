"""Fast paths of the training step: validated switches, correct results on a CPU (no timings here)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from engine.config import ConfigError, from_dict, resolve_schedule
from engine.datasets import load_dataset
from engine.feeding import Batches, dataset_bytes, place_dataset
from engine.models import build_model, layer_kinds
from engine.optim import build_optimizer
from engine.runner import execute
from engine.store import create_run
from engine.training import Cancelled, TrainJob, generator, train_round

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", val_size=200)


def _raw(model="mlp", **train):
    return {"name": "fast", "device": "cpu", "data": {"name": "digits", "val_size": 200},
            "model": {"name": model, "hidden": [32]},
            "train": {"iterations": 30, "eval_every": 15, "batch_size": 32, "lr": 3e-3, **train},
            "prune": {"rounds": 1, "rate": {"conv": 0.5, "fc": 0.5, "output": 0.2}}}


def test_fast_path_switches_are_validated():
    config = from_dict(_raw())
    assert (config.train.compile, config.train.channels_last, config.train.bf16) == (False, False, False)
    assert from_dict(_raw("conv2", channels_last=True, bf16=True, compile=True)).train.channels_last
    for key in ("compile", "channels_last", "bf16"):
        with pytest.raises(ConfigError, match=f"train.{key}"):
            from_dict(_raw("conv2", **{key: "yes"}))
    with pytest.raises(ConfigError, match="train.channels_last.*conv nets"):
        from_dict(_raw("mlp", channels_last=True))
    # machine switches leave the config hash (and so the run id) alone; bf16 changes the arithmetic
    plain = from_dict(_raw("conv2")).config_hash()
    assert from_dict(_raw("conv2", channels_last=True, compile=True)).config_hash() == plain
    assert from_dict({**_raw("conv2"), "parallel_trials": False}).config_hash() == plain
    assert from_dict(_raw("conv2", bf16=True)).config_hash() != plain


@pytest.mark.parametrize("model, train", [("mlp", {"bf16": True}),
                                          ("conv2",
                                           {"bf16": True, "channels_last": True, "iterations": 6, "eval_every": 3,
                                                     "batch_size": 16}),  # bf16 convs are slow on CPUs without AMX
                                          ("conv2", {"channels_last": True, "optimizer": "sgd", "momentum": 0.9,
                                                     "weight_decay": 1e-3, "lr": 0.02})])
def test_fast_paths_finish_a_run_with_exact_masks(tmp_path, digits, model, train):
    run_dir = create_run(from_dict(_raw(model, **train)), tmp_path, preset="fast")
    events = []
    assert execute(run_dir, data=digits, on_event=events.append) == "done"
    # bf16 on a CPU measured 4-9x slower (benchmarks, table 7): the run says so, once
    warnings = [e["message"] for e in events if e["event"] == "warning"]
    assert len(warnings) == (1 if train.get("bf16") else 0)
    assert all("train.bf16" in w and "slower" in w for w in warnings)
    mask = load_file(str(run_dir / "trial-0/round-1/mask.safetensors"))
    final = load_file(str(run_dir / "trial-0/round-1/final.safetensors"))
    start = load_file(str(run_dir / "trial-0/round-1/start.safetensors"))
    for name, m in mask.items():
        assert torch.count_nonzero(final[name][~m]) == 0, name
        assert not torch.equal(final[name][m], start[name][m]), name
    assert final[next(iter(mask))].is_contiguous()


def test_channels_last_checkpoint_resumes_bit_for_bit(tmp_path, digits):
    config = from_dict(_raw("conv2", channels_last=True, optimizer="adam"))
    schedule = resolve_schedule(config, len(digits.train_x))
    model = build_model("conv2", input_shape=digits.input_shape, num_classes=10, generator=generator(0, "init"))
    masks = {n: torch.rand(p.shape, generator=torch.Generator().manual_seed(1)) > 0.5
             for n, p in model.named_parameters() if n in layer_kinds(model)}
    start = {k: v.clone() for k, v in model.state_dict().items()}

    def job(**extra):
        return TrainJob(data=digits, config=config.train, schedule=schedule, masks=masks, frozen=None, seed=3, **extra)

    straight = train_round(model, job())
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(start)
    calls = {"n": 0}
    with pytest.raises(Cancelled):
        train_round(model, job(should_stop=lambda: calls.__setitem__("n", calls["n"] + 1) or calls["n"] > 20,
                               checkpoint_dir=tmp_path, checkpoint_seconds=0))
    fresh = build_model("conv2", input_shape=digits.input_shape, num_classes=10, generator=generator(9, "init"))
    fresh.load_state_dict(start)
    resumed = train_round(fresh, job(checkpoint_dir=tmp_path))
    assert resumed.evals == straight.evals
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in expected.items())


def test_host_batches_equal_device_batches(digits):
    """The pinned, prefetching host path (forced here on a CPU) yields exactly the device path's batches."""
    per_epoch = len(digits.train_x) // 50

    def order(epoch):
        return torch.randperm(len(digits.train_x), generator=generator(5, "order", epoch))

    on_device = Batches(digits, order, 50, per_epoch, torch.device("cpu"), host=False)
    from_host = Batches(digits, order, 50, per_epoch, torch.device("cpu"), host=True)
    for step in [*range(2 * per_epoch + 3), 7, 7, 3 * per_epoch]:  # sequential, repeated, and a jump (resume)
        xa, ya = on_device(step)
        xb, yb = from_host(step)
        assert torch.equal(xa, xb) and torch.equal(ya, yb), step


def test_place_dataset_keeps_a_too_big_training_split_on_the_host(digits):
    assert place_dataset(digits, torch.device("cpu")).train_x.device.type == "cpu"
    placed = place_dataset(digits, torch.device("cpu"), budget_bytes=dataset_bytes(digits) - 1)
    assert placed.train_x.device.type == "cpu" and torch.equal(placed.train_x, digits.train_x)
    assert placed.test_x.device.type == "cpu"


def test_optimizers_are_fused_where_torch_has_them():
    params = [torch.nn.Parameter(torch.randn(4, 3))]
    for name in ("adam", "sgd"):
        config = from_dict({"train": {"optimizer": name, "momentum": 0.9 if name == "sgd" else 0.0}}).train
        assert build_optimizer(params, config).defaults.get("fused") is True
    meta = [torch.nn.Parameter(torch.randn(2, device="meta"))]  # no fused kernel there: plain optimizer
    assert not build_optimizer(meta, from_dict({}).train).defaults.get("fused")
