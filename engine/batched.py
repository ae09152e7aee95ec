"""Trials in parallel: the N trials (seeds) of a run trained together, one round at a time.

A lottery-ticket figure needs several trials of one small network; on a GPU one LeNet step
is a few microseconds of arithmetic buried under kernel launches and Python, so training the
trials one after another wastes the device. `train_rounds` trains round r of N trials as one
batched model and is a drop-in for N calls of `engine.training.train_round`: every trial
keeps its own nn.Module (its parameters are the optimizer's leaves), its own mask and frozen
values (`MaskedParams`), its own data order and augmentation stream (keyed by its seed, as in
the single-trial loop), its own optimizer state, evaluations, events and checkpoint files.
They train through engine/training.py's one loop (`run_loop`, one task for the group);
only the arithmetic is shared:

* ``loop``  the trials' forwards one after another in one step, one backward, one fused
            optimizer step over all trials' tensors. The per-trial arithmetic is exactly the
            single-trial loop's, so results are bit-identical to sequential training. The
            default on a CPU, where batching buys nothing (a CPU is busy either way).
* ``bmm``   MLPs (mlp, lenet-300-100): each layer of all trials as one batched matmul
            (`torch.baddbmm` over weights stacked [N, out, in]). Default on a GPU for MLPs.
* ``vmap``  any model: `torch.func.functional_call` under `torch.vmap` over stacked
            parameters and buffers (BatchNorm running statistics included). Default on a GPU
            for conv nets.

``bmm`` and ``vmap`` add the same numbers in a different order (batched kernels), so their
results equal sequential training up to float reassociation: the same in distribution, and
in practice the same masks but for weights within rounding of a pruning threshold.

Mid-round checkpoints are written per trial in the single-trial format (trial-t/round-r/
checkpoint.*), so a run interrupted in batched mode resumes batched or sequentially, and the
other way round. Trials whose checkpoints stand at different steps are trained in groups.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.callbacks import Progress, standard_callbacks
from engine.checkpoints import (
    MISFIT_ERRORS,
    misfit,
    read_round_checkpoint,
    write_round_checkpoint,
)
from engine.config import ExperimentConfig, TrainConfig
from engine.datasets import Dataset
from engine.feeding import Batches
from engine.models import MLP
from engine.optim import build_optimizer, match_layout
from engine.store import checkpoint_meta
from engine.training import (
    MaskedParams,
    MaskedStep,
    RoundOutcome,
    TrainJob,
    eval_lr,
    evaluate,
    evaluate_split,
    generator,
    model_tensors,
    run_loop,
    state_copy,
)

__all__ = ["SMALL_MODELS", "STRATEGIES", "default_strategy", "parallel_trials_active", "train_rounds"]

STRATEGIES = ("loop", "bmm", "vmap")
# Models "auto" batches on a GPU: small enough that one trial leaves most of the device idle.
SMALL_MODELS = ("mlp", "lenet-300-100", "conv2", "conv4", "conv6")


def parallel_trials_active(config: ExperimentConfig, device: torch.device) -> bool:
    """Whether the runner trains the trials of `config` together (config key parallel_trials).

    true / false are obeyed (validation refuses true where it cannot apply); "auto" batches
    IMP runs of several trials of a small model on a GPU, without compile / channels-last /
    CUDA graphs (single-trial fast paths) and without the LMC analysis (which trains its own copies).
    """
    mode = config.parallel_trials
    if isinstance(mode, bool):
        return mode and config.experiment == "imp"
    return (torch.device(device).type == "cuda" and config.trials > 1 and config.experiment == "imp"
            and config.model.name in SMALL_MODELS and not config.train.compile
            and not config.train.channels_last and not config.train.cuda_graphs and not config.analysis.lmc)


def default_strategy(model: nn.Module, device: torch.device) -> str:
    if torch.device(device).type != "cuda":
        return "loop"
    return "bmm" if type(model) is MLP else "vmap"


def train_rounds(models: list[nn.Module], jobs: list[TrainJob], strategy: str = "auto") -> list[RoundOutcome]:
    """Trains each `models[t]` (holding its round-start weights) with `jobs[t]`, all together.

    The jobs must share data, config and schedule; masks, frozen values, seeds, callbacks and
    checkpoint dirs are per trial. Returns one RoundOutcome per trial, like `train_round`.
    """
    if len(models) != len(jobs) or not jobs:
        raise ValueError(f"one job per model: {len(models)} models, {len(jobs)} jobs")
    first = jobs[0]
    for job in jobs[1:]:
        if job.data is not first.data or job.config != first.config or job.schedule != first.schedule:
            raise ValueError("batched trials must share the dataset, the [train] config and the schedule")
    if strategy == "auto":
        strategy = default_strategy(models[0], first.data.test_x.device)
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy {strategy!r}: allowed auto, {', '.join(STRATEGIES)}")
    if strategy == "bmm" and not all(type(m) is MLP for m in models):
        raise ValueError("the bmm strategy batches MLPs only; use vmap or loop")
    # Trials resuming from checkpoints at different steps cannot step in lockstep: group them.
    groups: dict[tuple[int, bool], list[int]] = {}
    for t, job in enumerate(jobs):
        groups.setdefault(_resume_point(job), []).append(t)
    outcomes: list[RoundOutcome | None] = [None] * len(jobs)
    for members in groups.values():
        for t, outcome in zip(members,
                              _train_group([models[t] for t in members], [jobs[t] for t in members], strategy)):
            outcomes[t] = outcome
    return outcomes  # type: ignore[return-value]


def _resume_point(job: TrainJob) -> tuple[int, bool]:
    """(step the job starts at, whether from a checkpoint)."""
    if job.checkpoint_dir is not None:
        meta = checkpoint_meta(job.checkpoint_dir)
        if meta is not None:
            return int(meta["step"]), True
    return job.start_step, False


class _TrialOptimizer:
    """One trial's slice of the shared optimizer, in the single-trial state_dict format."""

    def __init__(self, shared: torch.optim.Optimizer, params: list[torch.Tensor], config: TrainConfig):
        self.shared, self.params, self.config = shared, params, config

    def state_dict(self) -> dict[str, Any]:
        state = {i: self.shared.state[p] for i, p in enumerate(self.params) if p in self.shared.state}
        group = {k: v for k, v in self.shared.param_groups[0].items() if k != "params"}
        return {"state": state, "param_groups": [{**group, "params": list(range(len(self.params)))}]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        own = build_optimizer(self.params, self.config)  # torch's own loading rules (devices, step tensors)
        own.load_state_dict(state_dict)
        match_layout(own)
        for p in self.params:
            if p in own.state:
                self.shared.state[p] = own.state[p]


class _GroupTask:
    """The trials of one group as one task of the training loop: per-trial masks, data order,
    augmentation, evaluations and checkpoint files; one forward, backward and optimizer step."""

    def __init__(self, models: list[nn.Module], jobs: list[TrainJob], strategy: str):
        first = jobs[0]
        data, config = first.data, first.config
        self.models, self.jobs, self.data, self.config, self.schedule = models, jobs, data, config, first.schedule
        self.device = device = data.test_x.device
        for model in models:
            model.to(device).train()
        params = [list(model.parameters()) for model in models]
        self.optimizer = build_optimizer([p for ps in params for p in ps], config)
        self.views = [_TrialOptimizer(self.optimizer, ps, config) for ps in params]
        self.maskeds = [MaskedParams.build(model, job.masks, job.frozen) for model, job in zip(models, jobs)]
        for masked in self.maskeds:
            masked.hold()
        self.aug_gens = [generator(job.seed, "augment") for job in jobs]
        n_train = len(data.train_x)

        def order_of(seed: int) -> Callable[[int], torch.Tensor]:
            return lambda epoch: torch.randperm(n_train, generator=generator(seed, "order", epoch))

        self.batches = [Batches(data, order_of(job.seed), config.batch_size, self.schedule.iterations_per_epoch, device)
                        for job in jobs]
        self.forward = _Forward(strategy, models, config, device)
        self.step = MaskedStep(self.forward, self.optimizer, [p for ps in params for p in ps if p.requires_grad],
                               config.weight_decay, [w for m in self.maskeds for w in m.weights],
                               [k for m in self.maskeds for k in m.masks])

    def resume(self) -> Progress:
        progress = Progress(step=self.jobs[0].start_step, evals=[[] for _ in self.jobs],
                            loss_sum=torch.zeros(len(self.jobs), device=self.device))
        for t, job in enumerate(self.jobs):
            checkpoint = read_round_checkpoint(job.checkpoint_dir)
            if checkpoint is None:
                continue
            try:
                self.models[t].load_state_dict(checkpoint.prefixed("model."))
                self.views[t].load_state_dict(checkpoint.optimizer_state())
                checkpoint.restore_generators({"aug_state": self.aug_gens[t]})
                own = checkpoint.progress(self.device)
            except MISFIT_ERRORS as exc:
                raise misfit(checkpoint.directory, exc) from None
            progress.step, progress.evals[t], progress.loss_count = own.step, own.evals, own.loss_count
            progress.seconds_before = own.seconds_before
            progress.loss_sum[t] = own.loss_sum
        return progress

    def sync(self) -> None:
        self.forward.sync_buffers()
        for masked in self.maskeds:
            masked.hold()

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = _batch(self.batches, self.data, step)
        if self.data.augment is not None:
            xs = torch.stack([self.data.augment(x, g) for x, g in zip(xs, self.aug_gens)])
        return xs, ys

    def evaluate(self, progress: Progress, at: int) -> None:
        data = self.data
        self.sync()
        train_losses = progress.train_loss()
        for t, (model, job) in enumerate(zip(self.models, self.jobs)):
            val_loss, val_acc = evaluate_split(model, data.val_x, data.val_y)
            test_loss, test_acc = evaluate(model, data.test_x, data.test_y)
            point = {"iteration": at, "train_loss": train_losses[t], "val_loss": val_loss, "val_accuracy": val_acc,
                     "test_loss": test_loss, "test_accuracy": test_acc, "lr": eval_lr(self.config, self.schedule, at)}
            progress.evals[t].append(point)
            if job.on_eval:
                job.on_eval(point)

    def save_checkpoint(self, progress: Progress) -> None:
        self.sync()
        for t, job in enumerate(self.jobs):
            if job.checkpoint_dir is not None:
                write_round_checkpoint(job.checkpoint_dir, model_tensors(self.models[t]), self.views[t].state_dict(),
                                       {"aug_state": self.aug_gens[t]}, progress, progress.loss_sum[t],
                                       progress.evals[t])

    def capture(self) -> None:
        self.sync()
        for model, job in zip(self.models, self.jobs):
            if job.on_capture:
                job.on_capture(state_copy(model))


def _train_group(models: list[nn.Module], jobs: list[TrainJob], strategy: str) -> list[RoundOutcome]:
    first = jobs[0]
    task = _GroupTask(models, jobs, strategy)
    progress = task.resume()
    end = first.schedule.iterations
    callbacks = standard_callbacks(task, origin=0, end=end, capture=first.capture_at,
                                   checkpoint_seconds=first.checkpoint_seconds)
    run_loop(task, progress, callbacks, end, first.should_stop)
    task.sync()
    seconds = progress.seconds()
    # The trials shared the wall time: each is charged its share, so sums over trials stay
    # true, and the batched round's own time is kept beside it.
    return [RoundOutcome.from_evals(trial_evals, seconds / len(jobs),
                                    {"batched_seconds": seconds, "batched_trials": len(jobs)})
            for trial_evals in progress.evals]


def _batch(batches: list[Batches], data: Dataset, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every trial's batch of `step`, stacked [N, B, ...]: one gather when the data is on the device."""
    if batches[0].host:
        pairs = [b(step) for b in batches]
        return torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs])
    index = torch.stack([b.index(step) for b in batches])  # [N, B]
    return data.train_x[index], data.train_y[index]


class _Forward:
    """losses[N] of one step: each trial's mean cross-entropy on its own batch."""

    def __init__(self, strategy: str, models: list[nn.Module], config: TrainConfig, device: torch.device):
        self.strategy, self.models, self.device = strategy, models, device
        self.bf16 = config.bf16
        self.stacked_buffers: dict[str, torch.Tensor] = {}
        if strategy == "vmap":
            from torch.func import functional_call, vmap

            base = copy.deepcopy(models[0]).to("meta")
            self.names = [name for name, _ in models[0].named_parameters()]
            self.params = [[p for _, p in m.named_parameters()] for m in models]
            self.buffer_names = [name for name, _ in models[0].named_buffers()]
            self.buffers = [[b for _, b in m.named_buffers()] for m in models]
            self.stacked_buffers = {name: torch.stack([bs[i] for bs in self.buffers])
                                    for i, name in enumerate(self.buffer_names)}

            def loss(params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor,
                     y: torch.Tensor) -> torch.Tensor:
                return F.cross_entropy(_for_loss(functional_call(base, (params, buffers), (x,))), y)

            self.batched_loss = vmap(loss, randomness="error")
        elif strategy == "bmm":
            self.layers = [[*m.fc_layers, m.fc] for m in models]

    def sync_buffers(self) -> None:
        """Running statistics of the vmap path back into each trial's module."""
        with torch.no_grad():
            for i, name in enumerate(self.buffer_names if self.stacked_buffers else ()):
                for t, buffers in enumerate(self.buffers):
                    buffers[i].copy_(self.stacked_buffers[name][t])

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x [N, B, ...], y [N, B]: trial t's batch is x[t], y[t]."""
        if not self.bf16:
            return self._losses(x, y)
        with torch.autocast(self.device.type, dtype=torch.bfloat16):
            return self._losses(x, y)

    def _losses(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.strategy == "loop":
            return torch.stack([F.cross_entropy(_for_loss(m(x[t])), y[t]) for t, m in enumerate(self.models)])
        if self.strategy == "vmap":
            stacked = {name: torch.stack([ps[i] for ps in self.params]) for i, name in enumerate(self.names)}
            return self.batched_loss(stacked, self.stacked_buffers, x, y)
        h = x.flatten(2)  # [N, B, features]
        layers = self.layers
        depth = len(layers[0])
        for d in range(depth):
            weight = torch.stack([trial[d].weight for trial in layers])  # [N, out, in]
            bias = torch.stack([trial[d].bias for trial in layers])  # [N, out]
            h = torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))
            if d < depth - 1:
                h = F.relu(h)
        n, b, c = h.shape
        per_example = F.cross_entropy(_for_loss(h).reshape(n * b, c), y.reshape(n * b), reduction="none")
        return per_example.reshape(n, b).mean(1)


def _for_loss(logits: torch.Tensor) -> torch.Tensor:
    """Logits in at least float32 for the loss: bf16 autocast output goes up, float64 stays
    (so a float64 model, as the tests use to compare strategies, keeps float64 gradients)."""
    return logits if logits.dtype == torch.float64 else logits.float()
