"""Every message the app passes between threads, screens and the app, in one place.

The reader threads (lth_tui.follower) never touch a widget: they post these messages to the
app, whose handlers run on the UI thread and hand the data to the screens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.message import Message


class RunOpened(Message):
    """A follower's first look at a run dir: its config, status and summary (any may be missing)."""

    def __init__(self, run_dir: Path, config: Any, status: dict[str, Any] | None, summary: dict[str, Any] | None,
                 error: str = "", token: int = 0) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.token = token
        self.config = config
        self.status = status
        self.summary = summary
        self.error = error


class RunEvents(Message):
    """A batch of new lines of a run's events.jsonl, in file order."""

    def __init__(self, run_dir: Path, events: list[dict[str, Any]], token: int = 0) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.token = token
        self.events = events


class RunStatus(Message):
    """status.json changed, or the runner process came or went (`alive`)."""

    def __init__(self, run_dir: Path, status: dict[str, Any] | None, alive: bool, error: str = "",
                 token: int = 0) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.token = token
        self.status = status
        self.alive = alive
        self.error = error
