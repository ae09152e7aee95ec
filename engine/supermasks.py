"""Mask training over frozen weights: Zhou et al.'s learned supermask and Ramanujan et al.'s edge-popup.

Both keep every weight, bias and normalisation parameter frozen and train one real number per
prunable weight; the forward pass uses `w · m · scale` through `torch.func.functional_call`
(no hooks, no module surgery), so any model of engine.models works unchanged.

``experiment = "supermask"`` (Zhou, Lan, Liu & Yosinski 2019, "Deconstructing Lottery Tickets"):
    a logit s per weight (all start at ``supermask.logit_init``; 0 keeps each weight with
    probability ½, as in their code). Each training step samples m ~ Bernoulli(σ(s)) and
    back-propagates straight through the sample to σ(s) (m + σ(s) - sg(σ(s))). With
    ``supermask.rescale`` each layer is multiplied by size / kept of its sampled mask (Zhou's
    dynamic weight rescaling; the gradient flows through the count as in their code). Two
    masks are evaluated: a *sampled* one (a fresh Bernoulli draw) and the *expected* one
    (σ(s) > ½, deterministic). The expected mask is the round's stored mask.

``experiment = "edge-popup"`` (Ramanujan, Wortsman, Kembhavi, Farhadi & Rastegari 2020,
"What's Hidden in a Randomly Weighted Neural Network?"): a score per weight; each layer keeps
its top ``supermask.k`` fraction by |score| (the bottom int((1-k)·n) are dropped, as in their
code) and the gradient goes straight through to the scores. Scores start Kaiming-uniform
(their choice) or at |θ0| (``score_init = "magnitude"``: start from the large-init mask).
BatchNorm affine parameters stay at 1 / 0, which is their non-affine BatchNorm. The sampled
and the expected mask are the same mask here.

Weights: ``supermask.weights = "init"`` keeps θ0; ``"signed_constant"`` uses σ_layer·sign(θ0),
σ_layer the std of the layer's init distribution (with ``model.init = "kaiming-normal"`` this
is Ramanujan's signed Kaiming constant). The optimizer, learning rate, momentum, weight decay
(on the scores) and schedule are [supermask]'s, "auto" being the experiment's own recipe
(engine/recipes.py); batch size and warm-up are [train]'s.

Run store. ``train.iterations`` is the whole training; it is cut into ``supermask.rounds``
equal segments and segment r is round r, so the app's curve shows density and accuracy of the
learned mask as it develops (for edge-popup the density is fixed at k, sweep ``supermask.k``
across runs for Ramanujan's accuracy-vs-k plot). Per round, besides the IMP files:

    round-<r>/mask.safetensors      expected mask at the end of the segment (bool)
    round-<r>/start.safetensors     the frozen weights (model state at the segment start)
    round-<r>/final.safetensors     effective weights w · mask · scale (load and evaluate it)
    round-<r>/scores.safetensors    logits (supermask) or scores (edge-popup) at the end
    round-<r>/optimizer.safetensors + optimizer.json   optimizer state, to continue the next round
    round-<r>/result.json           IMP's fields (weights_remaining = expected-mask density,
                                    test_accuracy_at_early_stop = test_accuracy_final =
                                    expected-mask accuracy at the segment end: there is no early
                                    stopping, a round's figures are those of its stored mask;
                                    supermask_accuracy = expected-mask accuracy at the segment
                                    start) plus expected_mask_accuracy, sampled_mask_accuracy
                                    (mean of 5 draws), experiment, scale

Evals, like IMP's, count iterations from the start of their round ("iteration") and carry
the position in the whole training too ("global_iteration"). Resuming works as for IMP: finished rounds are read from
disk, a round interrupted mid-way continues from its checkpoint, and every random draw is
keyed by (seed, purpose, round or epoch), so a resumed run ends bit-identical on one device.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from engine.callbacks import Progress, standard_callbacks
from engine.checkpoints import (
    MISFIT_ERRORS,
    misfit,
    read_round_checkpoint,
    write_round_checkpoint,
)
from engine.config import ExperimentConfig
from engine.feeding import Batches
from engine.models import build_model, init_std, layer_kinds, model_options
from engine.optim import build_optimizer, pack_optimizer, unpack_optimizer
from engine.recipes import mask_recipe
from engine.rounds import RoundStart, finish_round, start_round_event
from engine.store import (
    StoreError,
    load_tensors,
    load_tensors_like,
    read_json,
    save_tensors,
    write_json_atomic,
)
from engine.training import (
    MaskedStep,
    derive_seed,
    eval_lr,
    evaluate,
    fast_path,
    generator,
    run_loop,
)

__all__ = ["SAMPLED_EVALS", "MaskTrainer", "frozen_weights", "initial_scores", "run_supermask_trial", "segment_bounds"]

SAMPLED_EVALS = 5
"""Bernoulli draws averaged for a round's sampled_mask_accuracy (Zhou et al. averaged 10)."""


def frozen_weights(model: nn.Module, weights: str, init: str) -> dict[str, torch.Tensor]:
    """The fixed values of the prunable weights: θ0, or σ_layer · sign(θ0) (sign(0) = +1)."""
    out = {}
    for name in layer_kinds(model):
        theta = model.get_parameter(name).detach().clone()
        if weights == "signed_constant":
            sign = torch.where(theta >= 0, torch.ones_like(theta), -torch.ones_like(theta))
            theta = sign * init_std(model, name, init)
        out[name] = theta
    return out


def initial_scores(model: nn.Module, experiment: str, logit_init: float, score_init: str,
                   gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Logits all at `logit_init` (supermask); Kaiming-uniform draws or |θ0| (edge-popup)."""
    out = {}
    for name in layer_kinds(model):
        weight = model.get_parameter(name).detach()
        if experiment == "supermask":
            out[name] = torch.full_like(weight, float(logit_init))
        elif score_init == "magnitude":
            out[name] = weight.abs().clone()
        else:
            scores = torch.empty(weight.shape, dtype=weight.dtype)
            nn.init.kaiming_uniform_(scores, a=math.sqrt(5), generator=gen)
            out[name] = scores
    return out


def segment_bounds(iterations: int, rounds: int) -> list[int]:
    """Iteration at which each round starts, and the end: [0, ..., iterations]."""
    return [round(i * iterations / rounds) for i in range(rounds + 1)]


class MaskTrainer:
    """Frozen weights, trainable scores and the masked forward pass of one model."""

    def __init__(self, model: nn.Module, weights: dict[str, torch.Tensor], scores: dict[str, torch.Tensor],
                 experiment: str, k: float, rescale: bool):
        self.model, self.experiment, self.k, self.rescale = model, experiment, k, rescale
        self.names = list(weights)
        self.weights = weights
        self.scores = {n: s.detach().clone().requires_grad_(True) for n, s in scores.items()}

    def kept_count(self, name: str) -> int:
        n = self.weights[name].numel()
        return n - int((1 - self.k) * n)

    def masks(self, mode: str, gen: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """mode "train": a differentiable mask (straight-through); "sample": one Bernoulli draw;
        "expected": σ(s) > ½ (supermask) or the top-k (edge-popup). Float 0/1 tensors."""
        out = {}
        for name in self.names:
            s = self.scores[name]
            if self.experiment == "supermask":
                if mode == "expected":  # σ(s) > ½, i.e. s > 0 (exact, no rounding of σ near ½)
                    out[name] = (s.detach() > 0).to(s.dtype)
                    continue
                p = torch.sigmoid(s)
                hard = (torch.rand(p.shape, generator=gen, device=p.device, dtype=p.dtype) < p).to(p.dtype)
                out[name] = hard + (p - p.detach()) if mode == "train" else hard.detach()  # exactly 0/1 forward
            else:
                magnitude = s.abs()
                kept = self.kept_count(name)
                hard = torch.zeros_like(magnitude).flatten()
                hard[magnitude.detach().flatten().topk(kept, sorted=False).indices] = 1
                hard = hard.view_as(magnitude)
                out[name] = hard + (magnitude - magnitude.detach()) if mode == "train" else hard
        return out

    def scale(self, name: str, mask: torch.Tensor) -> torch.Tensor | float:
        """size / kept of the layer (1 without rescaling)."""
        if not self.rescale:
            return 1.0
        if self.experiment == "edge-popup":
            return mask.numel() / self.kept_count(name)
        return mask.numel() / mask.sum().clamp_min(1.0)

    def effective(self, masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {n: self.weights[n] * masks[n] * self.scale(n, masks[n]) for n in self.names}

    def forward(self, x: torch.Tensor, masks: dict[str, torch.Tensor]) -> torch.Tensor:
        return functional_call(self.model, self.effective(masks), (x,))


class _Masked(nn.Module):
    """A module view of the model under fixed effective weights, for engine.training.evaluate."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.net = model
        self.weights: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.net, self.weights, (x,))


def _device_generator(device: torch.device, *parts: Any) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(derive_seed(*parts))


class _Trial:
    """One trial of a mask-training run: the loop, evaluation and the run-store files."""

    def __init__(self, run: Any, t: int):
        self.run, self.t = run, t
        config: ExperimentConfig = run.config
        self.config, self.data, self.schedule, self.writer = config, run.data, run.schedule, run.writer
        self.seed = config.seed + t
        self.train_seed = derive_seed(self.seed, "mask-train")
        self.device = self.data.test_x.device  # a big training split may stay on the host (engine/feeding.py)
        model = build_model(config.model.name, input_shape=self.data.input_shape, num_classes=self.data.num_classes,
                            hidden=config.model.hidden, init=config.model.init, generator=generator(self.seed, "init"),
                            **model_options(config))
        init_path = self.writer.layout.init(t)
        if init_path.is_file():
            model.load_state_dict(load_tensors_like(init_path, model.state_dict()))
        else:
            save_tensors(init_path, model.state_dict())
        sm = config.supermask
        weights = frozen_weights(model, sm.weights, config.model.init)
        scores = initial_scores(model, config.experiment, sm.logit_init, sm.score_init, generator(self.seed, "scores"))
        with torch.no_grad():
            for name, value in weights.items():
                model.get_parameter(name).copy_(value)
        model.requires_grad_(False)
        model.to(self.device)
        self.model = model
        self.trainer = MaskTrainer(model, {n: w.to(self.device) for n, w in weights.items()},
                                   {n: s.to(self.device) for n, s in scores.items()}, config.experiment, sm.k,
                                   sm.rescale)
        self.view = _Masked(model)
        self.recipe = mask_recipe(config)  # [train] with the mask-training optimizer keys in force
        self.optimizer = build_optimizer(list(self.trainer.scores.values()), self.recipe, fused=False)
        self.bounds = segment_bounds(self.schedule.iterations, sm.rounds)

    # ---------------------------------------------------------------- evaluation

    def _evaluate(self, masks: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        with torch.no_grad():
            self.view.weights = self.trainer.effective(masks)
        return evaluate(self.view, x, y)

    def _sampled_accuracy(self, *key: Any, draws: int = 1) -> float:
        if self.config.experiment != "supermask":
            return self._evaluate(self.trainer.masks("expected"), self.data.test_x, self.data.test_y)[1]
        values = []
        for i in range(draws):
            with torch.no_grad():
                masks = self.trainer.masks("sample",
                                           _device_generator(self.device, self.train_seed, "eval-sample", *key, i))
            values.append(self._evaluate(masks, self.data.test_x, self.data.test_y)[1])
        return statistics.fmean(values)

    def _record_eval(self, at: int, r: int, evals: list[dict[str, Any]], train_loss: float | None) -> None:
        config = self.recipe
        expected = self.trainer.masks("expected")
        val_loss, val_acc = (self._evaluate(expected, self.data.val_x, self.data.val_y) if len(self.data.val_x)
                             else (None, None))
        test_loss, test_acc = self._evaluate(expected, self.data.test_x, self.data.test_y)
        kept = sum(int(m.sum()) for m in expected.values())
        total = sum(m.numel() for m in expected.values())
        point = {"iteration": at - self.bounds[r], "global_iteration": at, "train_loss": train_loss,
                 "val_loss": val_loss, "val_accuracy": val_acc,
                 "test_loss": test_loss, "test_accuracy": test_acc,
                 "sampled_test_accuracy": self._sampled_accuracy(at),
                 "weights_remaining": kept / total,
                 "lr": eval_lr(config, self.schedule, at)}
        evals.append(point)
        self.run.emit(self.writer.event("eval", trial=self.t, round=r, **point))

    # ---------------------------------------------------------------- state on disk

    def _scores_cpu(self) -> dict[str, torch.Tensor]:
        return {n: s.detach().cpu() for n, s in self.trainer.scores.items()}

    def _load_scores(self, tensors: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, s in self.trainer.scores.items():
                s.copy_(tensors[name].to(self.device))

    def _load_buffers(self, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, buffer in self.model.named_buffers():
                if name in state:
                    buffer.copy_(state[name].to(buffer.device))

    def _restore_round_end(self, r: int) -> None:
        """Scores, optimizer state and BatchNorm buffers as round r ended."""
        layout, t = self.writer.layout, self.t
        self._load_scores(load_tensors(layout.scores(t, r)))
        meta_path = layout.optimizer_meta(t, r)
        meta = read_json(meta_path)  # never through a symlink, size-capped, a StoreError when damaged
        if not isinstance(meta, dict) or not isinstance(meta.get("slots"), dict) or "param_groups" not in meta:
            raise StoreError(f"{meta_path.name} is damaged: no slots / param_groups")
        tensors = load_tensors(layout.optimizer(t, r)) if any(meta["slots"].values()) else {}
        self.optimizer.load_state_dict(unpack_optimizer(tensors, meta))
        self._load_buffers(load_tensors(layout.final(t, r)))

    def _final_state(self) -> dict[str, torch.Tensor]:
        state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        with torch.no_grad():
            state.update(self.trainer.effective(self.trainer.masks("expected")))
        return state

    # ---------------------------------------------------------------- the round

    def run_round(self, r: int) -> None:
        """Round r (segment r of the training) through the one loop, then its files."""
        rdir = self.writer.round_dir(self.t, r)
        rdir.mkdir(parents=True, exist_ok=True)
        task = _RoundTask(self, r, rdir)
        progress = task.resume()
        if progress is None:
            save_tensors(self.writer.layout.start(self.t, r), self.model.state_dict())
            progress = Progress(step=task.begin, evals=[], loss_sum=torch.zeros((), device=self.device))
        expected = self.trainer.masks("expected")
        start_round_event(self.run, self.t, r, RoundStart(expected, None), experiment=self.config.experiment)
        callbacks = standard_callbacks(task, origin=task.begin, end=task.end,
                                       checkpoint_seconds=self.run.checkpoint_seconds)
        run_loop(task, progress, callbacks, task.end, self.run.should_stop)
        self._finish_round(r, progress.evals, progress.seconds())

    def _finish_round(self, r: int, evals: list[dict[str, Any]], seconds: float) -> None:
        expected = self.trainer.masks("expected")
        layout, t = self.writer.layout, self.t
        save_tensors(layout.mask(t, r), {n: m.bool() for n, m in expected.items()})
        save_tensors(layout.final(t, r), self._final_state())
        save_tensors(layout.scores(t, r), self._scores_cpu())
        tensors, meta = pack_optimizer(self.optimizer.state_dict())
        if tensors:
            save_tensors(layout.optimizer(t, r), tensors)
        write_json_atomic(layout.optimizer_meta(t, r), meta)
        last = evals[-1]
        sampled = self._sampled_accuracy("round", r, draws=SAMPLED_EVALS)
        with torch.no_grad():
            scales = {n: float(self.trainer.scale(n, m)) for n, m in expected.items()}
        record = {"round": r, **RoundStart(expected, None).fields(),  # the forward pass uses w · mask: same density
                  "early_stop_iteration": last["iteration"], "val_loss_min": last["val_loss"],
                  "test_accuracy_at_early_stop": last["test_accuracy"], "test_accuracy_final": last["test_accuracy"],
                  "supermask_accuracy": evals[0]["test_accuracy"], "seconds": seconds,
                  "test_accuracy_best": max(e["test_accuracy"] for e in evals),
                  "experiment": self.config.experiment, "expected_mask_accuracy": last["test_accuracy"],
                  "sampled_mask_accuracy": sampled, "iterations": [self.bounds[r], self.bounds[r + 1]], "scale": scales}
        finish_round(self.run, self.t, r, record, evals)


class _RoundTask:
    """One mask-training round as a task of the training loop: the scores train through the
    sampled (supermask) or top-k (edge-popup) mask; nothing is masked or held."""

    def __init__(self, trial: _Trial, r: int, rdir: Path):
        self.trial, self.r, self.rdir = trial, r, rdir
        self.config, self.schedule, self.optimizer = trial.recipe, trial.schedule, trial.optimizer
        self.begin, self.end = trial.bounds[r], trial.bounds[r + 1]
        self.data, self.device, trainer = trial.data, trial.device, trial.trainer
        self.aug_gen = generator(trial.train_seed, r, "augment")
        self.sample_gen = _device_generator(self.device, trial.train_seed, r, "sample")
        n_train = len(self.data.train_x)
        self.batches = Batches(self.data, lambda epoch: torch.randperm(n_train, generator=generator(trial.train_seed,
                                                                                                    "order", epoch)),
                               trial.config.train.batch_size, self.schedule.iterations_per_epoch, self.device)
        forward = fast_path(trainer.forward, self.config, self.device)  # bf16; compile and channels_last are refused
        sample_gen = self.sample_gen

        def loss_of(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(forward(x, trainer.masks("train", sample_gen)), y)

        self.step = MaskedStep(loss_of, self.optimizer, list(trainer.scores.values()), self.config.weight_decay)

    def _generators(self) -> dict[str, torch.Generator]:
        return {"aug_state": self.aug_gen, "sample_state": self.sample_gen}

    def resume(self) -> Progress | None:
        checkpoint = read_round_checkpoint(self.rdir)
        if checkpoint is None:
            return None
        trial = self.trial
        try:
            trial._load_scores(checkpoint.prefixed("scores."))
            trial._load_buffers(checkpoint.prefixed("buffer."))
            self.optimizer.load_state_dict(checkpoint.optimizer_state())
            checkpoint.restore_generators(self._generators())
            return checkpoint.progress(self.device)
        except MISFIT_ERRORS as exc:
            raise misfit(self.rdir, exc) from None

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.batches(step)
        return (x if self.data.augment is None else self.data.augment(x, self.aug_gen)), y

    def evaluate(self, progress: Progress, at: int) -> None:
        self.trial._record_eval(at, self.r, progress.evals, progress.train_loss())

    def save_checkpoint(self, progress: Progress) -> None:
        trial = self.trial
        tensors = {f"scores.{n}": s for n, s in trial._scores_cpu().items()}
        tensors.update({f"buffer.{n}": b for n, b in trial.model.named_buffers()})
        write_round_checkpoint(self.rdir, tensors, self.optimizer.state_dict(), self._generators(), progress,
                               progress.loss_sum, progress.evals)

    def capture(self) -> None:
        """Mask training captures nothing (no late rewinding)."""


def run_supermask_trial(run: Any, t: int) -> None:
    """Trains (or resumes) trial `t` of a supermask / edge-popup run; `run` is the runner's
    RunSession (dir, config, data, schedule, writer, emit, should_stop, checkpoint_seconds)."""
    trial = _Trial(run, t)
    rounds = run.config.supermask.rounds
    done = [run.writer.layout.result(t, r).is_file() for r in range(rounds)]
    restored = -1
    for r in range(rounds):
        if done[r]:
            continue
        if r > 0 and restored != r - 1:
            trial._restore_round_end(r - 1)
        trial.run_round(r)
        restored = r
