"""What `lth-tui runs` and the Runs screen list: one line per run dir, never a crash.

Kept apart from engine/store.py (which reads and writes one run's files) because listing is a
different job: it reads many run dirs, any of them damaged or someone else's, and turns every
failure into a "damaged" line instead of an exception. Pure Python (no torch): `lth-tui runs`
stays instant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.experiments import experiment_of
from engine.layout import RunLayout
from engine.process import shown_state
from engine.records import CurvePoint, Summary
from engine.store import StoreError, default_runs_dir, read_config, read_status, read_summary


@dataclass
class RunInfo:
    """One line of the runs list; `state` adds "interrupted", "lost" and "damaged" to the stored ones.

    A run whose runner (or, while queued, whose sweep) is gone from this host is "interrupted";
    one whose heartbeat stopped more than a minute ago, on any host, is "lost".
    """

    path: Path
    run_id: str
    state: str
    preset: str = ""
    criterion: str = ""
    mask1: str = ""  # "" for mask-training runs, which have no mask-1 / mask-0 actions
    mask0: str = ""
    group: str = ""
    best_accuracy: float | None = None
    best_weights_remaining: float | None = None
    rounds_done: int = 0
    error: str = ""
    created: float = 0.0
    backend: str = ""  # where a sweep put it: "local", "ray" ("" for a run started on its own)
    node: str = ""  # the machine it runs on: the backend's node, else the runner's host
    config: dict[str, Any] = field(default_factory=dict)  # the resolved config (labels name what differs)


def run_info(run_dir: Path) -> RunInfo:
    """Reads what the runs list shows; any damage becomes state "damaged" with the reason."""
    run_dir = Path(run_dir)
    info = RunInfo(path=run_dir, run_id=run_dir.name, state="damaged")
    try:
        status = read_status(run_dir)
        config = read_config(run_dir)
    except StoreError as exc:
        info.error = str(exc)
        return info
    info.state = status["state"]
    info.preset = str(status.get("preset") or config.name)
    info.backend, info.node = str(status.get("backend") or ""), str(status.get("node") or status.get("host") or "")
    # Mask-training runs have no pruning criterion: show what they are instead.
    kind = experiment_of(config)
    info.criterion = config.experiment if kind.mask_training else config.prune.criterion
    if not kind.mask_training:
        info.mask1, info.mask0 = config.prune.mask1, config.prune.mask0
    info.config = config.to_dict()
    info.group = str(status.get("group") or "")
    info.error = str(status.get("error") or "")
    info.created = float(status.get("created") or 0.0)
    info.state, note = shown_state(status)
    info.error = note or info.error
    if RunLayout(run_dir).summary.exists():
        try:
            summary = read_summary(run_dir)
        except StoreError as exc:
            info.state, info.error = "damaged", str(exc)
            return info
        best = best_point(summary)
        if best:
            info.best_accuracy, info.best_weights_remaining = best
        info.rounds_done = sum(len(t.get("rounds", [])) for t in summary["trials"])
    return info


def headline_accuracy(point: CurvePoint) -> float | None:
    """A curve point's mean test accuracy at early stop, or its final one when the run held
    nothing out to early-stop on (data.val_size = 0: the early-stop figures are null)."""
    value = point.get("test_accuracy_mean")
    return point.get("test_accuracy_final_mean") if value is None else value


def best_point(summary: Summary) -> tuple[float, float] | None:
    """(best headline_accuracy, its weights remaining) over the curve."""
    points = [p for p in summary.get("curve", []) if headline_accuracy(p) is not None]
    if not points:
        return None
    best = max(points, key=lambda p: (headline_accuracy(p), -p["weights_remaining"]))
    return headline_accuracy(best), best["weights_remaining"]


def list_runs(runs_dir: Path | None = None) -> list[RunInfo]:
    """Every run dir under runs_dir, newest first; damaged ones included, never raising."""
    runs_dir = Path(runs_dir) if runs_dir else default_runs_dir()
    if not runs_dir.is_dir():
        return []
    infos = [run_info(p) for p in runs_dir.iterdir()
             if p.is_dir() and not p.name.startswith(".") and RunLayout(p).looks_like_run()]
    return sorted(infos, key=lambda i: i.run_id, reverse=True)
