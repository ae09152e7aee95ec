"""Who may resume or stop a run: one set of rules for the app (r, x) and the CLI (`lth-tui
resume`, `lth-tui stop`), so the two never disagree about a run dir.

A run dir may belong to someone else or to another machine: its status is a claim. Resuming is
refused while anything still runs it (its lock is held, its runner or its sweep is alive here or
heartbeating elsewhere) or when a stored round is damaged; stopping signals only a proven runner
(engine.process.request_stop) and otherwise leaves a stop.request. No torch is imported.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from engine import process
from engine.process import StopResult, lock_held, on_this_host

# The states a run can be resumed from (a "lost" run's machine went away; it checkpointed).
RESUMABLE = ("cancelled", "interrupted", "failed", "lost")


class ResumeRefused(Exception):
    """Why a run cannot be resumed now; `done` when there is simply nothing left to do."""

    def __init__(self, message: str, done: bool = False) -> None:
        super().__init__(message)
        self.done = done


@dataclasses.dataclass(frozen=True)
class Resumable:
    """A run dir that passed every resume check: its config and status as read."""

    config: Any
    status: dict[str, Any]


def check_resume(run_dir: Path, name: str | None = None) -> Resumable:
    """Reads the run and applies every resume rule; raises ResumeRefused (or StoreError for a
    dir that is not a run) naming `name` (the run dir by default)."""
    from engine.planning import check_stored_rounds
    from engine.store import StoreError, read_config, read_status
    from lth_tui.follower import runner_alive

    name = str(run_dir) if name is None else name
    config = read_config(run_dir)
    status = read_status(run_dir)
    if status["state"] == "done":
        raise ResumeRefused(f"{name} is already done; nothing to resume", done=True)
    holder = lock_held(run_dir)
    if holder:
        raise ResumeRefused(f"{name} is already being run by {holder}; stop it first (lth-tui stop) or wait")
    where = f"pid {status.get('pid')}" + ("" if on_this_host(status) else f" on {status.get('host')}")
    if runner_alive(status):  # its runner is alive (or is starting: no pid written yet)
        raise ResumeRefused(f"{name} is still running ({where}); stop it first (lth-tui stop) or wait")
    if status["state"] == "queued" and _sweep_alive(status):
        raise ResumeRefused(f"{name} is queued in a sweep that is still going ({where}), which will start it; "
                            "stop the sweep first to run it yourself")
    try:
        check_stored_rounds(run_dir, config)
    except StoreError as exc:
        raise ResumeRefused(f"{name}: {exc}") from exc
    return Resumable(config, status)


def _sweep_alive(status: dict[str, Any]) -> bool:
    return process.liveness(status) == "alive"


def stop_run(run_dir: Path, by: str) -> StopResult:
    """Asks a run to checkpoint and end: SIGTERM only to a proven runner of it on this host,
    a stop.request otherwise (engine.process.request_stop)."""
    return process.request_stop(run_dir, by=by)


def cancel_run(run_dir: Path, by: str = "lth-tui app") -> str:
    """The app's cancel: what was done, or RuntimeError when nothing runs it."""
    result = stop_run(run_dir, by)
    if result.action == "not-running":
        raise RuntimeError(f"{Path(run_dir).name} has no live runner to stop: {result.detail}")
    return result.detail
