"""train.cuda_graphs: validation, the graphed step's body run eagerly on a CPU against the
eager loop (bit for bit), and, where CUDA is visible, graphed against eager training on the GPU."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file

import engine.training
from engine import cuda_graphs
from engine.batched import parallel_trials_active
from engine.config import ConfigError, from_dict, resolve_schedule
from engine.dataset_tensors import RandomCropFlip
from engine.datasets import load_dataset
from engine.models import build_model, layer_kinds
from engine.runner import execute
from engine.store import checkpoint_meta, create_run
from engine.sweep_batch import batchable
from engine.training import Cancelled, TrainJob, generator, train_round

pytestmark = pytest.mark.usefixtures("one_thread")
CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", val_size=200)


def _raw(model="mlp", device="auto", **train):
    return {"name": "graphs", "device": device, "data": {"name": "digits", "val_size": 200},
            "model": {"name": model, "hidden": [32]},
            "train": {"iterations": 40, "eval_every": 20, "batch_size": 64, "lr": 3e-3, **train},
            "prune": {"rounds": 2, "rate": {"conv": 0.5, "fc": 0.5, "output": 0.2}}}


def test_the_switch_is_a_machine_key_and_validated():
    assert from_dict(_raw()).train.cuda_graphs is False
    plain = from_dict(_raw()).config_hash()
    assert from_dict(_raw(cuda_graphs=True)).config_hash() == plain  # same science, same run id
    assert from_dict(_raw(cuda_graphs=True)).to_dict()["train"]["cuda_graphs"] is True  # config.toml keeps it
    with pytest.raises(ConfigError, match="train.cuda_graphs"):
        from_dict(_raw(cuda_graphs="yes"))


@pytest.mark.parametrize("raw, why", [
    (_raw(device="cpu", cuda_graphs=True), "need a CUDA device"),
    ({**_raw(cuda_graphs=True), "experiment": "supermask"}, "trains masks in its own loop"),
    (_raw(cuda_graphs=True, compile=True), "torch.compile"),
    ({**_raw(cuda_graphs=True), "parallel_trials": True}, "batched trials are not captured"),
])
def test_combinations_a_graph_cannot_take_are_refused_in_one_line(raw, why):
    with pytest.raises(ConfigError, match=why) as caught:
        from_dict(raw)
    message = str(caught.value)
    assert "train.cuda_graphs" in message and "\n" not in message


def test_combinations_that_work_are_accepted(digits):
    """bf16, channels-last, augmentation, the short last batch, LMC and SGD run graphed (tested
    below on a CPU and on a GPU); parallel_trials = auto trains such trials one by one."""
    config = from_dict({**_raw("conv2", cuda_graphs=True, bf16=True, channels_last=True, optimizer="sgd",
                               momentum=0.9, last_batch="keep"),
                        "trials": 4, "analysis": {"lmc": False}})
    assert not parallel_trials_active(config, torch.device("cuda"))
    assert parallel_trials_active(dataclasses.replace(config, train=dataclasses.replace(config.train, cuda_graphs=False,
                                                                                         channels_last=False)),
                                  torch.device("cuda"))
    assert not batchable(config)
    from_dict({**_raw(cuda_graphs=True), "analysis": {"lmc": True}})


@pytest.mark.skipif(CUDA, reason="a CPU-only machine: device = auto trains on the CPU")
def test_a_cpu_found_at_run_start_is_refused_in_one_line(tmp_path, digits):
    with pytest.raises(ConfigError, match="train.cuda_graphs.*CUDA device.*cpu"):
        cuda_graphs.check_device(from_dict(_raw(cuda_graphs=True)).train, torch.device("cpu"))
    run_dir = create_run(from_dict(_raw(cuda_graphs=True)), tmp_path, preset="graphs")
    events = []
    assert execute(run_dir, data=digits, on_event=events.append) == "failed"
    errors = [e["message"] for e in events if e["event"] == "error"]
    assert len(errors) == 1 and "train.cuda_graphs" in errors[0] and "CUDA device" in errors[0]
    assert "\n" not in errors[0]
    assert json.loads((run_dir / "status.json").read_text())["error"] == errors[0]
    assert not any(e["event"] == "eval" for e in events)  # refused before the first step


class _Recorder:
    """GraphedStep as train_round uses it, with every instance kept for the test to inspect."""

    def __init__(self):
        self.steps: list[cuda_graphs.GraphedStep] = []

    def __call__(self, *args, **kwargs):
        step = cuda_graphs.GraphedStep(*args, **kwargs)
        self.steps.append(step)
        return step


@pytest.fixture
def graphed_on_cpu(monkeypatch):
    """train_round with train.cuda_graphs on a CPU: the static-buffer step, run eagerly."""
    recorder = _Recorder()
    monkeypatch.setattr(engine.training, "check_device", lambda config, device: None)
    monkeypatch.setattr(engine.training, "GraphedStep", recorder)
    return recorder


def _round(data, model_name, frozen_init=False, **train):
    config = from_dict(_raw(model_name, **train))
    schedule = resolve_schedule(config, len(data.train_x))
    model = build_model(model_name, input_shape=data.input_shape, num_classes=10, generator=generator(0, "init"),
                        hidden=[32]) if model_name == "mlp" else build_model(
        model_name, input_shape=data.input_shape, num_classes=10, generator=generator(0, "init"))
    masks = {n: torch.rand(p.shape, generator=torch.Generator().manual_seed(1)) > 0.4
             for n, p in model.named_parameters() if n in layer_kinds(model)}
    start = {k: v.clone() for k, v in model.state_dict().items()}
    frozen = {n: start[n] for n in masks} if frozen_init else None

    def job(config_train, **extra):
        return TrainJob(data=data, config=config_train, schedule=schedule, masks=masks, frozen=frozen, seed=3, **extra)

    return config, model, start, masks, job


CPU_CASES = [
    pytest.param("mlp", False, {"schedule": "cosine", "warmup_iterations": 7, "weight_decay": 1e-3},
                 id="adam-cosine-warmup-wd"),
    pytest.param("mlp", True, {"optimizer": "sgd", "momentum": 0.9, "lr": 0.05, "weight_decay": 1e-3,
                               "schedule": "multistep", "milestones": [15, 30], "last_batch": "keep",
                               "batch_size": 100}, id="sgd-momentum-multistep-freeze-short-last-batch"),
    pytest.param("mlp", False, {"optimizer": "sgd", "lr": 0.05}, id="plain-sgd"),
    pytest.param("conv2", False, {"channels_last": True, "iterations": 12, "eval_every": 6, "batch_size": 32},
                 id="conv2-channels-last-augmented"),
    pytest.param("mlp", False, {"bf16": True, "iterations": 12, "eval_every": 6}, id="bf16"),
]


@pytest.mark.parametrize("model_name, frozen_init, train", CPU_CASES)
def test_the_static_step_run_eagerly_equals_the_eager_loop_bit_for_bit(digits, graphed_on_cpu, model_name,
                                                                       frozen_init, train):
    data = dataclasses.replace(digits, augment=RandomCropFlip(padding=1)) if model_name == "conv2" else digits
    config, model, start, masks, job = _round(data, model_name, frozen_init, **train)
    eager = train_round(model, job(config.train))
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(start)
    graphed = train_round(model, job(dataclasses.replace(config.train, cuda_graphs=True)))
    assert graphed.evals == eager.evals  # losses, accuracies and the learning rates, exactly
    for name, value in model.state_dict().items():
        assert torch.equal(value, expected[name]), name
    (step,) = graphed_on_cpu.steps
    schedule = resolve_schedule(config, len(data.train_x))
    assert step.eager_steps == schedule.iterations and step.graph is None and not step.capture
    assert step.lr.dtype == torch.float64  # read exactly as the float lr by the CPU kernels
    for name, mask in masks.items():  # and the pruned positions held their fill
        held = expected[name][~mask]
        assert torch.equal(held, start[name][~mask]) if frozen_init else torch.count_nonzero(held) == 0


@pytest.mark.parametrize("stopped, resumed", [(True, False), (False, True)],
                         ids=["graphed-then-eager", "eager-then-graphed"])
def test_checkpoints_keep_the_eager_format_and_resume_exactly_either_way(digits, graphed_on_cpu, tmp_path, stopped,
                                                                          resumed):
    config, model, start, _, job = _round(digits, "mlp", schedule="cosine")
    train = {flag: dataclasses.replace(config.train, cuda_graphs=flag) for flag in (False, True)}
    straight = train_round(model, job(config.train))
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(start)
    calls = {"n": 0}

    def stop_after_25() -> bool:
        calls["n"] += 1
        return calls["n"] > 25

    with pytest.raises(Cancelled):
        train_round(model, job(train[stopped], should_stop=stop_after_25, checkpoint_dir=tmp_path,
                               checkpoint_seconds=0))
    group = checkpoint_meta(tmp_path)["param_groups"][0]
    assert isinstance(group["lr"], float) and group["capturable"] is False
    model.load_state_dict(start)
    again = train_round(model, job(train[resumed], checkpoint_dir=tmp_path))
    assert again.evals == straight.evals
    assert all(torch.equal(model.state_dict()[k], v) for k, v in expected.items())


def test_the_learning_rate_tensor_follows_the_schedule_without_a_new_step(digits, graphed_on_cpu):
    config, model, _, _, job = _round(digits, "mlp", schedule="cosine", warmup_iterations=5)
    train_round(model, job(dataclasses.replace(config.train, cuda_graphs=True)))
    (step,) = graphed_on_cpu.steps
    schedule = resolve_schedule(config, len(digits.train_x))
    last = config.train.lr * engine.training.lr_factor(schedule.iterations - 1, config.train, schedule)
    assert step.lr.item() == step.lr_value == last
    group = step.optimizer.param_groups[0]
    assert isinstance(group["lr"], float) and group["lr"] == last  # the eager value between steps


# ---------------------------------------------------------------------------------------------
# On a GPU (benchmarks/gpu_smoke.sh runs these): captured and replayed against eager training.

CUDA_CASES = [
    pytest.param("mlp", {"schedule": "cosine", "warmup_iterations": 10, "weight_decay": 1e-4}, id="mlp-adam-cosine"),
    pytest.param("mlp", {"optimizer": "sgd", "momentum": 0.9, "lr": 0.05, "schedule": "multistep", "milestones": [30],
                         "last_batch": "keep", "batch_size": 100}, id="mlp-sgd-short-last-batch"),
    pytest.param("conv2", {"channels_last": True, "iterations": 30, "eval_every": 10}, id="conv2-channels-last"),
    pytest.param("conv2", {"bf16": True, "iterations": 30, "eval_every": 10, "optimizer": "sgd", "momentum": 0.9,
                           "lr": 0.02}, id="conv2-bf16-sgd"),
]


@pytest.mark.skipif(not CUDA, reason="CUDA graphs need a CUDA device")
@pytest.mark.parametrize("model_name, train", CUDA_CASES)
def test_cuda_graphed_training_equals_eager_on_the_gpu(tmp_path, digits, monkeypatch, model_name, train):
    """Whole IMP runs (3 rounds: prune, rewind, retrain) eager and graphed on the same GPU: the
    same masks every round and the same accuracies within float tolerance."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    recorder = _Recorder()
    monkeypatch.setattr(engine.training, "GraphedStep", recorder)
    runs = {}
    for graphs in (False, True):
        config = from_dict(_raw(model_name, device="cuda", cuda_graphs=graphs, **{"iterations": 60, **train}))
        run_dir = create_run(config, tmp_path / str(graphs), preset="graphs")
        assert execute(run_dir, data=digits) == "done", (run_dir / "status.json").read_text()
        runs[graphs] = run_dir
    assert recorder.steps and all(step.graph is not None and step.replays > 0 for step in recorder.steps)
    assert all(step.warmed == cuda_graphs.WARMUP_STEPS for step in recorder.steps)
    if train.get("last_batch") == "keep":
        assert all(step.eager_steps > cuda_graphs.WARMUP_STEPS for step in recorder.steps)  # the short batches
    n_test = len(digits.test_y)
    for r in range(3):
        eager_mask = load_file(str(runs[False] / f"trial-0/round-{r}/mask.safetensors"))
        graphed_mask = load_file(str(runs[True] / f"trial-0/round-{r}/mask.safetensors"))
        assert eager_mask.keys() == graphed_mask.keys()
        for name in eager_mask:
            assert torch.equal(eager_mask[name], graphed_mask[name]), (r, name)
        eager_evals = json.loads((runs[False] / f"trial-0/round-{r}/evals.json").read_text())
        graphed_evals = json.loads((runs[True] / f"trial-0/round-{r}/evals.json").read_text())
        assert [e["iteration"] for e in eager_evals] == [e["iteration"] for e in graphed_evals]
        for a, b in zip(eager_evals, graphed_evals):
            assert abs(a["test_accuracy"] - b["test_accuracy"]) <= 2 / n_test, (r, a, b)
            assert a["test_loss"] == pytest.approx(b["test_loss"], rel=1e-3, abs=1e-4), (r, a, b)
        final_eager = load_file(str(runs[False] / f"trial-0/round-{r}/final.safetensors"))
        final_graphed = load_file(str(runs[True] / f"trial-0/round-{r}/final.safetensors"))
        for name, m in graphed_mask.items():  # pruned weights never moved in the graph either
            assert torch.count_nonzero(final_graphed[name][~m]) == 0, (r, name)
        for name, value in final_eager.items():
            tol = 2e-2 if train.get("bf16") else 1e-4
            torch.testing.assert_close(final_graphed[name], value, rtol=tol, atol=tol, msg=f"round {r}: {name}")


@pytest.mark.skipif(not CUDA, reason="CUDA graphs need a CUDA device")
def test_cuda_graphed_train_round_from_host_fed_batches_and_a_checkpoint_on_the_gpu(tmp_path, digits, monkeypatch):
    """train_round itself on the GPU: the training split pinned on the host (batches copied on a
    side stream), stopped mid-round and resumed graphed; weights and evaluations as eager's."""
    from engine.feeding import place_dataset

    recorder = _Recorder()
    monkeypatch.setattr(engine.training, "GraphedStep", recorder)
    device = torch.device("cuda")
    data = place_dataset(digits, device, budget_bytes=0)
    assert data.train_x.device.type == "cpu" and data.test_x.device.type == "cuda"
    config, model, start, masks, job = _round(data, "mlp", schedule="cosine", weight_decay=1e-4)
    model.to(device)
    start = {k: v.to(device) for k, v in start.items()}
    on = dataclasses.replace(config.train, cuda_graphs=True)
    eager = train_round(model, job(config.train))
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(start)
    calls = {"n": 0}

    def stop_after_25() -> bool:
        calls["n"] += 1
        return calls["n"] > 25

    with pytest.raises(Cancelled):
        train_round(model, job(on, should_stop=stop_after_25, checkpoint_dir=tmp_path, checkpoint_seconds=0))
    group = checkpoint_meta(tmp_path)["param_groups"][0]
    assert isinstance(group["lr"], float) and group["capturable"] is False  # the eager format
    model.load_state_dict(start)
    graphed = train_round(model, job(on, checkpoint_dir=tmp_path))
    assert len(recorder.steps) == 2 and all(step.replays > 0 for step in recorder.steps)
    assert [e["iteration"] for e in graphed.evals] == [e["iteration"] for e in eager.evals]
    for a, b in zip(eager.evals, graphed.evals):
        assert abs(a["test_accuracy"] - b["test_accuracy"]) <= 2 / len(digits.test_y)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=1e-4, atol=1e-4, msg=name)
    for name, mask in masks.items():
        assert torch.count_nonzero(model.state_dict()[name][~mask.to(device)]) == 0, name
