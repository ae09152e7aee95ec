"""The shape of every JSON file in a run dir, checked on every read.

A run dir copied from a colleague or a cluster is untrusted: `"pid": "abc"`, a summary whose
trials are numbers, or a NaN smuggled in as a string must make that one run "damaged, because
...", never crash a list of a hundred runs or blank a screen. Each checker returns its input
(so a reader writes `check_x(json.loads(...))`) or raises SchemaError naming the field.

Pure Python on purpose: the read-only commands (`runs`, `export`, `stop`) must not import torch.
"""

from __future__ import annotations

import math
from typing import Any

STATES = ("queued", "running", "done", "failed", "cancelled")
MAX_TEXT = 10_000  # longer strings in a status are not ours


class SchemaError(ValueError):
    """A JSON value of the wrong type or shape; the message names the field."""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_number(value: Any) -> bool:
    """A finite int or float (bools are not numbers here)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(where: str, value: Any, optional: bool = True) -> None:
    if value is None and optional:
        return
    if not is_number(value):
        raise SchemaError(f"{where} must be a finite number, got {_short(value)}")


def _int(where: str, value: Any, optional: bool = True, low: int | None = 0, high: int | None = 2 ** 63 - 1) -> None:
    if value is None and optional:
        return
    if not is_int(value) or (low is not None and value < low) or (high is not None and value > high):
        raise SchemaError(f"{where} must be an integer{'' if low is None else f' >= {low}'}, got {_short(value)}")


def _text(where: str, value: Any, optional: bool = True) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise SchemaError(f"{where} must be a string, got {_short(value)}")


def _dict(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SchemaError(f"{where} must be an object, got {_short(value)}")
    return value


def _list(where: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise SchemaError(f"{where} must be a list, got {_short(value)}")
    return value


def check_status(status: Any) -> dict[str, Any]:
    """status.json: state, pid, host, error, times, heartbeat, and the optional fields."""
    status = _dict("status", status)
    if status.get("state") not in STATES:
        raise SchemaError(f"state must be one of {', '.join(STATES)}, got {_short(status.get('state'))}")
    _int("pid", status.get("pid"), high=2 ** 31 - 1)
    for key in ("host", "error", "preset", "group", "backend", "node", "ray_task_id"):
        _text(key, status.get(key))
    for key in ("created", "updated", "started", "finished"):
        _number(key, status.get(key))
    _int("rounds_done", status.get("rounds_done"))
    _int("runner_start", status.get("runner_start"))
    beat = status.get("heartbeat")
    if beat is not None:
        beat = _dict("heartbeat", beat)
        _number("heartbeat.time", beat.get("time"), optional=False)
        _text("heartbeat.host", beat.get("host"))
        _int("heartbeat.pid", beat.get("pid"), high=2 ** 31 - 1)
        _int("heartbeat.pid_start", beat.get("pid_start"))
    return status


ROUND_NUMBERS = ("weights_remaining", "val_loss_min", "test_accuracy_at_early_stop", "test_accuracy_final",
                 "supermask_accuracy", "seconds", "early_stop_iteration", "lmc_barrier", "batched_seconds",
                 "expected_mask_accuracy", "sampled_mask_accuracy", "weights_trainable", "weights_nonzero",
                 "test_accuracy_best", "successive_barrier", "successive_barrier_train",
                 "successive_barrier_unprojected", "successive_barrier_unprojected_train", "successive_l2",
                 "successive_cosine", "successive_l2_unprojected", "successive_cosine_unprojected",
                 "successive_angular", "rewind_distance", "rewind_distance_previous")


def check_round(record: Any, where: str = "round") -> dict[str, Any]:
    """One round's record (result.json, or an entry of summary.json's trials[t].rounds)."""
    record = _dict(where, record)
    _int(f"{where}.round", record.get("round"), optional=False)
    _number(f"{where}.weights_remaining", record.get("weights_remaining"), optional=False)
    for key in ROUND_NUMBERS:
        _number(f"{where}.{key}", record.get(key))
    for key in ("kept", "total", "batched_trials", "nonzero"):
        _int(f"{where}.{key}", record.get(key))
    for field in ("layers", "layers_nonzero"):  # per-layer fractions (engine/density.py)
        layers = record.get(field)
        if layers is not None:
            for name, value in _dict(f"{where}.{field}", layers).items():
                _number(f"{where}.{field}[{_short(name)}]", value, optional=False)
    return record


CURVE_NUMBERS = ("test_accuracy_mean", "test_accuracy_std", "test_accuracy_final_mean", "test_accuracy_final_std",
                 "early_stop_iteration_mean", "early_stop_iteration_std", "supermask_accuracy_mean",
                 "supermask_accuracy_std", "weights_trainable", "weights_nonzero")


def check_summary(summary: Any) -> dict[str, Any]:
    """summary.json: trials -> rounds of round records, and the curve of mean/std points."""
    summary = _dict("summary", summary)
    _text("run_id", summary.get("run_id"))
    _text("state", summary.get("state"))
    for t, trial in enumerate(_list("trials", summary.get("trials"))):
        trial = _dict(f"trials[{t}]", trial)
        _int(f"trials[{t}].seed", trial.get("seed"))
        for i, record in enumerate(_list(f"trials[{t}].rounds", trial.get("rounds", []))):
            check_round(record, f"trials[{t}].rounds[{i}]")
    for i, point in enumerate(_list("curve", summary.get("curve", []))):
        point = _dict(f"curve[{i}]", point)
        _int(f"curve[{i}].round", point.get("round"))
        _number(f"curve[{i}].weights_remaining", point.get("weights_remaining"), optional=False)
        _int(f"curve[{i}].n", point.get("n"))
        for key, value in point.items():
            if key.endswith(("_mean", "_std")) or key in CURVE_NUMBERS:
                _number(f"curve[{i}].{key}", value)
    if "config" in summary:
        _dict("config", summary["config"])
    return summary


EVAL_NUMBERS = ("train_loss", "val_loss", "val_accuracy", "test_loss", "test_accuracy", "lr", "weights_remaining",
                "sampled_test_accuracy", "global_iteration")


def check_evals(evals: Any, where: str = "evals") -> list[dict[str, Any]]:
    """evals.json: a list of evaluation points."""
    for i, point in enumerate(_list(where, evals)):
        check_eval_point(point, f"{where}[{i}]")
    return evals


def check_eval_point(point: Any, where: str = "eval") -> dict[str, Any]:
    point = _dict(where, point)
    _int(f"{where}.iteration", point.get("iteration"), optional=False)
    for key in EVAL_NUMBERS:
        _number(f"{where}.{key}", point.get(key))
    return point


# Fields of events.jsonl lines the app does arithmetic with.
EVENT_INTS = ("trial", "round", "iteration", "trials", "rounds", "iterations", "rounds_done", "eval_every",
              "early_stop_iteration", "global_iteration")
EVENT_NUMBERS = ("time", "weights_remaining", "train_loss", "val_loss", "val_accuracy", "test_loss", "test_accuracy",
                 "lr", "test_accuracy_at_early_stop", "test_accuracy_final", "supermask_accuracy", "seconds",
                 "val_loss_min", "sampled_test_accuracy", "expected_mask_accuracy", "sampled_mask_accuracy",
                 "lmc_barrier", "barrier", "successive_barrier", "successive_l2", "rewind_distance")


def _segment(value: list[Any]) -> list[Any]:
    if len(value) != 2:
        raise SchemaError(f"iterations must be an integer or [start, end], got {_short(value)}")
    return value


def event_ok(event: Any) -> bool:
    """Whether one events.jsonl line has the types readers rely on (bad lines are skipped)."""
    if not isinstance(event, dict) or not isinstance(event.get("event"), str):
        return False
    try:
        for key in EVENT_INTS:
            if key == "iterations" and isinstance(event.get(key), list):  # a mask-training round's [start, end]
                for bound in _segment(event[key]):
                    _int(key, bound, high=None)
            elif key in event:
                _int(key, event[key], high=None)
        for key in EVENT_NUMBERS:
            if key in event:
                _number(key, event[key])
        if "layers" in event and event["layers"] is not None:
            for value in _dict("layers", event["layers"]).values():
                _number("layers", value, optional=False)
        for key in ("message", "error", "device", "run_id", "state", "reason", "experiment"):
            if key in event:
                _text(key, event[key])
    except SchemaError:
        return False
    return True


def _curve(where: str, curve: Any) -> None:
    """An interpolation curve: [{"alpha", "error"}, ...] (LMC and successive records)."""
    for i, point in enumerate(_list(where, curve)):
        point = _dict(f"{where}[{i}]", point)
        _number(f"{where}[{i}].alpha", point.get("alpha"))
        _number(f"{where}[{i}].error", point.get("error"))


def check_lmc(record: Any) -> dict[str, Any]:
    """An lmc*.json record: the barrier, its place (trial, round, rewind point) and its curve."""
    record = _dict("lmc", record)
    _number("barrier", record.get("barrier"), optional=False)
    for key in ("trial", "round", "rewind_iteration", "start_iteration", "iterations", "bn_examples"):
        _int(key, record.get(key))
    for key in ("threshold", "error_a", "error_b", "seconds"):
        _number(key, record.get(key))
    _curve("curve", record.get("curve", []))
    return record


def lmc_ok(record: Any) -> bool:
    """Whether an lmc*.json record has the types the LMC tables and plots rely on."""
    try:
        check_lmc(record)
    except SchemaError:
        return False
    return True


def check_successive(record: Any) -> dict[str, Any]:
    """A successive.json record (engine/successive.py): the projected and unprojected lines between
    round r-1's solution and round r's, their distances, and the distances from the rewind point."""
    record = _dict("successive", record)
    _int("round", record.get("round"), optional=False)
    _int("trial", record.get("trial"))
    _number("weights_remaining", record.get("weights_remaining"), optional=False)
    for name in ("projected", "unprojected"):
        path = _dict(name, record.get(name))
        for key in ("barrier", "l2"):
            _number(f"{name}.{key}", path.get(key), optional=False)
        for key in ("barrier_train", "cosine", "error_a", "error_b", "train_error_a", "train_error_b"):
            _number(f"{name}.{key}", path.get(key))
        _curve(f"{name}.curve", path.get("curve"))
    _number("angular_distance", record.get("angular_distance"))
    distances = record.get("distance_from_rewind")
    if distances is not None:
        for end, value in _dict("distance_from_rewind", distances).items():
            for key, figure in _dict(f"distance_from_rewind.{_short(end)}", value).items():
                _number(f"distance_from_rewind.{_short(end)}.{_short(key)}", figure)
    return record


def check_group(group: Any) -> dict[str, Any]:
    """A sweep's group.json: {"group", "preset", "axes": {key: [values]}, "runs": [{"run_dir": str,
    "swept": {...}}]} (lth_tui/sweeps.py)."""
    group = _dict("group", group)
    if not isinstance(group.get("runs"), list):
        raise SchemaError("no runs list")
    axes = group.get("axes", {})
    if not isinstance(axes, dict) or not all(isinstance(v, list) for v in axes.values()):
        raise SchemaError("axes must map keys to lists of values")
    for i, entry in enumerate(group["runs"]):
        if not (isinstance(entry, dict) and isinstance(entry.get("run_dir"), str) and isinstance(entry.get("swept", {}),
                                                                                                 dict)):
            raise SchemaError(f"runs[{i}] must be {{\"run_dir\": str, \"swept\": {{...}}}}")
        _text(f"runs[{i}].label", entry.get("label"))
    for key in ("group", "preset"):
        _text(key, group.get(key))
    return group


def find_non_finite(value: Any, where: str = "") -> str | None:
    """The path of the first NaN or infinity inside a JSON-like value, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return where or "value"
    if isinstance(value, dict):
        for key, item in value.items():
            found = find_non_finite(item, f"{where}.{key}" if where else str(key))
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = find_non_finite(item, f"{where}[{i}]")
            if found:
                return found
    return None
