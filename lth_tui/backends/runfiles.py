"""What a backend writes into a run dir and how it starts a runner there, without torch.

A Ray worker runs this code on every node; importing torch there would cost seconds and
hundreds of MB per worker for nothing, since the runner child imports it anyway. So this
module reads and writes status.json through engine.store's torch-free readers and writers:
checked on reading (engine/schema.py), written to a temp file, then renamed (a reader sees the
old file or the new one; a symlink in the run dir is replaced, never followed).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from engine.layout import RunLayout
from engine.records import Status
from engine.store import StoreError, read_bytes, read_json, read_status, write_json_atomic

FINAL_STATES = ("done", "failed", "cancelled")
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def read_status_file(run_dir: Path) -> Status:
    """status.json, checked (engine.store.read_status); {} when it is missing or damaged (callers
    decide what that means)."""
    try:
        return read_status(run_dir)
    except StoreError:
        return {}


def update_status(run_dir: Path, **fields: Any) -> None:
    """Merges `fields` into status.json atomically.

    Only called while no runner writes the file (before one starts, after it ended), so the
    read-modify-write cannot lose a runner's own update.
    """
    path = RunLayout(run_dir).status
    try:  # merged as it is, like RunWriter.status: fields this version does not check are kept
        status = read_json(path)
    except StoreError:
        status = {}
    if not isinstance(status, dict):
        status = {}
    status.update(fields, updated=time.time())
    write_json_atomic(path, status)


def runner_command(run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "engine.runner", str(run_dir)]


def runner_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a runner child: this one, plus `extra`, importing this checkout's engine."""
    path = os.pathsep.join(p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def is_runner_of(pid: Any, run_dir: Path) -> bool:
    """Whether `pid` is a live process on this host running the runner of `run_dir`.

    Read from /proc/<pid>/cmdline, so a recycled pid (or the sweep that queued the run) is
    never taken for the runner.
    """
    if not isinstance(pid, int) or pid <= 1:
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"engine.runner" in argv and os.fsencode(str(run_dir)) in argv


def open_runner_log(run_dir: Path) -> Any:
    """runner.log opened for appending, never through a symlink planted in the run dir."""
    fd = os.open(RunLayout(run_dir).runner_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    return os.fdopen(fd, "ab")


def wait_for_runner_exit(run_dir: Path, timeout: float) -> bool:
    """Waits while the runner recorded in status.json still runs on this host; True once it is gone.

    A retried Ray task lands here: the worker that ran the first attempt died, its runner got
    SIGTERM and may still be writing its checkpoint, and a second runner must not start beside it.
    """
    from engine.process import lock_held

    status = read_status_file(run_dir)
    here = status.get("host") == socket.gethostname()
    deadline = time.monotonic() + timeout
    # the run lock covers any host the shared filesystem's locks reach; the pid check covers a
    # runner still importing torch, before it takes the lock
    while lock_held(run_dir) or (here and is_runner_of(status.get("pid"), run_dir)):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def mark_never_started(run_dir: Path, holder: int) -> bool:
    """A queued run whose sweep stopped before starting it ends `cancelled`, so it reads as
    resumable at once rather than as a run whose runner vanished. Only the queue's holder does this."""
    status = read_status_file(run_dir)
    if status.get("state") != "queued" or status.get("pid") != holder:
        return False
    update_status(run_dir, state="cancelled", pid=None, finished=time.time())
    return True


def stop_child(proc: Any, grace: float) -> None:
    """SIGTERM (the runner checkpoints and records `cancelled`), then wait; SIGKILL after `grace` s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while proc.poll() is None:
        try:
            time.sleep(0.1)
        except KeyboardInterrupt:  # a repeated cancel must not leave the child unwaited
            continue
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()


def wants_gpu(run_dir: Path) -> bool:
    """Whether the run's config lets it take a GPU (`auto` or `cuda`); `cpu` and `cuda:N` keep their device."""
    import tomllib

    try:
        device = tomllib.loads(read_bytes(RunLayout(run_dir).config).decode("utf-8")).get("device", "auto")
    except (StoreError, UnicodeDecodeError, ValueError):
        return False
    return device in ("auto", "cuda")


def end_state(run_dir: Path) -> str:
    """The state a finished runner left; `interrupted` when it died without recording one."""
    state = read_status_file(run_dir).get("state")
    return state if state in FINAL_STATES else "interrupted"
