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

import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from engine.config import ExperimentConfig, TrainConfig
from engine.density import density_record, mask_fractions
from engine.feeding import Batches
from engine.models import build_model, init_std, layer_kinds, model_options
from engine.recipes import mask_recipe
from engine.store import (clear_checkpoint, load_checkpoint, load_tensors, load_tensors_like, save_checkpoint, save_tensors,
                          write_json_atomic)
from engine.training import Cancelled, derive_seed, evaluate, generator, lr_factor

__all__ = ["MaskTrainer", "SAMPLED_EVALS", "frozen_weights", "initial_scores", "run_supermask_trial", "segment_bounds"]

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


def _make_optimizer(params: list[torch.Tensor], config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def _pack_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors, slots = {}, {}
    for index, values in state["state"].items():
        slots[str(index)] = []
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"opt.{index}.{key}"] = value
                slots[str(index)].append(key)
    return tensors, {"slots": slots, "param_groups": state["param_groups"]}


def _unpack_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state = {int(i): {key: tensors[f"opt.{i}.{key}"] for key in keys} for i, keys in meta["slots"].items()}
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


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
        init_path = self.writer.trial_dir(t) / "init.safetensors"
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
                                   {n: s.to(self.device) for n, s in scores.items()}, config.experiment, sm.k, sm.rescale)
        self.view = _Masked(model)
        self.recipe = mask_recipe(config)  # [train] with the mask-training optimizer keys in force
        self.optimizer = _make_optimizer(list(self.trainer.scores.values()), self.recipe)
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
                masks = self.trainer.masks("sample", _device_generator(self.device, self.train_seed, "eval-sample", *key, i))
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
        point = {"iteration": at - self.bounds[r], "global_iteration": at, "train_loss": train_loss, "val_loss": val_loss, "val_accuracy": val_acc,
                 "test_loss": test_loss, "test_accuracy": test_acc,
                 "sampled_test_accuracy": self._sampled_accuracy(at),
                 "weights_remaining": kept / total,
                 "lr": config.lr * lr_factor(max(0, at - 1), config, self.schedule)}
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
        rdir = self.writer.round_dir(self.t, r)
        self._load_scores(load_tensors(rdir / "scores.safetensors"))
        meta = json.loads((rdir / "optimizer.json").read_text())
        _unpack_optimizer(self.optimizer, load_tensors(rdir / "optimizer.safetensors") if any(meta["slots"].values()) else {}, meta)
        self._load_buffers(load_tensors(rdir / "final.safetensors"))

    def _final_state(self) -> dict[str, torch.Tensor]:
        state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        with torch.no_grad():
            state.update(self.trainer.effective(self.trainer.masks("expected")))
        return state

    def _save_checkpoint(self, rdir: Path, step: int, evals: list, loss_sum: torch.Tensor, loss_count: int,
                         aug_gen: torch.Generator, sample_gen: torch.Generator, seconds: float) -> None:
        tensors, meta = _pack_optimizer(self.optimizer)
        tensors.update({f"scores.{n}": s for n, s in self._scores_cpu().items()})
        tensors.update({f"buffer.{n}": b for n, b in self.model.named_buffers()})
        tensors["loop.loss_sum"] = loss_sum.reshape(1)
        tensors["loop.aug_state"] = aug_gen.get_state()
        tensors["loop.sample_state"] = sample_gen.get_state()
        save_checkpoint(rdir, tensors, {**meta, "step": step, "evals": evals, "loss_count": loss_count, "seconds": seconds})

    def _load_checkpoint(self, rdir: Path, aug_gen: torch.Generator, sample_gen: torch.Generator) -> tuple | None:
        checkpoint = load_checkpoint(rdir)
        if checkpoint is None:
            return None
        tensors, meta = checkpoint
        self._load_scores({k[7:]: v for k, v in tensors.items() if k.startswith("scores.")})
        self._load_buffers({k[7:]: v for k, v in tensors.items() if k.startswith("buffer.")})
        _unpack_optimizer(self.optimizer, tensors, meta)
        aug_gen.set_state(tensors["loop.aug_state"])
        sample_gen.set_state(tensors["loop.sample_state"])
        return meta["step"], meta["evals"], tensors["loop.loss_sum"].to(self.device).reshape(()), meta["loss_count"], meta["seconds"]

    # ---------------------------------------------------------------- the loop

    def run_round(self, r: int) -> None:
        config, data, writer, trainer = self.config, self.data, self.writer, self.trainer
        rdir = writer.round_dir(self.t, r)
        rdir.mkdir(parents=True, exist_ok=True)
        begin, end = self.bounds[r], self.bounds[r + 1]
        aug_gen = generator(self.train_seed, r, "augment")
        sample_gen = _device_generator(self.device, self.train_seed, r, "sample")
        evals: list[dict[str, Any]] = []
        loss_sum = torch.zeros((), device=self.device)
        loss_count, step, seconds_before = 0, begin, 0.0
        resumed = self._load_checkpoint(rdir, aug_gen, sample_gen)
        if resumed:
            step, evals, loss_sum, loss_count, seconds_before = resumed
        else:
            save_tensors(rdir / "start.safetensors", self.model.state_dict())
        expected = trainer.masks("expected")
        remaining, layers, kept, total = mask_fractions(expected)
        self.run.emit(writer.event("round_start", trial=self.t, round=r, weights_remaining=remaining, layers=layers,
                                   experiment=config.experiment, **density_record(expected, None, remaining)))
        started = time.perf_counter()
        last_checkpoint = started
        if not evals:
            self._record_eval(step, r, evals, None)
        n_train = len(data.train_x)
        batches = Batches(data, lambda epoch: torch.randperm(n_train, generator=generator(self.train_seed, "order", epoch)),
                          config.train.batch_size, self.schedule.iterations_per_epoch, self.device)
        while step < end:
            if self.run.should_stop():
                self._save_checkpoint(rdir, step, evals, loss_sum, loss_count, aug_gen, sample_gen,
                                      seconds_before + time.perf_counter() - started)
                raise Cancelled(f"stopped at iteration {step}")
            x, y = batches(step)
            if data.augment is not None:
                x = data.augment(x, aug_gen)
            for group in self.optimizer.param_groups:
                group["lr"] = self.recipe.lr * lr_factor(step, self.recipe, self.schedule)
            loss = F.cross_entropy(trainer.forward(x, trainer.masks("train", sample_gen)), y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            loss_sum += loss.detach()
            loss_count += 1
            step += 1
            if (step - begin) % self.schedule.eval_every == 0 or step == end:
                self._record_eval(step, r, evals, loss_sum.item() / loss_count)
                loss_sum, loss_count = torch.zeros((), device=self.device), 0
                now = time.perf_counter()
                if step < end and now - last_checkpoint >= self.run.checkpoint_seconds:
                    self._save_checkpoint(rdir, step, evals, loss_sum, loss_count, aug_gen, sample_gen,
                                          seconds_before + now - started)
                    last_checkpoint = now
        self._finish_round(r, rdir, evals, seconds_before + time.perf_counter() - started)

    def _finish_round(self, r: int, rdir: Path, evals: list[dict[str, Any]], seconds: float) -> None:
        from engine.planning import rounds_done
        from engine.summary import build_summary

        config, writer = self.config, self.writer
        expected = self.trainer.masks("expected")
        save_tensors(rdir / "mask.safetensors", {n: m.bool() for n, m in expected.items()})
        save_tensors(rdir / "final.safetensors", self._final_state())
        save_tensors(rdir / "scores.safetensors", self._scores_cpu())
        tensors, meta = _pack_optimizer(self.optimizer)
        if tensors:
            save_tensors(rdir / "optimizer.safetensors", tensors)
        write_json_atomic(rdir / "optimizer.json", meta)
        remaining, layers, kept, total = mask_fractions(expected)
        last = evals[-1]
        sampled = self._sampled_accuracy("round", r, draws=SAMPLED_EVALS)
        with torch.no_grad():
            scales = {n: float(self.trainer.scale(n, m)) for n, m in expected.items()}
        record = {"round": r, "weights_remaining": remaining, "layers": layers, "kept": kept, "total": total,
                  **density_record(expected, None, remaining),  # the forward pass uses w · mask: same density
                  "early_stop_iteration": last["iteration"], "val_loss_min": last["val_loss"],
                  "test_accuracy_at_early_stop": last["test_accuracy"], "test_accuracy_final": last["test_accuracy"],
                  "supermask_accuracy": evals[0]["test_accuracy"], "seconds": seconds,
                  "test_accuracy_best": max(e["test_accuracy"] for e in evals),
                  "experiment": config.experiment, "expected_mask_accuracy": last["test_accuracy"],
                  "sampled_mask_accuracy": sampled, "iterations": [self.bounds[r], self.bounds[r + 1]], "scale": scales}
        write_json_atomic(rdir / "evals.json", evals)
        write_json_atomic(rdir / "result.json", record)
        clear_checkpoint(rdir)
        writer.summary(build_summary(self.run.dir, config, "running"))
        writer.status(rounds_done=rounds_done(self.run.dir, config))
        self.run.emit(writer.event("round_end", trial=self.t, **record))


def run_supermask_trial(run: Any, t: int) -> None:
    """Trains (or resumes) trial `t` of a supermask / edge-popup run; `run` is the runner's
    RunSession (dir, config, data, schedule, writer, emit, should_stop, checkpoint_seconds)."""
    trial = _Trial(run, t)
    rounds = run.config.supermask.rounds
    done = [(run.writer.round_dir(t, r) / "result.json").is_file() for r in range(rounds)]
    restored = -1
    for r in range(rounds):
        if done[r]:
            continue
        if r > 0 and restored != r - 1:
            trial._restore_round_end(r - 1)
        trial.run_round(r)
        restored = r
