"""Successive-round connectivity: is round r's ticket in the basin of round r-1's solution?

Maene, Li & Moens 2021 ("Towards Understanding Iterative Magnitude Pruning: Why Lottery
Tickets Win") argue that a lottery ticket retrains into the same linearly connected region as
the IMP solution before it (Evci et al. 2020's hypothesis), which is why the dense training
that precedes pruning is needed; Paul et al. 2023 find that, at higher sparsities, the
solutions of successive IMP rounds are linearly connected with zero error barrier exactly when
the ticket is matching. This module measures that, for every round r >= 1 of a trial:

* **projected**: the straight line from round r-1's final weights projected onto round r's
  mask to round r's final weights. Projection keeps r-1's values where round r's mask keeps a
  weight and puts round r's own value at every pruned position (0, or the frozen value of a
  freezing mask-0 action), so every point of the line has round r's mask; non-prunable
  tensors (biases, BatchNorm) are r-1's as they are.
* **unprojected**: the same line from round r-1's final weights as they are.
* for both lines: the test and train error at `analysis.lmc_points` evenly spaced α (both ends
  included, BatchNorm statistics recomputed at every α as engine/lmc.py does), the error
  barrier of each split (max minus the mean of the ends), and the L2 distance and cosine
  similarity between the two ends over every trainable parameter (float64).
* each solution's L2 distance from its rewind point: the round's start.safetensors (θ0 or θk
  under its mask, after the mask-1 actions), also relative to the norm of that start.
* Maene et al.'s angular distance (their section 4.1): 2·∠(θ_{r-1} ⊙ m, θ_r ⊙ m)/π over the
  prunable weights, m = round r's mask (the intersection of the two masks, as IMP's masks
  are nested): 0 for the same direction, about 1 for unrelated networks.

The interpolation and the barrier are engine/lmc.py's (one definition for both analyses).
Train error is over the whole training split (unaugmented) when it lives on the evaluation
device; a split kept on the host (engine/feeding.py) is represented by a seeded subset of
TRAIN_EXAMPLES_OFF_DEVICE examples, and the record says how many were used.

Everything is a pure function of stored tensors (the two rounds' start, final and mask
files), so a run killed mid-analysis and resumed writes the same figures. Run-store file:
`trial-<t>/round-<r>/successive.json` (schema in `connectivity`); the headline figures also
go into the round's result.json (ROUND_FIELDS) and so into summary.json's curve, and every
computation appends a `successive` event.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from engine.config import ConfigError
from engine.datasets import Dataset
from engine.layout import FINAL, MASK, RESULT, START, SUCCESSIVE, RunLayout
from engine.lmc import barrier, batchnorm_examples, error_curve
from engine.records import SuccessiveRecord
from engine.store import RunWriter, StoreError, load_tensors, read_result, read_summary, write_json_atomic
from engine.training import Cancelled, generator

__all__ = ["FILE", "ROUND_FIELDS", "TRAIN_EXAMPLES_OFF_DEVICE", "angular_distance", "connectivity", "project",
           "round_fields",
           "round_successive", "run_successive", "solution_distance"]

FILE = SUCCESSIVE  # engine.layout's name, kept here for the module's readers
TRAIN_EXAMPLES_OFF_DEVICE = 10000
# result.json keys taken from a successive.json record (flat, so summary.json's curve and the
# CSV export carry them like lmc_barrier).
ROUND_FIELDS = ("successive_barrier", "successive_barrier_train", "successive_barrier_unprojected",
                "successive_barrier_unprojected_train", "successive_l2", "successive_cosine",
                "successive_l2_unprojected", "successive_cosine_unprojected", "successive_angular",
                "rewind_distance", "rewind_distance_previous")

Tensors = dict[str, torch.Tensor]


def project(previous: Tensors, current: Tensors, masks: dict[str, torch.Tensor]) -> Tensors:
    """`previous` under round r's mask: its value where the mask keeps a weight, `current`'s
    (the value round r holds pruned positions at) elsewhere; unmasked tensors from `previous`."""
    out = {}
    for name, value in previous.items():
        mask = masks.get(name)
        out[name] = value.clone() if mask is None else torch.where(mask.bool().to(value.device), value,
                                                                   current[name].to(value.device, value.dtype))
    return out


def solution_distance(a: Tensors, b: Tensors, names: list[str]) -> dict[str, float | None]:
    """{"l2": ||a - b||, "cosine": <a, b> / (|a| |b|)} over the tensors `names`, in float64;
    cosine is None when either end is all zeros."""
    diff = dot = norm_a = norm_b = 0.0
    for name in names:
        x, y = a[name].double().flatten(), b[name].double().flatten().to(a[name].device)
        diff += float(((x - y) ** 2).sum())
        dot += float((x * y).sum())
        norm_a += float((x * x).sum())
        norm_b += float((y * y).sum())
    cosine = dot / math.sqrt(norm_a * norm_b) if norm_a > 0 and norm_b > 0 else None
    return {"l2": math.sqrt(diff), "cosine": cosine}


def angular_distance(a: Tensors, b: Tensors, masks: dict[str, torch.Tensor]) -> float | None:
    """2·angle/π between a ⊙ m and b ⊙ m over the masked tensors (Maene et al. 2021, 4.1);
    None when either is all zeros there."""
    cosine = solution_distance({n: a[n] * masks[n] for n in masks}, {n: b[n] * masks[n] for n in masks},
                               list(masks))["cosine"]
    return None if cosine is None else 2 * math.acos(max(-1.0, min(1.0, cosine))) / math.pi


def _train_split(data: Dataset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    if data.train_x.device == device:
        return data.train_x, data.train_y
    count = min(TRAIN_EXAMPLES_OFF_DEVICE, len(data.train_x))
    index = torch.randperm(len(data.train_x), generator=generator("successive", "train"))[:count]
    return data.train_x[index].to(device), data.train_y[index].to(device)


def _path(model: nn.Module, data: Dataset, a: Tensors, b: Tensors, points: int, names: list[str],
          bn_x: torch.Tensor | None, train: tuple[torch.Tensor, torch.Tensor]) -> dict[str, Any]:
    curve = error_curve(model, a, b, data.test_x, data.test_y, points, bn_x=bn_x, also={"train": train})
    return {"curve": curve, "barrier": barrier(curve), "barrier_train": barrier(curve, "train_error"),
            "error_a": curve[0]["error"], "error_b": curve[-1]["error"],
            "train_error_a": curve[0]["train_error"], "train_error_b": curve[-1]["train_error"],
            **solution_distance(a, b, names)}


def _from_start(final: Tensors, start: Tensors, names: list[str]) -> dict[str, float | None]:
    dist = solution_distance(final, start, names)["l2"]
    norm = math.sqrt(sum(float(start[n].double().pow(2).sum()) for n in names))
    return {"l2": dist, "relative": dist / norm if norm > 0 else None}


def connectivity(model: nn.Module, data: Dataset, previous: tuple[Tensors, Tensors], current: tuple[Tensors, Tensors],
                 masks: dict[str, torch.Tensor], points: int = 21) -> dict[str, Any]:
    """The successive-round figures of one round from (start, final) of round r-1 and of round r
    and round r's mask: {"projected", "unprojected": {curve, barrier, barrier_train, error_a,
    error_b, train_error_a, train_error_b, l2, cosine}, "distance_from_rewind": {"previous",
    "current": {l2, relative}}, "weights_remaining", "points", "batchnorm", "bn_examples",
    "train_examples", "test_examples", "seconds"}. `model` is only a container (deep-copied)."""
    started = time.perf_counter()
    device = data.test_x.device
    work = copy.deepcopy(model).to(device)
    names = [name for name, _ in work.named_parameters()]
    def on(state: Tensors) -> Tensors:
        return {k: v.to(device) for k, v in state.items()}

    prev_start, prev_final = on(previous[0]), on(previous[1])
    cur_start, cur_final = on(current[0]), on(current[1])
    masks = {k: v.bool().to(device) for k, v in masks.items()}
    bn_x = batchnorm_examples(work, data.train_x, device)
    train = _train_split(data, device)
    kept = sum(int(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    return {"points": points, "weights_remaining": kept / total if total else 1.0,
            "projected": _path(work, data, project(prev_final, cur_final, masks), cur_final, points, names, bn_x,
                               train),
            "unprojected": _path(work, data, prev_final, cur_final, points, names, bn_x, train),
            "angular_distance": angular_distance(prev_final, cur_final, masks),
            "distance_from_rewind": {"previous": _from_start(prev_final, prev_start, names),
                                     "current": _from_start(cur_final, cur_start, names)},
            "distance_over": "every trainable parameter (float64)",
            "rewind_point": "the round's start.safetensors",
            "batchnorm": "recomputed" if bn_x is not None else "none", "bn_examples": 0 if bn_x is None else len(bn_x),
            "train_examples": len(train[0]), "test_examples": len(data.test_x), "split": "test and train",
            "seconds": time.perf_counter() - started}


def round_fields(record: SuccessiveRecord) -> dict[str, Any]:
    """The ROUND_FIELDS of a successive.json record (what result.json carries)."""
    proj, unproj, dist = record["projected"], record["unprojected"], record["distance_from_rewind"]
    return {"successive_barrier": proj["barrier"], "successive_barrier_train": proj["barrier_train"],
            "successive_barrier_unprojected": unproj["barrier"],
            "successive_barrier_unprojected_train": unproj["barrier_train"],
            "successive_l2": proj["l2"], "successive_cosine": proj["cosine"], "successive_l2_unprojected": unproj["l2"],
            "successive_cosine_unprojected": unproj["cosine"], "successive_angular": record.get("angular_distance"),
            "rewind_distance": dist["current"]["l2"],
            "rewind_distance_previous": dist["previous"]["l2"]}


def _write(round_dir: Path, trial: int, round_: int, record: dict[str, Any]) -> SuccessiveRecord:
    full: dict[str, Any] = {"trial": trial, "round": round_, "previous_round": round_ - 1, **record}
    write_json_atomic(Path(round_dir) / FILE, full)
    return cast(SuccessiveRecord, full)


def _event_fields(record: dict[str, Any]) -> dict[str, Any]:
    return {"trial": record["trial"], "round": record["round"], "weights_remaining": record["weights_remaining"],
            **round_fields(record), "seconds": record["seconds"]}


def round_successive(run: Any, t: int, r: int, previous: tuple[Tensors, Tensors], current: tuple[Tensors, Tensors],
                     masks: dict[str, torch.Tensor], model: nn.Module) -> SuccessiveRecord:
    """The per-round option of IMP (`analysis.successive = true`), called by the runner once
    round r (>= 1) has its final weights: writes successive.json and a `successive` event and
    returns the record."""
    record = connectivity(model, run.data, previous, current, masks, run.config.analysis.lmc_points)
    record = _write(run.writer.round_dir(t, r), t, r, record)
    run.emit(run.writer.event("successive", **_event_fields(record)))
    return record


def _round_tensors(round_dir: Path) -> tuple[Tensors, Tensors]:
    return load_tensors(round_dir / START), load_tensors(round_dir / FINAL)


def run_successive(run_dir: Path | str, trial: int | None = None, *, data: Dataset | None = None,
                   should_stop: Callable[[], bool] | None = None,
                   on_round: Callable[[SuccessiveRecord], None] | None = None) -> list[SuccessiveRecord]:
    """`lth-tui lmc RUN_DIR --successive [--trial T]`: the successive-round figures of every
    finished round r >= 1 of a stored run (every trial, or trial T).

    Writes each round's successive.json, merges its ROUND_FIELDS into the round's result.json,
    appends a `successive` event, and rewrites summary.json from the result files. Raises
    ConfigError for a non-IMP run or a bad trial; Cancelled when `should_stop` says so between
    rounds (the rounds done by then are kept).
    """
    from engine.experiments import experiment_of, total_rounds
    from engine.lmc import load_run_data
    from engine.models import build_model, model_options
    from engine.store import read_config
    from engine.summary import build_summary

    run_dir = Path(run_dir)
    config = read_config(run_dir)
    if "successive" not in experiment_of(config).analyses:
        raise ConfigError(str(run_dir), "experiment", config.experiment,
                          "successive-round connectivity is measured on IMP runs")
    if trial is not None and not 0 <= trial < config.trials:
        raise ConfigError(str(run_dir), "--trial", trial, f"the run has trials 0..{config.trials - 1}")
    data = load_run_data(config, data)
    model = build_model(config.model.name, input_shape=data.input_shape, num_classes=data.num_classes,
                        hidden=config.model.hidden, init=config.model.init, generator=generator(config.seed, "init"),
                        **model_options(config))
    records = []
    layout = RunLayout(run_dir)
    writer = RunWriter(run_dir)
    try:
        for t in ([trial] if trial is not None else range(config.trials)):
            for r in range(1, total_rounds(config)):
                prev_dir, round_dir = layout.round_dir(t, r - 1), layout.round_dir(t, r)
                if not all((d / name).is_file() for d in (prev_dir, round_dir) for name in (RESULT, START, FINAL,
                                                                                            MASK)):
                    continue
                if should_stop is not None and should_stop():
                    raise Cancelled(f"stopped before trial {t} round {r}")
                masks = {n: m.bool() for n, m in load_tensors(round_dir / MASK).items()}
                record = connectivity(model, data, _round_tensors(prev_dir), _round_tensors(round_dir), masks,
                                      config.analysis.lmc_points)
                record = _write(round_dir, t, r, record)
                result = read_result(round_dir)  # checked: a damaged record names itself (StoreError)
                write_json_atomic(round_dir / RESULT, {**result, **round_fields(record)})
                writer.event("successive", **_event_fields(record))
                records.append(record)
                if on_round is not None:
                    on_round(record)
    finally:
        if layout.summary.is_file():
            try:
                state = read_summary(run_dir).get("state") or "done"
            except StoreError:  # rebuilt from the result files all the same
                state = "done"
            writer.summary(build_summary(run_dir, config, state))
        writer.close()
    return records
