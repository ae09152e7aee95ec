"""Linear mode connectivity: train two copies from one point, walk the straight line between them.

Frankle, Dziugaite, Roy & Carbin 2020 ("Linear Mode Connectivity and the Lottery Ticket
Hypothesis") call training from θk *stable* when two copies trained from θk with different SGD
noise (data order, augmentation) end up in one linearly connected basin: the test error along
(1-α)·θA + α·θB never rises much above the errors of the two ends. Maene, Li & Moens 2021
measure the same error barrier over 20 interpolation points to show that stable training
(large batch, warm-up) lets large networks rewind to θ0.

Definitions used here:

* interpolation: every floating-point tensor of the state dict is (1-α)·a + α·b, computed in
  that order in the tensor's dtype; integer buffers (BatchNorm's num_batches_tracked) come
  from `a`. Pruned positions are equal in both ends (0, or the same frozen value), so every
  interpolated network has the same mask.
* error: 1 - accuracy on the test split, at `points` evenly spaced α from 0 to 1 inclusive.
* barrier: max over α of error(α) minus the mean of the two ends' errors (Frankle's
  "instability"); it is never negative because the ends are on the curve. Stable means
  barrier < threshold (2 percentage points by default).
* BatchNorm: for a model with BatchNorm the running statistics are recomputed for every α
  from a fixed set of training examples (at most `BN_EXAMPLES`, picked by a seeded
  generator, forwarded in train mode with a cumulative average), the ends included, as
  Frankle et al. do for their ResNets: interpolated running statistics describe neither
  network. Models without BatchNorm (MLP, Conv-2/4/6) are evaluated as interpolated.

The two copies are trained with `engine.training.train_round`, differing only in the seed of
their data order and augmentation. From a round's start they train the round's schedule
(the way the runner trains every round); from θk (`start_step = k`) they train the remaining
T - k iterations with the learning-rate schedule continuing at step k.

Run-store files (next to the round's mask.safetensors): `lmc.json` and the two trained ends
`lmc-a.safetensors` / `lmc-b.safetensors`, so the curve can be recomputed from the stored
weights alone; `lth-tui lmc --rewind K` writes `lmc-k<K>.json`, `lmc-k<K>-a.safetensors`,
`lmc-k<K>-b.safetensors` instead, so curves for several rewind points sit side by side.
Every computation appends an `lmc` event to events.jsonl.

`interpolate`, `error_curve` and `barrier` are also those of successive-round connectivity
(engine/successive.py): one definition of the path and its barrier for both analyses.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.config import ConfigError, ExperimentConfig, Schedule, TrainConfig
from engine.datasets import Dataset
from engine.layout import MASK, START, RunLayout, round_name, trial_name
from engine.models import layer_kinds
from engine.store import RunWriter, StoreError, load_tensors, read_lmc, read_status, save_tensors, write_json_atomic
from engine.threads import recorded_threads
from engine.training import Cancelled, TrainJob, derive_seed, evaluate, generator, train_round

__all__ = ["BN_EXAMPLES", "barrier", "batchnorm_examples", "error_curve", "interpolate", "lmc_from",
           "load_run_data", "read_lmc", "round_lmc", "run_lmc", "theta_at"]

BN_EXAMPLES = 4096
"""Training examples used to recompute BatchNorm statistics at each α."""
_BN_CHUNK = 512


def interpolate(state_a: dict[str, torch.Tensor], state_b: dict[str, torch.Tensor], alpha: float) -> dict[str,
                                                                                                          torch.Tensor]:
    """(1-α)·a + α·b for floating-point tensors; integer buffers are taken from `a`."""
    if set(state_a) != set(state_b):
        missing = sorted(set(state_a) ^ set(state_b))
        raise ValueError(f"the two states have different tensors: {', '.join(missing[:5])}")
    out = {}
    for name, a in state_a.items():
        b = state_b[name]
        if a.shape != b.shape:
            raise ValueError(f"{name}: shapes {tuple(a.shape)} and {tuple(b.shape)} differ")
        if a.is_floating_point():
            out[name] = (1 - alpha) * a + alpha * b.to(device=a.device, dtype=a.dtype)
        else:
            out[name] = a.clone()
    return out


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@torch.no_grad()
def _recompute_batchnorm(model: nn.Module, bn_x: torch.Tensor) -> None:
    """Fresh running statistics from `bn_x` (train-mode forwards, cumulative average)."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
    was_training = model.training
    model.train()
    try:
        for start in range(0, len(bn_x), _BN_CHUNK):
            model(bn_x[start:start + _BN_CHUNK])
    finally:
        for m, momentum in zip(layers, momenta):
            m.momentum = momentum
        model.train(was_training)


def batchnorm_examples(model: nn.Module, train_x: torch.Tensor, device: torch.device) -> torch.Tensor | None:
    """The fixed training inputs BatchNorm statistics are recomputed from at each α (at most
    BN_EXAMPLES, seeded), on `device`; None for a model without BatchNorm."""
    if not _has_batchnorm(model):
        return None
    count = min(BN_EXAMPLES, len(train_x))
    index = torch.randperm(len(train_x), generator=generator("lmc", "batchnorm"))[:count]
    return train_x[index.to(train_x.device)].to(device)


def error_curve(model: nn.Module, state_a: dict[str, torch.Tensor], state_b: dict[str, torch.Tensor],
                x: torch.Tensor, y: torch.Tensor, points: int = 21,
                bn_x: torch.Tensor | None = None,
                also: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None) -> list[dict[str, float]]:
    """[{alpha, error, loss, accuracy}] at `points` evenly spaced α in [0, 1], ends included.

    `model` is only a container: each interpolated state is loaded into it. When the model
    has BatchNorm and `bn_x` (training inputs) is given, running statistics are recomputed
    from `bn_x` at every α; otherwise the interpolated statistics are used. `also` names
    further splits evaluated on the same interpolated network: {"train": (x, y)} adds
    train_error, train_loss and train_accuracy to every point.
    """
    if points < 2:
        raise ValueError(f"points = {points}: need at least the two ends")
    recompute = bn_x is not None and _has_batchnorm(model)
    curve = []
    for i in range(points):
        alpha = i / (points - 1)
        model.load_state_dict(interpolate(state_a, state_b, alpha))
        if recompute:
            _recompute_batchnorm(model, bn_x)
        loss, accuracy = evaluate(model, x, y)
        point = {"alpha": alpha, "error": 1.0 - accuracy, "loss": loss, "accuracy": accuracy}
        for name, (split_x, split_y) in (also or {}).items():
            split_loss, split_accuracy = evaluate(model, split_x, split_y)
            point.update({f"{name}_error": 1.0 - split_accuracy, f"{name}_loss": split_loss,
                          f"{name}_accuracy": split_accuracy})
        curve.append(point)
    return curve


def barrier(curve: list[dict[str, float]], key: str = "error") -> float:
    """Max error along the path minus the mean error of its two ends (never negative); `key`
    picks the error of another split ("train_error")."""
    if len(curve) < 2:
        raise ValueError("a curve needs at least its two ends")
    ordered = sorted(curve, key=lambda p: p["alpha"])
    ends = (ordered[0][key] + ordered[-1][key]) / 2
    return max(p[key] for p in ordered) - ends


def lmc_from(model: nn.Module, data: Dataset, train_config: TrainConfig, schedule: Schedule,
             start_state: dict[str, torch.Tensor], masks: dict[str, torch.Tensor],
             frozen: dict[str, torch.Tensor] | None, seed: int, points: int = 21, *,
             start_step: int = 0, threshold: float = 0.02, trained_a: dict[str, torch.Tensor] | None = None,
             should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Trains two copies from `start_state` and measures the error barrier between them.

    The copies use seeds derive_seed(seed, "lmc", "a") and (seed, "lmc", "b") for their data
    order and augmentation, and train from iteration `start_step` to schedule.iterations.
    `trained_a` lets a caller that already trained one copy from the same start (the IMP
    round itself) hand its final state over; only copy B is trained then.
    Returns {curve, barrier, stable, error_a, error_b, seeds, start_iteration, iterations,
    batchnorm, seconds, state_a, state_b} (the states are tensors: not JSON).
    """
    started = time.perf_counter()
    if not 0 <= start_step < schedule.iterations:
        raise ValueError(f"start_step = {start_step} must be in [0, {schedule.iterations})")
    device = data.test_x.device  # a big training split may stay on the host (engine/feeding.py)
    work = copy.deepcopy(model).to(device)
    seeds = [derive_seed(seed, "lmc", "a"), derive_seed(seed, "lmc", "b")]
    states = []
    for which, copy_seed in zip("ab", seeds):
        if which == "a" and trained_a is not None:
            states.append({k: v.detach().clone() for k, v in trained_a.items()})
            continue
        work.load_state_dict(start_state)
        job = TrainJob(data=data, config=train_config, schedule=schedule, masks=masks, frozen=frozen, seed=copy_seed,
                       should_stop=should_stop, start_step=start_step)
        train_round(work, job)
        states.append({k: v.detach().clone() for k, v in work.state_dict().items()})
    bn_x = batchnorm_examples(work, data.train_x, device)
    recompute = bn_x is not None
    curve = error_curve(work, states[0], states[1], data.test_x, data.test_y, points, bn_x=bn_x)
    value = barrier(curve)
    return {"curve": curve, "barrier": value, "stable": value < threshold, "threshold": threshold,
            "error_a": curve[0]["error"], "error_b": curve[-1]["error"], "seeds": seeds,
            "start_iteration": start_step, "iterations": schedule.iterations - start_step,
            "batchnorm": "recomputed" if recompute else "none",
            "bn_examples": min(BN_EXAMPLES, len(data.train_x)) if recompute else 0,
            "split": "test", "seconds": time.perf_counter() - started, "state_a": states[0], "state_b": states[1]}


# --------------------------------------------------------------------------------------------
# Run-store side
# --------------------------------------------------------------------------------------------


def _write(result: dict[str, Any], layout: RunLayout, extra: dict[str, Any]) -> dict[str, Any]:
    """lmc.json (lmc-k<K>.json) and its two ends in the round dir of `extra`'s trial and round."""
    t, r, k = extra["trial"], extra["round"], extra["rewind_iteration"]
    json_path, a_path, b_path = layout.lmc(t, r, k), layout.lmc_end(t, r, "a", k), layout.lmc_end(t, r, "b", k)
    save_tensors(a_path, result["state_a"])
    save_tensors(b_path, result["state_b"])
    record = {**extra, **{k: v for k, v in result.items() if not k.startswith("state_")},
              "weights_a": a_path.name, "weights_b": b_path.name}
    write_json_atomic(json_path, record)
    return record


def _event_fields(record: dict[str, Any]) -> dict[str, Any]:
    keys = ("trial", "round", "rewind_iteration", "barrier", "stable", "threshold", "error_a", "error_b",
            "start_iteration", "iterations", "seconds")
    return {k: record[k] for k in keys if k in record}


def round_lmc(run: Any, t: int, r: int, start: dict[str, torch.Tensor], masks: dict[str, torch.Tensor],
              frozen: dict[str, torch.Tensor] | None, model: nn.Module, seed: int) -> dict[str, Any]:
    """The per-round option of IMP (`analysis.lmc = true`), called by the runner right after a
    round's training: `model` holds the round's trained weights (copy A, data-order seed
    `seed`); copy B is trained from the same `start` with another seed. Writes lmc.json,
    lmc-a/lmc-b.safetensors and an `lmc` event; returns the JSON record."""
    config: ExperimentConfig = run.config
    trained = {k: v.detach().clone() for k, v in model.state_dict().items()}
    result = lmc_from(model, run.data, config.train, run.schedule, start, masks, frozen, seed,
                      config.analysis.lmc_points, threshold=config.analysis.lmc_stable_threshold,
                      trained_a=trained, should_stop=run.should_stop,
                      start_step=run.schedule.rewind_iteration if r > 0 else 0)  # as the runner trained copy A
    result["seeds"][0] = seed
    record = _write(result, run.writer.layout,
                    {"trial": t, "round": r, "rewind_iteration": None, "start": "round start (start.safetensors)"})
    run.emit(run.writer.event("lmc", **_event_fields(record)))
    return record


def theta_at(run_dir: Path, config: ExperimentConfig, data: Dataset, schedule: Schedule, trial: int,
             iteration: int, model: nn.Module) -> dict[str, torch.Tensor]:
    """θk of a trial: init.safetensors for k = 0, rewind.safetensors for the run's own
    rewind point, else replayed: round 0 is retrained from θ0 with its own seed and stopped
    at iteration k (bit-identical to the original on the same device). The replay uses the
    thread count the run recorded (status.json): another count changes the reduction order."""
    from engine.planning import derive_round_seed

    layout = RunLayout(run_dir)
    if iteration == 0:
        return load_tensors(layout.init(trial))
    rewind_path = layout.rewind(trial)
    if iteration == schedule.rewind_iteration and rewind_path.is_file():
        return load_tensors(rewind_path)
    work = copy.deepcopy(model)
    work.load_state_dict(load_tensors(layout.init(trial)))
    masks = {name: torch.ones_like(work.get_parameter(name), dtype=torch.bool) for name in layer_kinds(work)}
    captured: dict[str, torch.Tensor] = {}
    job = TrainJob(data=data, config=config.train, schedule=schedule, masks=masks, frozen=None,
                   seed=derive_round_seed(config.seed + trial, 0), capture_at=iteration,
                   on_capture=captured.update, should_stop=lambda: bool(captured))
    before = torch.get_num_threads()
    try:
        threads = recorded_threads(read_status(run_dir))
    except StoreError:  # no readable status: the caller's count
        threads = None
    torch.set_num_threads(threads or before)
    try:
        train_round(work, job)
    except Cancelled:
        pass
    finally:
        torch.set_num_threads(before)
    if not captured:
        raise RuntimeError(f"replaying trial {trial} did not reach iteration {iteration}")
    return {k: v.cpu() for k, v in captured.items()}


def load_run_data(config: ExperimentConfig, data: Dataset | None = None) -> Dataset:
    """A stored run's dataset (or `data`, already loaded) placed on the run's device, for the
    analyses that `lth-tui lmc` computes after the fact."""
    from engine.datasets import default_data_dir, load_dataset
    from engine.device import resolve_device
    from engine.feeding import place_dataset

    device = resolve_device(config.device)
    if data is None:
        data_dir = Path(config.data.dir).expanduser() if config.data.dir else default_data_dir()
        data = load_dataset(config.data.name, val_size=config.data.val_size, data_dir=data_dir,
                            download=config.data.download, augment=config.data.augment)
    return place_dataset(data, device)


def run_lmc(run_dir: Path | str, round_: int, rewind_iteration: int | None = None, trial: int = 0, *,
            data: Dataset | None = None, points: int | None = None,
            should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """`lth-tui lmc RUN_DIR --round R [--rewind K] [--trial T]`: LMC of a stored round.

    The mask (and the values its pruned positions hold) come from round R's files. Without
    `rewind_iteration` the copies start from the round's start.safetensors and train the
    round's schedule, as the runner trained it. With K the kept weights start from θk of the
    trial (init.safetensors for 0, rewind.safetensors for the run's rewind point, else
    replayed) and train iterations K..T. Writes lmc.json (lmc-k<K>.json with K) and the two
    ends, appends an `lmc` event; returns the JSON record. Raises ConfigError or StoreError
    for a bad round, trial or K.
    """
    from engine.config import resolve_schedule
    from engine.experiments import experiment_of
    from engine.models import build_model, model_options
    from engine.planning import derive_round_seed
    from engine.store import read_config

    run_dir = Path(run_dir)
    config = read_config(run_dir)
    if "lmc" not in experiment_of(config).analyses:
        raise ConfigError(str(run_dir), "experiment", config.experiment, "LMC is measured on IMP runs")
    if not 0 <= trial < config.trials:
        raise ConfigError(str(run_dir), "--trial", trial, f"the run has trials 0..{config.trials - 1}")
    layout = RunLayout(run_dir)
    mask_path, start_path = layout.mask(trial, round_), layout.start(trial, round_)
    if not mask_path.is_file() or not start_path.is_file():
        raise StoreError(f"{trial_name(trial)}/{round_name(round_)} has no {MASK} / {START} "
                         "(round not reached yet?)")
    data = load_run_data(config, data)
    schedule = resolve_schedule(config, len(data.train_x), str(layout.config))
    if rewind_iteration is not None and not 0 <= rewind_iteration < schedule.iterations:
        raise ConfigError(str(run_dir), "--rewind", rewind_iteration, f"an iteration in 0..{schedule.iterations - 1}")
    seed = config.seed + trial
    model = build_model(config.model.name, input_shape=data.input_shape, num_classes=data.num_classes,
                        hidden=config.model.hidden, init=config.model.init, generator=generator(seed, "init"),
                        **model_options(config))
    model.load_state_dict(load_tensors(layout.init(trial)))
    masks = {n: m.bool() for n, m in load_tensors(mask_path).items()}
    start = load_tensors(start_path)
    # Pruned positions hold in training what they hold at the round start (0 or frozen θ values).
    frozen = {n: torch.where(m, torch.zeros_like(start[n]), start[n]) for n, m in masks.items()}
    if not any(bool(f.any()) for f in frozen.values()):
        frozen = None
    if rewind_iteration is None:
        start_state, start_step, label = start, 0, "round start (start.safetensors)"
    else:
        theta = theta_at(run_dir, config, data, schedule, trial, rewind_iteration, model)
        kept = {n: torch.where(m, theta[n].to(start[n].dtype), start[n]) for n, m in masks.items()}
        label = f"theta_{rewind_iteration} under the round's mask"
        start_state, start_step = {**theta, **kept}, rewind_iteration
    lmc_seed = derive_seed(derive_round_seed(seed, round_), "lmc-cli", rewind_iteration)
    threshold = config.analysis.lmc_stable_threshold
    result = lmc_from(model, data, config.train, schedule, start_state, masks, frozen, lmc_seed,
                      points or config.analysis.lmc_points, start_step=start_step, threshold=threshold,
                      should_stop=should_stop)
    record = _write(result, layout,
                    {"trial": trial, "round": round_, "rewind_iteration": rewind_iteration, "start": label})
    writer = RunWriter(run_dir)
    try:
        writer.event("lmc", **_event_fields(record))
    finally:
        writer.close()
    return record
