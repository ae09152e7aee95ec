"""One reader thread per followed run: tails events.jsonl and watches status.json.

The thread only reads the run store and posts messages (lth_tui.messages) to a target,
normally the app; it never touches a widget. It follows whatever is in the run dir, so a run
started by this app, by another lth-tui or by the headless `lth-tui run` looks the same.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

from engine.layout import RunLayout
from engine.process import liveness
from engine.records import Status
from engine.store import StoreError, read_config, read_events, read_status, read_summary
from lth_tui.messages import RunEvents, RunOpened, RunStatus

POLL_SECONDS = 0.2
# A fresh run dir says "running" with no pid until the child has imported torch and written
# its pid; for this long after creation that counts as starting, not as interrupted.
STARTING_GRACE_SECONDS = 120.0
STATUS_EVERY = 5  # polls between status.json reads (about once a second)
MAX_BATCH = 2000  # events per message, so a long finished run is replayed in digestible pieces


def runner_alive(status: Status | None, grace: bool = True) -> bool:
    """Whether the status names a live runner process: on this host the recorded pid and start
    time, on any host a fresh heartbeat (engine.process.liveness); a "lost" run is not live.

    With `grace`, a run dir created moments ago whose child has not written its pid yet
    counts as live (starting)."""
    if not status or status.get("state") != "running":
        return False
    if not status.get("pid") and status.get("host") in (None, socket.gethostname()):
        if not grace:
            return False
        created = status.get("created") or status.get("updated") or 0
        return time.time() - float(created) < STARTING_GRACE_SECONDS
    return liveness(status) == "alive"


class RunFollower(threading.Thread):
    """Polls one run dir every POLL_SECONDS and posts what is new to `target`."""

    def __init__(self, run_dir: Path, target: Any, token: int = 0, poll: float = POLL_SECONDS) -> None:
        super().__init__(name=f"follow {Path(run_dir).name}", daemon=True)
        self.run_dir = Path(run_dir)
        self.target = target
        self.token = token  # echoed in every message, so the receiver can drop a stale reader's
        self.poll = poll
        self.offset = 0
        self._stop_event = threading.Event()
        self._last_status: tuple[Any, ...] | None = None

    def stop(self) -> None:
        self._stop_event.set()

    @property
    def stopped(self) -> bool:
        return self._stop_event.is_set()

    def _post(self, message: Any) -> None:
        if not self.stopped:
            self.target.post_message(message)

    def run(self) -> None:
        try:
            self._open()
            ticks = 0
            while not self.stopped:
                self._read_events()
                if ticks % STATUS_EVERY == 0:
                    self._read_status()
                ticks += 1
                self._stop_event.wait(self.poll)
        except Exception as exc:  # a reader must never die silently: tell the app
            self._post(RunStatus(self.run_dir, None, False, error=f"reader stopped: {type(exc).__name__}: {exc}",
                                 token=self.token))

    def _open(self) -> None:
        config = status = summary = None
        errors = []
        try:
            config = read_config(self.run_dir)
        except StoreError as exc:
            errors.append(str(exc))
        try:
            status = read_status(self.run_dir)
        except StoreError as exc:
            errors.append(str(exc))
        if RunLayout(self.run_dir).summary.exists():
            try:
                summary = read_summary(self.run_dir)
            except StoreError as exc:
                errors.append(str(exc))
        self._post(RunOpened(self.run_dir, config, status, summary, "; ".join(errors), token=self.token))

    def _read_events(self) -> None:
        while not self.stopped:
            events, self.offset = read_events(self.run_dir, self.offset)
            if not events:
                return
            for start in range(0, len(events), MAX_BATCH):
                self._post(RunEvents(self.run_dir, events[start:start + MAX_BATCH], token=self.token))
            if len(events) < MAX_BATCH:
                return

    def _read_status(self) -> None:
        try:
            status = read_status(self.run_dir)
            error = ""
        except StoreError as exc:
            status, error = None, str(exc)
        alive = runner_alive(status)
        key = (None if status is None else status.get("state"), None if status is None else status.get("pid"),
               None if status is None else status.get("rounds_done"), alive, error)
        if key != self._last_status:
            self._last_status = key
            self._post(RunStatus(self.run_dir, status, alive, error, token=self.token))
