"""The headless view of a sweep on any backend: one progress bar per started run, fed by its events.jsonl.

The bars read the run dirs (through the shared filesystem for a cluster), never the backend,
so a run on another node looks the same as one on this machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from lth_tui.backends import Backend
from lth_tui.backends.runfiles import read_status_file
from lth_tui.completion import Completion

POLL_SECONDS = 0.2


def follow(backend: Backend, run_dirs: Sequence[Path], stop: Callable[[], bool], quiet: bool = False) -> list[str]:
    """Submits `run_dirs` and shows them until all have ended; returns their end states in order.

    When `stop()` turns true (Ctrl-C), the backend cancels: runs not started end `cancelled`,
    running ones checkpoint and end `cancelled`; this returns once they have.
    """
    from engine.store import read_events

    run_dirs = [Path(d) for d in run_dirs]
    backend.submit(run_dirs)
    console = Console(stderr=True)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[note]}"),
                        TimeRemainingColumn(), console=console, disable=quiet)
    bars: dict[Path, Any] = {}
    offsets: dict[Path, int] = {}
    counts: dict[Path, Completion] = {}
    ended: set[Path] = set()
    cancelling = False
    states: dict[Path, str] = {}
    with progress:
        while True:
            if stop() and not cancelling:
                cancelling = True
                backend.cancel()
            states = backend.poll()
            for run_dir in run_dirs:
                state = states.get(run_dir, "queued")
                if run_dir in ended:
                    continue
                if run_dir not in bars:
                    if state != "running":  # still waiting, or cancelled before it started: no bar
                        if state != "queued":
                            ended.add(run_dir)
                        continue
                    bars[run_dir] = progress.add_task(run_dir.name, total=None, note=_where(run_dir, backend.name))
                    offsets[run_dir], counts[run_dir] = 0, Completion()
                events, offsets[run_dir] = read_events(run_dir, offsets[run_dir])
                for event in events:
                    if counts[run_dir].feed(event):
                        progress.update(bars[run_dir], total=counts[run_dir].total, completed=counts[run_dir].done)
                    if event.get("event") == "eval":
                        progress.update(bars[run_dir],
                                        note=f"r{event['round']} acc {100 * event['test_accuracy']:.1f}%")
                if state not in ("queued", "running"):
                    progress.update(bars[run_dir], note=state)
                    ended.add(run_dir)
            if all(states.get(d) not in (None, "queued", "running") for d in run_dirs):
                break
            time.sleep(POLL_SECONDS)
    backend.close()
    for run_dir, error in backend.errors.items():
        console.print(f"[red]{run_dir.name}:[/red] {error}")
    unstarted = sum(1 for d in run_dirs if d not in bars)
    if unstarted and cancelling and not quiet:
        console.print(f"{unstarted} run(s) had not started: cancelled, `lth-tui resume RUN_DIR` runs one")
    return [states[d] for d in run_dirs]


def _where(run_dir: Path, backend: str) -> str:
    """"starting", with the node for runs placed by a cluster."""
    node = read_status_file(run_dir).get("node")
    return f"starting on {node}" if backend != "local" and node else "starting"
