"""Who is running a run: liveness, heartbeats, the run lock and stop requests.

A run dir may come from another machine or another person, so its status.json is a claim,
not a proof. A pid is only ever signalled when it is this host's process, alive, above 1,
its command line names this run dir and its start time (/proc/<pid>/stat field 22) equals
the one the runner recorded; anything else gets a `stop.request` file the runner polls,
which is also how a run on another machine is stopped. A heartbeat refreshed every few
seconds makes a run whose machine went away show as "lost" instead of running forever.

Pure Python (no torch), so `lth-tui runs`, `stop` and the app's lists stay instant.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.layout import STOP_REQUEST, RunLayout

HEARTBEAT_SECONDS = 5.0   # how often a runner refreshes its heartbeat (the contract says <= 10 s)
LOST_AFTER_SECONDS = 60.0  # a running/queued run whose heartbeat is older than this is "lost"
PID_MAX = 2 ** 22  # Linux's largest pid_max; anything above is not a pid


class RunLocked(RuntimeError):
    """Another runner holds the run's lock; the message names it."""


def is_pid(value: Any) -> bool:
    """An int that can be a process of ours: never 0, 1 (init) or a negative (a process group)."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 < value <= PID_MAX


def pid_start(pid: int) -> int | None:
    """The process start time in clock ticks since boot (/proc/<pid>/stat field 22), or None."""
    if not is_pid(pid):
        return None
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ')': split after the last one.
    fields = text[text.rfind(")") + 2:].split()
    try:
        return int(fields[19])  # field 22 overall; fields[0] is field 3
    except (IndexError, ValueError):
        return None


def pid_alive(pid: Any) -> bool:
    """Whether a process with this pid exists on this machine (pids <= 1 never count)."""
    if not is_pid(pid):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _recorded_start(status: dict[str, Any]) -> int | None:
    beat = status.get("heartbeat")
    if isinstance(beat, dict) and beat.get("pid") == status.get("pid") and isinstance(beat.get("pid_start"), int):
        return beat["pid_start"]
    start = status.get("runner_start")
    return start if isinstance(start, int) and not isinstance(start, bool) else None


def local_pid_alive(status: dict[str, Any]) -> bool:
    """The status's pid is alive here and, when a start time was recorded, is the same process."""
    pid = status.get("pid")
    if not pid_alive(pid):
        return False
    recorded = _recorded_start(status)
    return recorded is None or pid_start(pid) == recorded


def on_this_host(status: dict[str, Any]) -> bool:
    return status.get("host") in (None, socket.gethostname())


def heartbeat_age(status: dict[str, Any], now: float | None = None) -> float | None:
    """Seconds since the last heartbeat, or None when the status has none."""
    beat = status.get("heartbeat")
    if not isinstance(beat, dict):
        return None
    when = beat.get("time")
    if not isinstance(when, (int, float)) or isinstance(when, bool) or not math.isfinite(when):
        return None
    return max(0.0, (time.time() if now is None else now) - when)


def liveness(status: dict[str, Any], now: float | None = None) -> str:
    """"alive", "dead" (this host, the process is gone or is another one) or "lost" (stale heartbeat).

    Only meaningful for running and queued runs. A run on another host without a heartbeat
    (an older lth-tui) cannot be checked and counts as alive.
    """
    if on_this_host(status) and not local_pid_alive(status):
        return "dead"
    age = heartbeat_age(status, now)
    if age is not None and age > LOST_AFTER_SECONDS:
        return "lost"
    return "alive"


def shown_state(status: dict[str, Any], alive: bool | None = None) -> tuple[str, str]:
    """(state, note) as lists and screens show a status: the stored state, or "interrupted"
    (its runner, or a queued run's sweep, is gone from this host) or "lost" (stale heartbeat).

    `alive` is a caller's own verdict on a running run's runner (the app's followers give a
    run that is still starting a grace period); queued runs are judged by their sweep's pid.
    """
    state = status.get("state", "")
    if state not in ("running", "queued"):
        return state, ""
    live = liveness(status)
    if live == "lost":
        return "lost", f"no heartbeat from {status.get('host') or '?'} for over a minute"
    if state == "running" and alive is not None:
        return ("running" if alive else "interrupted"), ""
    return ("interrupted" if live == "dead" else state), ""


def cmdline_names(pid: int, run_dir: Path) -> bool:
    """Whether /proc/<pid>/cmdline has an argument that is this run dir (relative args resolved
    against the process's own working directory)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    target = os.path.realpath(run_dir)
    for raw in args:
        if not raw:
            continue
        arg = os.fsdecode(raw)
        if os.path.realpath(os.path.join(cwd, arg)) == target:
            return True
    return False


def proven_runner(status: dict[str, Any], run_dir: Path) -> int | None:
    """The pid to signal, only when it is provably this run's runner on this host; else None."""
    pid = status.get("pid")
    if status.get("host") != socket.gethostname() or not is_pid(pid) or not pid_alive(pid):
        return None
    recorded = _recorded_start(status)
    if recorded is None or pid_start(pid) != recorded:
        return None
    if not cmdline_names(pid, run_dir):
        return None
    return pid


def write_stop_request(run_dir: Path, by: str = "lth-tui") -> Path:
    """stop.request in the run dir; never through a symlink planted there."""
    path = RunLayout(run_dir).stop_request
    payload = json.dumps({"time": time.time(), "host": socket.gethostname(), "by": by}) + "\n"
    tmp = path.with_name(f".{STOP_REQUEST}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, payload.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)  # replaces a planted symlink itself, never its target
    return path


def stop_requested(run_dir: Path) -> bool:
    return os.path.lexists(RunLayout(run_dir).stop_request)


def clear_stop_request(run_dir: Path) -> None:
    try:
        os.unlink(RunLayout(run_dir).stop_request)
    except FileNotFoundError:
        pass


@dataclass
class StopResult:
    """What `request_stop` did: "signalled" (SIGTERM to the proven runner, plus the request
    file), "requested" (the file only: the runner will see it), "lost" (the file, for a runner
    whose heartbeat stopped), "queued" (the file: its sweep skips it) or "not-running" (nothing written)."""

    action: str
    detail: str


def request_stop(run_dir: Path | str, by: str = "lth-tui") -> StopResult:
    """Asks a run to checkpoint and end cancelled; it stays resumable.

    Always writes stop.request (the runner polls it at every eval, heartbeat and round);
    also sends SIGTERM when the pid is proven to be this run's runner here.
    """
    from engine.schema import SchemaError, check_status

    run_dir = Path(run_dir)
    try:
        fd = os.open(RunLayout(run_dir).status, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as fh:
            status = check_status(json.loads(fh.read(2 ** 20).decode("utf-8")))
    except FileNotFoundError:
        return StopResult("not-running", "status.json is missing")
    except (OSError, ValueError, RecursionError, SchemaError) as exc:  # a symlink (ELOOP), garbage, wrong types
        return StopResult("not-running", f"status.json is damaged: {str(exc)[:200]}")
    if status["state"] not in ("running", "queued"):
        return StopResult("not-running", f"it is {status['state']}")
    alive = liveness(status)
    if alive == "dead":
        return StopResult("not-running", "its runner is gone (interrupted)")
    write_stop_request(run_dir, by)
    if alive == "lost":
        age = heartbeat_age(status) or 0.0
        return StopResult("lost", f"no heartbeat from {status.get('host') or '?'} for {age:.0f} s; stop.request "
                                  "written for when its runner comes back")
    pid = proven_runner(status, run_dir) if status["state"] == "running" else None
    if pid is not None:
        try:
            os.kill(pid, signal.SIGTERM)
            return StopResult("signalled", f"SIGTERM sent to runner pid {pid}")
        except OSError:
            pass
    where = status.get("host") or "?"
    if status["state"] == "queued":
        return StopResult("queued", "stop.request written; its sweep will skip it")
    return StopResult("requested", f"stop.request written; the runner (host {where}) stops at its next eval")


class RunLock:
    """run.lock held with flock(LOCK_EX | LOCK_NB) for a runner's whole life.

    The file says who holds it (pid, host, time) so a refused second runner can name it. The
    lock goes with the process: a killed runner frees it at once, no stale lock files.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = RunLayout(run_dir).lock
        self.fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise RunLocked(f"{self.path} is a symlink; refusing to use it as the run lock") from None
            raise RunLocked(f"cannot open {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = holder_text(self.path)
            os.close(fd)
            raise RunLocked(f"{self.path.parent.name} is already being run by {holder}; "
                            "stop it first (lth-tui stop) or wait for it") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}).encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def holder_text(lock_path: Path) -> str:
    """"pid N on HOST" from a lock file, as far as it can be read."""
    try:
        data = json.loads(Path(lock_path).read_text(encoding="utf-8")[:4096])
        pid, host = data.get("pid"), data.get("host")
        if is_pid(pid) and isinstance(host, str):
            return f"pid {pid} on {host[:100]}"
    except (OSError, ValueError, AttributeError):
        pass
    return "another runner"


def lock_held(run_dir: Path) -> str | None:
    """The holder's description when another process holds the run lock now, else None."""
    path = RunLayout(run_dir).lock
    if not path.is_file() or path.is_symlink():
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return holder_text(path)
    finally:
        os.close(fd)  # releases the probe lock if it was taken
    return None


def heartbeat_fields() -> dict[str, Any]:
    """The `heartbeat` object of status.json for this process."""
    pid = os.getpid()
    return {"time": time.time(), "host": socket.gethostname(), "pid": pid, "pid_start": pid_start(pid)}


class Heartbeat(threading.Thread):
    """Refreshes status.json's heartbeat every HEARTBEAT_SECONDS and polls stop.request.

    `write` applies fields to status.json (the runner's serialised writer); `on_stop` is called
    once when a stop request appears.
    """

    def __init__(self, run_dir: Path, write: Callable[..., None], on_stop: Callable[[], None],
                 every: float = HEARTBEAT_SECONDS) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.run_dir, self.write, self.on_stop, self.every = Path(run_dir), write, on_stop, every
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.every):
            try:
                self.write(heartbeat=heartbeat_fields())
            except OSError:
                pass  # a full disk or a vanished dir must not kill the run from this thread
            if stop_requested(self.run_dir):
                self.on_stop()

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=5)
