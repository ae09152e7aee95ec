"""What the one training loop (engine/training.py `Loop`) does around its steps, written once.

In the manner of OpenLTH's training/standard_callbacks.py: the loop only steps; evaluation
on a schedule, mid-round checkpoints, capturing the weights at an iteration and the progress
events are callbacks that look at the loop's `Progress` before the first step and after every
step. What differs between experiments (how to evaluate, what a checkpoint holds, what a
capture saves) is the `TrainTask`'s.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from engine.config import Schedule, TrainConfig

__all__ = ["Callback", "Progress", "TrainTask", "capture_at", "checkpoint_every", "evaluate_every",
           "standard_callbacks"]


@dataclass
class Progress:
    """Where a round's training stands: what a mid-round checkpoint holds besides the task's tensors.

    `evals` is the task's (a list of points; a list of such lists for trials trained
    together); `loss_sum` is a 0-d tensor, or one value per trial.
    """

    step: int
    evals: Any
    loss_sum: torch.Tensor
    loss_count: int = 0
    seconds_before: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    evaluated: bool = False  # whether the last step was an evaluation step (checkpoints go there)

    def seconds(self) -> float:
        """Training time of the round so far, before a resume included."""
        return self.seconds_before + time.perf_counter() - self.started

    def train_loss(self) -> Any:
        """Mean training loss since the last evaluation (one per trial for a vector), None before a step."""
        if not self.loss_count:
            return None if self.loss_sum.dim() == 0 else [None] * len(self.loss_sum)
        values = self.loss_sum.tolist()
        return values / self.loss_count if isinstance(values, float) else [v / self.loss_count for v in values]

    def unevaluated(self) -> bool:
        """No evaluation recorded yet (for trials together: none for the first trial, as they step in lockstep)."""
        evals = self.evals
        return not evals or (isinstance(evals[0], list) and not evals[0])

    def reset_loss(self) -> None:
        self.loss_sum = torch.zeros_like(self.loss_sum)
        self.loss_count = 0


class TrainTask(Protocol):
    """What an experiment supplies to the loop; everything else is the loop's and the callbacks'.

    `step(x, y)` is one optimizer step on a batch returning the detached loss (one per trial
    when trials train together): forward and loss, backward, weight decay and gradient masks,
    optimizer step. It is an attribute so a faster step (a CUDA graph) can replace it.
    """

    config: TrainConfig
    schedule: Schedule
    optimizer: torch.optim.Optimizer
    step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]: ...
    def evaluate(self, progress: Progress, at: int) -> None: ...
    def save_checkpoint(self, progress: Progress) -> None: ...
    def capture(self) -> None: ...


class Callback:
    """Runs before the first step (`start`) and after every step (`after_step`)."""

    def start(self, progress: Progress) -> None:
        """Called once, with the progress the round starts (or resumes) at."""

    def after_step(self, progress: Progress) -> None:
        """Called after every step, progress.step already counting it."""


class evaluate_every(Callback):
    """Evaluations at the start (unless resumed past it), every `every` steps counted from
    `origin`, and at `end`; the loss accumulated since the last evaluation resets each time."""

    def __init__(self, task: TrainTask, every: int, origin: int, end: int):
        self.task, self.every, self.origin, self.end = task, every, origin, end

    def _evaluate(self, progress: Progress) -> None:
        self.task.evaluate(progress, progress.step)
        progress.reset_loss()

    def start(self, progress: Progress) -> None:
        if progress.unevaluated():
            self._evaluate(progress)

    def after_step(self, progress: Progress) -> None:
        step = progress.step
        progress.evaluated = (step - self.origin) % self.every == 0 or step == self.end
        if progress.evaluated:
            self._evaluate(progress)


class checkpoint_every(Callback):
    """A mid-round checkpoint at an evaluation step at least `seconds` after the last one
    (never at the round's end, whose files replace it); runs after `evaluate_every`."""

    def __init__(self, task: TrainTask, seconds: float, end: int):
        self.task, self.seconds, self.end = task, seconds, end
        self.last = time.perf_counter()

    def after_step(self, progress: Progress) -> None:
        if progress.evaluated and progress.step < self.end:
            now = time.perf_counter()
            if now - self.last >= self.seconds:
                self.task.save_checkpoint(progress)
                self.last = now


class capture_at(Callback):
    """The task's capture (θk of late rewinding) at iteration `k`, 0 included."""

    def __init__(self, task: TrainTask, k: int):
        self.task, self.k = task, k

    def start(self, progress: Progress) -> None:
        if self.k == 0 and progress.step == 0:
            self.task.capture()

    def after_step(self, progress: Progress) -> None:
        if progress.step == self.k:
            self.task.capture()


def standard_callbacks(task: TrainTask, *, origin: int, end: int, checkpoint_seconds: float | None,
                       capture: int | None = None) -> list[Callback]:
    """Capture, evaluation, then checkpoint, in the order every experiment runs them."""
    callbacks: list[Callback] = [] if capture is None else [capture_at(task, capture)]
    callbacks.append(evaluate_every(task, task.schedule.eval_every, origin, end))
    if checkpoint_seconds is not None:
        callbacks.append(checkpoint_every(task, checkpoint_seconds, end))
    return callbacks
