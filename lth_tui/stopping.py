"""`lth-tui stop RUN ...`: ask runs to checkpoint and end, then wait and say what happened.

The asking is lth_tui.guards.stop_run, shared with the app (SIGTERM only to a proven runner of this run on
this host, a stop.request file otherwise); this module resolves the arguments and waits. It
imports no torch, so stopping is instant.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from engine.store import StoreError, read_status
from lth_tui.guards import stop_run
from lth_tui.run_ids import RunNotFound, resolve_run

POLL_SECONDS = 0.2


def wait_ended(run_dir: Path, timeout: float) -> str | None:
    """The state the run ended in, or None if it is still running after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = read_status(run_dir)["state"]
        except StoreError:
            state = "running"  # mid-rename or damaged: keep looking until the deadline
        if state not in ("running", "queued"):
            return state
        if time.monotonic() >= deadline:
            return None
        time.sleep(POLL_SECONDS)


def stop_runs(args: list[Path], runs_dir: Path, timeout: float, out: Callable[[str], None],
              err: Callable[[str], None]) -> int:
    """0 when every run is stopped (or was not running), 1 when one still runs after the
    timeout or is lost, 2 when an argument is not a run."""
    code = 0
    for arg in args:
        try:
            run_dir = resolve_run(arg, runs_dir)  # a path, an id, a unique prefix or the hash suffix
        except RunNotFound as exc:
            err(str(exc))
            code = 2
            continue
        result = stop_run(run_dir, by="lth-tui stop")
        if result.action == "not-running":
            if "damaged" in result.detail or "missing" in result.detail:
                err(f"{run_dir}: {result.detail}")
                code = 2
            else:
                out(f"{run_dir}: nothing to stop; {result.detail}")
            continue
        if result.action == "queued":
            out(f"{run_dir}: {result.detail}")
            continue
        if result.action == "lost":
            out(f"{run_dir}: lost; {result.detail}")
            code = max(code, 1)
            continue
        out(f"{run_dir}: {result.detail}")
        if timeout <= 0:
            continue
        state = wait_ended(run_dir, timeout)
        if state is None:
            out(f"{run_dir}: still running after {timeout:g} s; the stop request stays in place")
            code = max(code, 1)
        elif state == "cancelled":
            out(f"{run_dir}: cancelled after a checkpoint; resume with: lth-tui resume {run_dir}")
        else:
            out(f"{run_dir}: ended {state}")
    return code
