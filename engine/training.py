"""One round of masked training: the inner loop of every experiment.

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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from engine.config import Schedule, TrainConfig
from engine.datasets import Dataset
from engine.feeding import Batches
from engine.store import StoreError, load_checkpoint, save_checkpoint

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


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Weight decay is applied by the training step itself (so it can be masked), never here."""
    return optimizer_for(list(model.parameters()), config)


def optimizer_for(params: list[torch.Tensor], config: TrainConfig) -> torch.optim.Optimizer:
    """SGD or Adam over `params`, fused (one kernel per tensor) where this torch build has it.

    Fused is the same update rule; it is much faster on pruned nets: the unfused Adam takes a
    sqrt over every pruned position's zero second moment, which some CPUs do ~10× slower than
    over non-zero values (benchmarks/bench_masked_step.py).
    """
    fused = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    kwargs: dict[str, Any] = {"lr": config.lr, "weight_decay": 0.0}
    if config.optimizer == "sgd":
        kwargs["momentum"] = config.momentum
    cls = torch.optim.SGD if config.optimizer == "sgd" else torch.optim.Adam
    if fused:
        try:
            return cls(params, fused=True, **kwargs)
        except (RuntimeError, ValueError, TypeError):  # a build or device without the fused kernel
            pass
    return cls(params, **kwargs)


def training_forward(model: nn.Module, config: TrainConfig, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """`model(x)` for training steps, with the fast paths the config switches on.

    compile: torch.compile of the model (the masking and the optimizer stay eager, so exact
    masking is untouched); channels_last: batches in channels-last memory format (the caller
    converts the model); bf16: the forward under bfloat16 autocast, logits back in float32
    for the loss. Evaluation always runs the plain float32 model.
    """
    net: Callable[[torch.Tensor], torch.Tensor] = torch.compile(model) if config.compile else model
    if not (config.channels_last or config.bf16):
        return net
    channels_last, bf16 = config.channels_last, config.bf16

    def forward(x: torch.Tensor) -> torch.Tensor:
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if bf16:
            with torch.autocast(device.type, dtype=torch.bfloat16):
                return net(x).float()
        return net(x)

    return forward


def match_layout(optimizer: torch.optim.Optimizer) -> None:
    """Optimizer state loaded from a checkpoint in the memory format of its parameters."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and value.shape == p.shape and value.stride() != p.stride():
                    state[key] = torch.empty_like(p).copy_(value)


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
    def build(cls, model: nn.Module, masks: dict[str, torch.Tensor], frozen: dict[str, torch.Tensor] | None) -> MaskedParams:
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
    def from_evals(cls, evals: list[dict[str, Any]], seconds: float, extra: dict[str, Any] | None = None) -> RoundOutcome:
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


def _save_checkpoint(job: TrainJob, model: nn.Module, optimizer: torch.optim.Optimizer, step: int,
                     evals: list[dict[str, Any]], loss_sum: torch.Tensor, loss_count: int,
                     aug_gen: torch.Generator, seconds: float) -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt_state = optimizer.state_dict()
    slots: dict[str, list[str]] = {}
    for index, state in opt_state["state"].items():
        slots[str(index)] = []
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"opt.{index}.{key}"] = value
                slots[str(index)].append(key)
    tensors["loop.loss_sum"] = loss_sum.reshape(1)
    tensors["loop.aug_state"] = aug_gen.get_state()
    save_checkpoint(job.checkpoint_dir, tensors, {"step": step, "evals": evals, "loss_count": loss_count, "seconds": seconds,
                                                  "slots": slots, "param_groups": opt_state["param_groups"]})


def _load_checkpoint(job: TrainJob, model: nn.Module, optimizer: torch.optim.Optimizer, aug_gen: torch.Generator,
                     device: torch.device) -> tuple[int, list[dict[str, Any]], torch.Tensor, int, float] | None:
    if job.checkpoint_dir is None:
        return None
    checkpoint = load_checkpoint(job.checkpoint_dir)
    if checkpoint is None:
        return None
    tensors, meta = checkpoint
    try:
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        state = {int(i): {key: tensors[f"opt.{i}.{key}"] for key in keys} for i, keys in meta["slots"].items()}
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        aug_gen.set_state(tensors["loop.aug_state"])
        loss_sum = tensors["loop.loss_sum"].to(device).reshape(())
        return int(meta["step"]), list(meta["evals"]), loss_sum, int(meta["loss_count"]), float(meta["seconds"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        where = f"{job.checkpoint_dir.parent.name}/{job.checkpoint_dir.name}"
        raise StoreError(f"{where}/checkpoint.safetensors does not fit this run ({type(exc).__name__}: "
                         f"{str(exc)[:200]}); delete {where}/checkpoint.* to restart that round from its start") from None


def train_round(model: nn.Module, job: TrainJob) -> RoundOutcome:
    """Trains `model` (already holding the round's start weights) for the scheduled iterations."""
    data, config, schedule = job.data, job.config, job.schedule
    device = data.test_x.device  # a training split too big for the GPU stays on the host (engine/feeding.py)
    model.to(device).train()
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    forward = training_forward(model, config, device)
    optimizer = make_optimizer(model, config)
    masked = MaskedParams.build(model, job.masks, job.frozen)
    masked.hold()
    all_params = [p for p in model.parameters() if p.requires_grad]
    aug_gen = generator(job.seed, "augment")
    n_train = len(data.train_x)
    batches = Batches(data, lambda epoch: torch.randperm(n_train, generator=generator(job.seed, "order", epoch)),
                      config.batch_size, schedule.iterations_per_epoch, device)

    evals: list[dict[str, Any]] = []
    loss_sum = torch.zeros((), device=device)
    loss_count = 0
    step = job.start_step
    seconds_before = 0.0
    resumed = _load_checkpoint(job, model, optimizer, aug_gen, device)
    if resumed:
        step, evals, loss_sum, loss_count, seconds_before = resumed
        match_layout(optimizer)
    started = time.perf_counter()
    last_checkpoint = started

    def record_eval(at: int) -> None:
        nonlocal loss_sum, loss_count
        masked.hold()  # a no-op (see MaskedParams), kept as a guard where weights are looked at
        val_loss, val_acc = evaluate_split(model, data.val_x, data.val_y)
        test_loss, test_acc = evaluate(model, data.test_x, data.test_y)
        train_loss = loss_sum.item() / loss_count if loss_count else None
        point = {"iteration": at, "train_loss": train_loss, "val_loss": val_loss, "val_accuracy": val_acc,
                 "test_loss": test_loss, "test_accuracy": test_acc,
                 "lr": config.lr * lr_factor(max(0, at - 1), config, schedule)}
        evals.append(point)
        loss_sum = torch.zeros((), device=device)
        loss_count = 0
        if job.on_eval:
            job.on_eval(point)

    if not evals:
        record_eval(step)
    if job.capture_at == 0 and job.on_capture and step == 0:
        job.on_capture({k: v.detach().clone() for k, v in model.state_dict().items()})

    lr_now = None
    while step < schedule.iterations:
        if job.should_stop and job.should_stop():
            if job.checkpoint_dir is not None:
                _save_checkpoint(job, model, optimizer, step, evals, loss_sum, loss_count, aug_gen,
                                 seconds_before + time.perf_counter() - started)
            raise Cancelled(f"stopped at iteration {step}")
        x, y = batches(step)
        if data.augment is not None:
            x = data.augment(x, aug_gen)
        lr = config.lr * lr_factor(step, config, schedule)
        if lr != lr_now:  # only when the schedule moves: no Python loop over param groups per step
            for group in optimizer.param_groups:
                group["lr"] = lr
            lr_now = lr
        loss = F.cross_entropy(forward(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.weight_decay:
            params = [p for p in all_params if p.grad is not None]
            torch._foreach_add_([p.grad for p in params], params, alpha=config.weight_decay)
        masked.mask_gradients()
        optimizer.step()  # pruned positions have gradient 0 and so do not move (MaskedParams)
        loss_sum += loss.detach()
        loss_count += 1
        step += 1
        if job.capture_at == step and job.on_capture:
            masked.hold()
            job.on_capture({k: v.detach().clone() for k, v in model.state_dict().items()})
        if step % schedule.eval_every == 0 or step == schedule.iterations:
            record_eval(step)
            now = time.perf_counter()
            if job.checkpoint_dir is not None and step < schedule.iterations and now - last_checkpoint >= job.checkpoint_seconds:
                _save_checkpoint(job, model, optimizer, step, evals, loss_sum, loss_count, aug_gen,
                                 seconds_before + now - started)
                last_checkpoint = now

    return RoundOutcome.from_evals(evals, seconds_before + time.perf_counter() - started)
