"""The one training loop of every experiment, and one round of IMP's masked training.

`run_loop` steps a `TrainTask` (engine/callbacks.py): the task says what differs (forward
and loss, which tensors train, which gradients are masked, what a checkpoint holds, how it
evaluates); the loop and its standard callbacks do the learning-rate schedule, stopping,
evaluation on the schedule, mid-round checkpoints and the capture at iteration k, once for
IMP (`train_round`, LMC's copies), trials trained together (engine/batched.py) and mask
training (engine/supermasks.py). `MaskedStep` is the step of all of them.

Pruned weights are held by masking, not by hooks: the weights start the round at
`mask * w + fill` (`fill` is zero for the `zero` mask-0 action and θ0 for the freezing ones),
and after backward the gradients of prunable weights are multiplied by the mask (with weight
decay added to the gradient first, so decay is masked too). With a zero gradient SGD's
momentum and Adam's moments stay exactly zero on pruned positions and their updates are
exactly zero, so pruned weights never move, bit for bit, whatever the optimizer; `mask * w +
fill` is re-applied before every evaluation as a guard.

Every random draw is keyed by (seed, purpose, epoch), so a round restarted from a mid-round
checkpoint replays the same data order and reaches the same weights as one never stopped.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.callbacks import Callback, Progress, TrainTask, standard_callbacks
from engine.checkpoints import (
    MISFIT_ERRORS,
    misfit,
    read_round_checkpoint,
    write_round_checkpoint,
)
from engine.config import Schedule, TrainConfig
from engine.cuda_graphs import GraphedStep, check_device
from engine.datasets import Dataset
from engine.feeding import Batches
from engine.optim import add_weight_decay, build_optimizer, match_layout

EVAL_BATCH = 2048


class Cancelled(Exception):
    """Training was asked to stop; a checkpoint was written first when possible."""


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from any parts: independent streams for init, data order, pruning..."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(*parts: Any) -> torch.Generator:
    """A CPU generator seeded from `parts`."""
    return torch.Generator().manual_seed(derive_seed(*parts))


def lr_factor(step: int, config: TrainConfig, schedule: Schedule) -> float:
    """Multiplier of `train.lr` for 0-based step `step`: the linear batch scaling
    (TrainConfig.lr_scale), the warm-up, then the schedule."""
    factor = config.lr_scale()
    if schedule.warmup and step < schedule.warmup:
        factor *= (step + 1) / schedule.warmup
    if config.schedule == "multistep":
        factor *= config.gamma ** sum(step >= m for m in schedule.milestones)
    elif config.schedule == "cosine":
        factor *= 0.5 * (1.0 + math.cos(math.pi * step / schedule.iterations))
    return factor


def fast_path(net: Callable[..., torch.Tensor], config: TrainConfig, device: torch.device) -> Callable[...,
                                                                                                       torch.Tensor]:
    """`net(x, *rest)` with the channels-last and bf16 switches of the config applied to it.

    channels_last: batches in channels-last memory format (the caller converts the model);
    bf16: the forward under bfloat16 autocast, logits back in float32 for the loss.
    """
    if not (config.channels_last or config.bf16):
        return net
    channels_last, bf16 = config.channels_last, config.bf16

    def forward(x: torch.Tensor, *rest: Any) -> torch.Tensor:
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if bf16:
            with torch.autocast(device.type, dtype=torch.bfloat16):
                return net(x, *rest).float()
        return net(x, *rest)

    return forward


def training_forward(model: nn.Module, config: TrainConfig, device: torch.device) -> Callable[[torch.Tensor],
                                                                                              torch.Tensor]:
    """`model(x)` for training steps, with the fast paths the config switches on.

    compile: torch.compile of the model (the masking and the optimizer stay eager, so exact
    masking is untouched); channels_last and bf16 as in `fast_path`. Evaluation always runs
    the plain float32 model.
    """
    return fast_path(torch.compile(model) if config.compile else model, config, device)


@torch.inference_mode()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over a whole split, in eval mode."""
    was_training = model.training
    model.eval()
    total_loss = torch.zeros((), device=x.device, dtype=torch.float64)
    correct = torch.zeros((), device=x.device, dtype=torch.int64)
    for start in range(0, len(x), EVAL_BATCH):
        logits = model(x[start:start + EVAL_BATCH])
        target = y[start:start + EVAL_BATCH]
        total_loss += F.cross_entropy(logits, target, reduction="sum").double()
        correct += (logits.argmax(1) == target).sum()
    model.train(was_training)
    n = max(1, len(x))
    return total_loss.item() / n, correct.item() / n


@dataclass
class MaskedParams:
    """The prunable weights of a model with their masks and the values pruned positions hold.

    `hold` puts pruned positions to their fill once, before training; from then on
    `mask_gradients` alone keeps them there: a pruned position's gradient (weight decay
    included) is exactly 0, so SGD's momentum and Adam's moments stay exactly 0 there and both
    updates are exactly 0 (Adam: 0 / (0 + eps)). The train loop re-applies `hold` wherever
    weights are looked at (evaluations, captures), as a guard that costs nothing per step.
    """

    weights: list[torch.Tensor]
    masks: list[torch.Tensor]
    fills: list[torch.Tensor] | None

    @classmethod
    def build(cls, model: nn.Module, masks: dict[str, torch.Tensor],
              frozen: dict[str, torch.Tensor] | None) -> MaskedParams:
        params = dict(model.named_parameters())
        weights, mask_list, fills = [], [], []
        needs_fill = False
        for name, mask in masks.items():
            if bool(mask.all()):
                continue
            weight = params[name]
            m = torch.empty_like(weight).copy_(mask)  # the weight's device, dtype and memory format
            weights.append(weight)
            mask_list.append(m)
            if frozen is not None and name in frozen:
                fill = torch.empty_like(weight).copy_(frozen[name]) * (1 - m)
                needs_fill = needs_fill or bool(fill.any())
            else:
                fill = torch.zeros_like(weight)
            fills.append(fill)
        return cls(weights, mask_list, fills if needs_fill else None)

    def mask_gradients(self) -> None:
        grads = [w.grad for w in self.weights]
        if self.weights:
            torch._foreach_mul_(grads, self.masks)

    @torch.no_grad()
    def hold(self) -> None:
        """Pruned positions back to their fill: exact for finite weights (w*0 + fill)."""
        if not self.weights:
            return
        torch._foreach_mul_(self.weights, self.masks)
        if self.fills is not None:
            torch._foreach_add_(self.weights, self.fills)


@dataclass
class RoundOutcome:
    """A round's figures. Without a validation split (data.val_size = 0) there is no early
    stopping: early_stop_iteration, val_loss_min and test_accuracy_at_early_stop are None."""

    evals: list[dict[str, Any]]
    early_stop_iteration: int | None
    val_loss_min: float | None
    test_accuracy_at_early_stop: float | None
    test_accuracy_final: float
    supermask_accuracy: float
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)
    test_accuracy_best: float | None = None  # the best test accuracy of any evaluation (Greydanus' report)

    @classmethod
    def from_evals(cls, evals: list[dict[str, Any]], seconds: float,
                   extra: dict[str, Any] | None = None) -> RoundOutcome:
        """Early stop at the lowest validation loss (the earliest of ties), final, untrained and best figures."""
        held = [e for e in evals if e.get("val_loss") is not None]
        best = min(held, key=lambda e: (e["val_loss"], e["iteration"])) if held else None
        return cls(evals=evals, early_stop_iteration=None if best is None else best["iteration"],
                   val_loss_min=None if best is None else best["val_loss"],
                   test_accuracy_at_early_stop=None if best is None else best["test_accuracy"],
                   test_accuracy_final=evals[-1]["test_accuracy"], supermask_accuracy=evals[0]["test_accuracy"],
                   seconds=seconds, extra=extra or {}, test_accuracy_best=max(e["test_accuracy"] for e in evals))


def evaluate_split(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float | None, float | None]:
    """evaluate(), or (None, None) for an empty split (no hold-out: data.val_size = 0)."""
    return evaluate(model, x, y) if len(x) else (None, None)


@dataclass
class TrainJob:
    """Everything one round of training needs besides the model."""

    data: Dataset
    config: TrainConfig
    schedule: Schedule
    masks: dict[str, torch.Tensor]
    frozen: dict[str, torch.Tensor] | None
    seed: int
    capture_at: int | None = None
    on_capture: Callable[[dict[str, torch.Tensor]], None] | None = None
    on_eval: Callable[[dict[str, Any]], None] | None = None
    should_stop: Callable[[], bool] | None = None
    checkpoint_dir: Path | None = None
    checkpoint_seconds: float = 60.0
    # Continue a longer training from this iteration (θk of Frankle et al.'s rewinding): the
    # loop runs from start_step to schedule.iterations, so learning-rate schedule and data
    # order carry on where that training was at step k.
    start_step: int = 0


def eval_lr(config: TrainConfig, schedule: Schedule, at: int) -> float:
    """The learning rate of the step that led to an evaluation at iteration `at` (an eval's "lr")."""
    return config.lr * lr_factor(max(0, at - 1), config, schedule)


class MaskedStep:
    """step(x, y) -> loss: the one training step of every experiment.

    Forward and loss (`loss_of`, one value per trial when trials train together), backward,
    weight decay added to the gradients of `params`, the gradients of `grad_weights` multiplied
    by `grad_masks` (pruned positions: decay included), then the optimizer step. Returns the
    detached loss. A graphed step replaces an instance of this with the same call.
    """

    def __init__(self, loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], optimizer: torch.optim.Optimizer,
                 params: list[torch.Tensor], weight_decay: float, grad_weights: list[torch.Tensor] | None = None,
                 grad_masks: list[torch.Tensor] | None = None):
        self.loss_of, self.optimizer, self.params, self.weight_decay = loss_of, optimizer, params, weight_decay
        self.grad_weights, self.grad_masks = grad_weights or [], grad_masks or []

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = self.loss_of(x, y)
        self.optimizer.zero_grad(set_to_none=True)
        (loss if loss.dim() == 0 else loss.sum()).backward()
        add_weight_decay(self.params, self.weight_decay)
        if self.grad_weights:
            torch._foreach_mul_([w.grad for w in self.grad_weights], self.grad_masks)
        self.optimizer.step()  # pruned positions have gradient 0 and so do not move (MaskedParams)
        return loss.detach()


def run_loop(task: TrainTask, progress: Progress, callbacks: list[Callback], end: int,
             should_stop: Callable[[], bool] | None) -> Progress:
    """The only training loop: steps `task` from progress.step to `end`.

    The learning rate follows the schedule (set only when it moves: no Python loop over param
    groups per step); a stop request checkpoints the task first and raises Cancelled.
    """
    for callback in callbacks:
        callback.start(progress)
    config, schedule, lr_now = task.config, task.schedule, None
    while progress.step < end:
        if should_stop is not None and should_stop():
            task.save_checkpoint(progress)
            raise Cancelled(f"stopped at iteration {progress.step}")
        x, y = task.batch(progress.step)
        lr = config.lr * lr_factor(progress.step, config, schedule)
        if lr != lr_now:
            for group in task.optimizer.param_groups:
                group["lr"] = lr
            lr_now = lr
        progress.loss_sum += task.step(x, y)
        progress.loss_count += 1
        progress.step += 1
        for callback in callbacks:
            callback.after_step(progress)
    return progress


def model_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """A model's state as checkpoint tensors (model.<name>)."""
    return {f"model.{k}": v for k, v in model.state_dict().items()}


def state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class _ImpTask:
    """One IMP (or LMC copy's) round: the model's weights train, pruned gradients are masked."""

    def __init__(self, model: nn.Module, job: TrainJob):
        data, config = job.data, job.config
        self.job, self.model, self.config, self.schedule, self.data = job, model, config, job.schedule, data
        # a training split too big for the GPU stays on the host (engine/feeding.py)
        self.device = device = data.test_x.device
        model.to(device).train()
        if config.channels_last:
            model.to(memory_format=torch.channels_last)
        forward = training_forward(model, config, device)
        self.optimizer = build_optimizer(list(model.parameters()), config)
        self.masked = MaskedParams.build(model, job.masks, job.frozen)
        self.masked.hold()
        self.aug_gen = generator(job.seed, "augment")
        n_train = len(data.train_x)
        self.batches = Batches(data,
                               lambda epoch: torch.randperm(n_train, generator=generator(job.seed, "order", epoch)),
                               config.batch_size, job.schedule.iterations_per_epoch, device)
        # train.cuda_graphs: the same step captured as one CUDA graph (engine/cuda_graphs.py)
        if config.cuda_graphs:
            check_device(config, device)
        step_kind = GraphedStep if config.cuda_graphs else MaskedStep
        self.step = step_kind(lambda x, y: F.cross_entropy(forward(x), y), self.optimizer,
                              [p for p in model.parameters() if p.requires_grad], config.weight_decay,
                              self.masked.weights, self.masked.masks)

    def resume(self) -> Progress:
        checkpoint = read_round_checkpoint(self.job.checkpoint_dir)
        if checkpoint is None:
            return Progress(step=self.job.start_step, evals=[], loss_sum=torch.zeros((), device=self.device))
        try:
            self.model.load_state_dict(checkpoint.prefixed("model."))
            self.optimizer.load_state_dict(checkpoint.optimizer_state())
            checkpoint.restore_generators({"aug_state": self.aug_gen})
            progress = checkpoint.progress(self.device)
        except MISFIT_ERRORS as exc:
            raise misfit(checkpoint.directory, exc) from None
        match_layout(self.optimizer)
        return progress

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.batches(step)
        return (x if self.data.augment is None else self.data.augment(x, self.aug_gen)), y

    def evaluate(self, progress: Progress, at: int) -> None:
        data = self.data
        self.masked.hold()  # a no-op (see MaskedParams), kept as a guard where weights are looked at
        val_loss, val_acc = evaluate_split(self.model, data.val_x, data.val_y)
        test_loss, test_acc = evaluate(self.model, data.test_x, data.test_y)
        point = {"iteration": at, "train_loss": progress.train_loss(), "val_loss": val_loss, "val_accuracy": val_acc,
                 "test_loss": test_loss, "test_accuracy": test_acc, "lr": eval_lr(self.config, self.schedule, at)}
        progress.evals.append(point)
        if self.job.on_eval:
            self.job.on_eval(point)

    def save_checkpoint(self, progress: Progress) -> None:
        if self.job.checkpoint_dir is not None:
            write_round_checkpoint(self.job.checkpoint_dir, model_tensors(self.model), self.optimizer.state_dict(),
                                   {"aug_state": self.aug_gen}, progress, progress.loss_sum, progress.evals)

    def capture(self) -> None:
        self.masked.hold()
        if self.job.on_capture:
            self.job.on_capture(state_copy(self.model))


def capture_point(job: TrainJob) -> int | None:
    """The iteration a job captures the weights at (None: no capture)."""
    return job.capture_at if job.on_capture else None


def train_round(model: nn.Module, job: TrainJob) -> RoundOutcome:
    """Trains `model` (already holding the round's start weights) for the scheduled iterations."""
    task = _ImpTask(model, job)
    progress = task.resume()
    end = job.schedule.iterations
    checkpoint_seconds = job.checkpoint_seconds if job.checkpoint_dir is not None else None
    callbacks = standard_callbacks(task, origin=0, end=end, capture=capture_point(job),
                                   checkpoint_seconds=checkpoint_seconds)
    run_loop(task, progress, callbacks, end, job.should_stop)
    return RoundOutcome.from_evals(progress.evals, progress.seconds())
