"""The one training loop: its callbacks' schedule, the replaceable step, the one optimizer
builder's weight decay (the same numbers as torch's own), and the fast paths each experiment
takes or refuses."""

from __future__ import annotations

import pytest
import torch
from conftest import merged
from safetensors.torch import load_file

from engine.callbacks import Progress, standard_callbacks
from engine.config import ConfigError, from_dict, resolve_schedule
from engine.datasets import load_dataset
from engine.layout import RunLayout
from engine.optim import build_optimizer
from engine.runner import execute
from engine.store import create_run, read_summary
from engine.training import Cancelled, MaskedStep, run_loop

pytestmark = pytest.mark.usefixtures("one_thread")


class _Task:
    """A task that records what the loop and the callbacks asked of it."""

    def __init__(self, iterations: int, eval_every: int):
        config = from_dict({"train": {"iterations": iterations, "eval_every": eval_every, "lr": 0.5}})
        self.config, self.schedule = config.train, resolve_schedule(config, 1000)
        self.weight = torch.zeros(1, requires_grad=True)
        self.optimizer = torch.optim.SGD([self.weight], lr=0.5)
        self.calls: list[tuple[str, int]] = []
        self.progress: Progress | None = None
        self.step = self._step

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.calls.append(("step", int(x)))
        return torch.tensor(1.0)

    def batch(self, step: int):
        return torch.tensor(step), torch.tensor(0)

    def evaluate(self, progress: Progress, at: int) -> None:
        self.calls.append(("eval", at))
        progress.evals.append({"iteration": at, "train_loss": progress.train_loss()})

    def save_checkpoint(self, progress: Progress) -> None:
        self.calls.append(("checkpoint", progress.step))

    def capture(self) -> None:
        self.calls.append(("capture", self.progress.step if self.progress else -1))


def _run(task: _Task, begin: int, end: int, origin: int = 0, capture=None, seconds=None, stop=None) -> Progress:
    progress = Progress(step=begin, evals=[], loss_sum=torch.zeros(()))
    task.progress = progress
    return run_loop(task, progress, standard_callbacks(task, origin=origin, end=end, capture=capture,
                                                       checkpoint_seconds=seconds), end, stop)


def test_evaluations_start_every_and_end_counted_from_the_origin():
    task = _Task(iterations=10, eval_every=4)
    progress = _run(task, begin=3, end=9, origin=3)
    assert [at for kind, at in task.calls if kind == "eval"] == [3, 7, 9]
    assert [e["train_loss"] for e in progress.evals] == [None, 1.0, 1.0]  # the loss since the last evaluation
    assert [at for kind, at in task.calls if kind == "step"] == [3, 4, 5, 6, 7, 8]


def test_capture_then_evaluation_then_checkpoint_and_never_a_checkpoint_at_the_end():
    task = _Task(iterations=8, eval_every=2)
    _run(task, begin=0, end=8, capture=4, seconds=0.0)
    after_4 = task.calls[task.calls.index(("step", 3)) + 1:task.calls.index(("step", 4))]
    assert after_4 == [("capture", 4), ("eval", 4), ("checkpoint", 4)]
    assert ("checkpoint", 8) not in task.calls and ("eval", 8) in task.calls


def test_the_learning_rate_follows_the_schedule_and_a_stop_checkpoints_first():
    task = _Task(iterations=6, eval_every=6)
    with pytest.raises(Cancelled, match="iteration 2"):
        _run(task, begin=0, end=6, stop=lambda: sum(kind == "step" for kind, _ in task.calls) == 2)
    assert task.calls[-1] == ("checkpoint", 2)
    assert task.optimizer.param_groups[0]["lr"] == pytest.approx(0.5)


def test_the_step_is_one_replaceable_seam():
    task = _Task(iterations=4, eval_every=4)
    seen = []
    inner = task.step
    task.step = lambda x, y: seen.append(int(x)) or inner(x, y)
    _run(task, begin=0, end=4)
    assert seen == [0, 1, 2, 3]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_weight_decay_in_the_step_equals_torchs_own(optimizer):
    """Mask training used to leave decay to torch's optimizer; the one step adds it itself."""
    config = from_dict({"train": {"optimizer": optimizer, "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-3}}).train
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(50, 7, generator=gen)
    x, y = torch.randn(20, 7, generator=gen), torch.randint(0, 50, (20,), generator=gen)

    def loss_of(w):
        return lambda xb, yb: torch.nn.functional.cross_entropy(xb @ w.T, yb)

    ours = start.clone().requires_grad_(True)
    step = MaskedStep(loss_of(ours), build_optimizer([ours], config, fused=False), [ours], config.weight_decay)
    theirs = start.clone().requires_grad_(True)
    cls = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
    extra = {"momentum": 0.9} if optimizer == "sgd" else {}
    reference = cls([theirs], lr=0.1, weight_decay=1e-3, **extra)
    for _ in range(5):
        step(x, y)
        reference.zero_grad()
        torch.nn.functional.cross_entropy(x @ theirs.T, y).backward()
        reference.step()
    assert torch.equal(ours, theirs)


BASE = {"name": "t", "description": "t", "device": "cpu", "data": {"name": "digits", "val_size": 100},
        "model": {"name": "conv2"}, "train": {"iterations": 20, "eval_every": 10, "batch_size": 32}}


@pytest.mark.parametrize("experiment", ["supermask", "edge-popup"])
@pytest.mark.parametrize("key", ["compile", "channels_last"])
def test_mask_training_refuses_compile_and_channels_last_in_one_line(experiment, key):
    with pytest.raises(ConfigError) as err:
        from_dict(merged(BASE, experiment=experiment, train={**BASE["train"], key: True}))
    message = str(err.value)
    assert f"train.{key}" in message and "mask training" in message and "\n" not in message


@pytest.mark.parametrize("key", ["compile", "channels_last", "bf16"])
def test_imp_takes_every_fast_path(key):
    from_dict(merged(BASE, train={**BASE["train"], key: True}))


def test_mask_training_trains_under_bf16(tmp_path):
    """bf16 reaches mask training's forward (it used to be accepted and ignored)."""
    digits = load_dataset("digits", val_size=100)
    raw = merged(BASE, experiment="supermask", model={"name": "mlp", "hidden": [32]},
                 train={**BASE["train"], "bf16": True}, supermask={"rounds": 2})
    scores = {}
    for bf16 in (True, False):
        raw["train"]["bf16"] = bf16
        run_dir = create_run(from_dict(raw), tmp_path / str(bf16), preset="t")
        assert execute(run_dir, data=digits) == "done"
        assert len(read_summary(run_dir)["curve"]) == 2
        scores[bf16] = load_file(RunLayout(run_dir).scores(0, 1))
    # a bf16 forward gives other gradients, so other scores: the switch reached the step
    assert any(not torch.equal(scores[True][k], scores[False][k]) for k in scores[False])
