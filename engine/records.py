"""Typed records of the run store and the one mean ± std over trials.

Every figure shown "mean ± std over trials" (summary.json's curve, the Run screen, exports,
stability tables) comes from `mean_std`, so a reader cannot disagree with the summary about
what a missing value or a single trial means. Pure Python: the read-only commands use it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from typing import Any, Literal, NamedTuple, TypedDict, cast


class MeanStd(NamedTuple):
    """Mean, sample standard deviation (0 for one value) and count of the values present."""

    mean: float | None
    std: float | None
    n: int


def _present(value: object) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value))


def mean_std(values: Iterable[object]) -> MeanStd:
    """Over the finite numbers among `values` (None, NaN, text are absent, not zero); nothing present
    gives (None, None, 0)."""
    present = [float(v) for v in values if _present(v)]
    if not present:
        return MeanStd(None, None, 0)
    return MeanStd(statistics.fmean(present), statistics.stdev(present) if len(present) > 1 else 0.0, len(present))


# -- typed records: the JSON of the run store as types (design.md "Run store"). TypedDicts, not
# classes: what is read is plain JSON checked by engine/schema.py, and what is written stays the
# same bytes. `total=False` fields are absent from some runs (older ones, other experiments).


class Heartbeat(TypedDict, total=False):
    time: float
    host: str
    pid: int
    pid_start: int


class Status(TypedDict, total=False):
    """status.json (engine/schema.py check_status)."""

    state: Literal["queued", "running", "done", "failed", "cancelled"]
    pid: int | None
    host: str
    error: str | None
    created: float
    updated: float
    started: float
    finished: float
    preset: str
    group: str
    backend: str
    node: str
    ray_task_id: str
    cuda_visible_devices: str
    rounds_done: int
    runner_start: int
    threads: int
    heartbeat: Heartbeat


class EvalPoint(TypedDict, total=False):
    """One evaluation (evals.json entries; the figures of an `eval` event). `train_loss` is None
    for the evaluation before the first step."""

    iteration: int
    train_loss: float | None
    val_loss: float | None
    val_accuracy: float | None
    test_loss: float
    test_accuracy: float
    lr: float
    weights_remaining: float
    sampled_test_accuracy: float
    global_iteration: int


class RoundRecord(TypedDict, total=False):
    """One round (result.json; summary.json trials[t].rounds[i]; a `round_end` event's figures)."""

    round: int
    weights_remaining: float
    layers: dict[str, float]
    layers_nonzero: dict[str, float]
    kept: int
    total: int
    nonzero: int
    weights_trainable: float
    weights_nonzero: float
    early_stop_iteration: int | None
    val_loss_min: float | None
    test_accuracy_at_early_stop: float | None
    test_accuracy_final: float
    test_accuracy_best: float
    supermask_accuracy: float | None
    seconds: float
    batched_seconds: float
    batched_trials: int
    lmc_barrier: float
    lmc_stable: bool
    experiment: str
    expected_mask_accuracy: float
    sampled_mask_accuracy: float
    iterations: list[int]
    scale: dict[str, float]
    successive_barrier: float
    successive_barrier_train: float
    successive_barrier_unprojected: float
    successive_barrier_unprojected_train: float
    successive_l2: float
    successive_cosine: float
    successive_l2_unprojected: float
    successive_cosine_unprojected: float
    successive_angular: float | None
    rewind_distance: float
    rewind_distance_previous: float


class CurvePoint(TypedDict, total=False):
    """One point of summary.json's curve (curve_points): `<figure>_mean`/`_std` over trials, and
    `<figure>_n` for the OPTIONAL_FIGURES a run records. The one curve vocabulary."""

    round: int
    weights_remaining: float
    n: int
    weights_trainable: float
    weights_nonzero: float
    test_accuracy_mean: float | None
    test_accuracy_std: float | None
    test_accuracy_final_mean: float | None
    test_accuracy_final_std: float | None
    early_stop_iteration_mean: float | None
    early_stop_iteration_std: float | None
    supermask_accuracy_mean: float | None
    supermask_accuracy_std: float | None
    # OPTIONAL_FIGURES: present only when some trial records the figure
    lmc_barrier_mean: float
    lmc_barrier_std: float
    lmc_barrier_n: int
    sampled_mask_accuracy_mean: float
    sampled_mask_accuracy_std: float
    sampled_mask_accuracy_n: int
    expected_mask_accuracy_mean: float
    expected_mask_accuracy_std: float
    expected_mask_accuracy_n: int
    test_accuracy_best_mean: float
    test_accuracy_best_std: float
    test_accuracy_best_n: int
    successive_barrier_mean: float
    successive_barrier_std: float
    successive_barrier_n: int
    successive_barrier_train_mean: float
    successive_barrier_train_std: float
    successive_barrier_train_n: int
    successive_barrier_unprojected_mean: float
    successive_barrier_unprojected_std: float
    successive_barrier_unprojected_n: int
    successive_l2_mean: float
    successive_l2_std: float
    successive_l2_n: int
    successive_cosine_mean: float
    successive_cosine_std: float
    successive_cosine_n: int
    rewind_distance_mean: float
    rewind_distance_std: float
    rewind_distance_n: int


class TrialRecord(TypedDict, total=False):
    seed: int
    rounds: list[RoundRecord]


class Summary(TypedDict, total=False):
    """summary.json (engine/summary.py build_summary; check_summary). Exports add "lmc",
    "successive" and "mask_overlap" to the JSON they print, never to the file."""

    run_id: str
    state: str
    config: dict[str, Any]
    trials: list[TrialRecord]
    curve: list[CurvePoint]


class LmcPoint(TypedDict):
    alpha: float
    error: float


class LmcRecord(TypedDict, total=False):
    """trial-<t>/round-<r>/lmc.json or lmc-k<K>.json (engine/lmc.py); `file` is added by
    store.read_lmc (the path relative to the run dir), never written."""

    trial: int
    round: int
    rewind_iteration: int | None
    start: str  # where the two copies started, in words ("round start (start.safetensors)", "theta_<K> ...")
    curve: list[LmcPoint]
    barrier: float
    stable: bool
    threshold: float
    error_a: float
    error_b: float
    seeds: list[int]
    start_iteration: int
    iterations: int
    batchnorm: str
    bn_examples: int
    split: str
    seconds: float
    weights_a: str
    weights_b: str
    file: str


class SuccessivePath(TypedDict, total=False):
    """One of the two straight lines of a successive.json (projected, unprojected)."""

    curve: list[LmcPoint]
    barrier: float
    barrier_train: float
    error_a: float
    error_b: float
    train_error_a: float
    train_error_b: float
    l2: float
    cosine: float


class SuccessiveRecord(TypedDict, total=False):
    """trial-<t>/round-<r>/successive.json (engine/successive.py connectivity)."""

    trial: int
    round: int
    previous_round: int
    weights_remaining: float
    points: int
    projected: SuccessivePath
    unprojected: SuccessivePath
    distance_from_rewind: dict[str, dict[str, float]]
    angular_distance: float | None
    batchnorm: str
    bn_examples: int
    seconds: float


class GroupRun(TypedDict, total=False):
    run_dir: str
    swept: dict[str, Any]
    label: str


class Group(TypedDict, total=False):
    """<runs-dir>/groups/<id>/group.json (lth_tui/sweeps.py)."""

    group: str
    preset: str
    axes: dict[str, list[Any]]
    runs: list[GroupRun]


# -- events.jsonl: one TypedDict per kind; every line has "event" and "time" (RunWriter.event).


class RunStartEvent(TypedDict, total=False):
    event: Literal["run_start"]
    time: float
    run_id: str
    resumed: bool
    device: str
    trials: int
    rounds: int
    iterations: int
    eval_every: int
    rounds_done: int
    experiment: str
    parallel_trials: bool
    threads: int
    batched_runs: int


class RoundStartEvent(TypedDict, total=False):
    event: Literal["round_start"]
    time: float
    trial: int
    round: int
    weights_remaining: float
    layers: dict[str, float]
    layers_nonzero: dict[str, float]
    weights_trainable: float
    weights_nonzero: float
    nonzero: int
    experiment: str


class EvalEvent(EvalPoint, total=False):
    event: Literal["eval"]
    time: float
    trial: int
    round: int


class RoundEndEvent(RoundRecord, total=False):
    event: Literal["round_end"]
    time: float
    trial: int


class LmcEvent(TypedDict, total=False):
    event: Literal["lmc"]
    time: float
    trial: int
    round: int
    rewind_iteration: int | None
    barrier: float
    stable: bool
    threshold: float
    error_a: float
    error_b: float
    start_iteration: int
    iterations: int
    seconds: float


class SuccessiveEvent(TypedDict, total=False):
    event: Literal["successive"]
    time: float
    trial: int
    round: int
    weights_remaining: float
    successive_barrier: float
    successive_barrier_train: float
    successive_barrier_unprojected: float
    successive_barrier_unprojected_train: float
    successive_l2: float
    successive_cosine: float
    successive_l2_unprojected: float
    successive_cosine_unprojected: float
    successive_angular: float | None
    rewind_distance: float
    rewind_distance_previous: float
    seconds: float


class WarningEvent(TypedDict, total=False):
    event: Literal["warning"]
    time: float
    message: str


class ErrorEvent(TypedDict, total=False):
    event: Literal["error"]
    time: float
    message: str
    traceback: str


class RunEndEvent(TypedDict, total=False):
    """`reason` when stopped (cancelled), `error` when the run ended otherwise."""

    event: Literal["run_end"]
    time: float
    state: str
    reason: str
    error: str | None


Event = (RunStartEvent | RoundStartEvent | EvalEvent | RoundEndEvent | LmcEvent | SuccessiveEvent | WarningEvent
         | ErrorEvent | RunEndEvent)
EVENT_KINDS = ("run_start", "round_start", "eval", "round_end", "lmc", "successive", "warning", "error", "run_end")


# Round figures summarised as mean/std/n only when a run records them (LMC, mask training, successive).
OPTIONAL_FIGURES = ("lmc_barrier", "sampled_mask_accuracy", "expected_mask_accuracy", "test_accuracy_best",
                    "successive_barrier", "successive_barrier_train", "successive_barrier_unprojected", "successive_l2",
                    "successive_cosine", "rewind_distance")
# (round-record field, curve name): always present in a curve point, null without values
# (no hold-out, data.val_size = 0, leaves the early-stop figures null).
CORE_FIGURES = (("test_accuracy_at_early_stop", "test_accuracy"), ("test_accuracy_final", "test_accuracy_final"),
                ("early_stop_iteration", "early_stop_iteration"), ("supermask_accuracy", "supermask_accuracy"))


def curve_points(records: Iterable[RoundRecord]) -> list[CurvePoint]:
    """summary.json's `curve` from round records (any trials, any order): one point per round with
    mean weights remaining, `<figure>_mean`/`_std` and `n`; the vocabulary every reader uses."""
    by_round: dict[int, list[RoundRecord]] = {}
    for record in records:
        by_round.setdefault(record["round"], []).append(record)
    curve = []
    for r, recs in sorted(by_round.items()):
        point: dict[str, Any] = {"round": r,
                                 "weights_remaining": statistics.fmean(x["weights_remaining"] for x in recs),
                                 "n": len(recs)}
        for key in ("weights_trainable", "weights_nonzero"):  # engine/density.py; absent from older runs
            stats = mean_std(x.get(key) for x in recs)
            if stats.n:
                point[key] = stats.mean
        for key, out in CORE_FIGURES:
            stats = mean_std(x.get(key) for x in recs)
            point[f"{out}_mean"], point[f"{out}_std"] = stats.mean, stats.std
        for key in OPTIONAL_FIGURES:
            stats = mean_std(x.get(key) for x in recs)
            if stats.n:
                point[f"{key}_mean"], point[f"{key}_std"], point[f"{key}_n"] = stats.mean, stats.std, stats.n
        curve.append(cast(CurvePoint, point))
    return curve
