"""The headless run's progress bar, fed by the runner's events (rich, never textual)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from lth_tui.completion import Completion


class ProgressView:
    """One bar over all iterations of all rounds and trials, with the latest accuracy."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.fields[where]}"), BarColumn(), TextColumn("{task.fields[it]}"),
            TextColumn("acc {task.fields[acc]}"), TextColumn("weights {task.fields[wr]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=self.console, disable=not enabled, transient=False,
        )
        self.task: Any = None
        self.count = Completion()
        self.together = False  # trials trained as one batched model: their rounds run side by side

    def __enter__(self) -> ProgressView:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        self.count.feed(event)
        if kind == "run_start":
            self.together = bool(event.get("parallel_trials"))
            self.task = self.progress.add_task("run", total=self.count.total, completed=self.count.done, where="starting",
                                               it="", acc="–", wr="100%")
            if event.get("resumed"):
                self.console.print(f"resuming: {event.get('rounds_done', 0)} round(s) already done")
        elif self.task is None:
            return
        elif kind == "round_start":
            trials, rounds = self.count.trials, self.count.rounds
            where = f"round {event['round']}/{rounds - 1}"
            if trials > 1:
                where = f"{where}, {trials} trials together" if self.together else f"trial {event['trial'] + 1}/{trials} {where}"
            self.progress.update(self.task, where=where, wr=f"{100 * event['weights_remaining']:.1f}%")
        elif kind == "eval":
            self.progress.update(self.task, completed=self.count.done, it=f"it {event['iteration']}/{self.count.iterations}",
                                 acc=f"{100 * event['test_accuracy']:.1f}%")
        elif kind == "round_end":
            self.progress.update(self.task, completed=self.count.done)
        elif kind == "warning":
            self.console.print(f"[yellow]warning:[/yellow] {event.get('message')}")
        elif kind == "error":
            self.console.print(f"[red]run failed:[/red] {event.get('message')}")

    def print_summary(self, run_dir: Path) -> None:
        """The sparsity curve as a small table once the run ends."""
        from engine.store import StoreError, read_summary

        try:
            summary = read_summary(run_dir)
        except StoreError:
            return
        table = Table(title="test accuracy at early stop vs weights remaining", title_justify="left")
        for column in ("round", "weights %", "acc % (mean)", "± std", "early stop", "supermask %", "n"):
            table.add_column(column, justify="right")
        for p in summary.get("curve", []):
            table.add_row(str(p["round"]), f"{100 * p['weights_remaining']:.2f}", f"{100 * p['test_accuracy_mean']:.2f}",
                          f"{100 * p['test_accuracy_std']:.2f}", f"{p['early_stop_iteration_mean']:.0f}",
                          f"{100 * p['supermask_accuracy_mean']:.2f}", str(p["n"]))
        self.console.print(table)


def run_parallel(run_dirs: list[Path], jobs: int, stop: Any, quiet: bool = False) -> list[str]:
    """Runs the run dirs as child runners, `jobs` at a time, one bar each from their events.

    Children get an even share of the CPU threads so N parallel CPU runs do not oversubscribe.
    A stop request (Ctrl-C) is passed on as SIGTERM: each child checkpoints and is resumable.
    """
    import os
    import signal
    import subprocess
    import sys
    import time

    from engine.store import StoreError, open_log, read_events, read_status

    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // jobs))}
    pending = list(run_dirs)
    active: dict[Path, tuple[subprocess.Popen, Any, int]] = {}
    states: dict[Path, str] = {}
    counts: dict[Path, Completion] = {}
    console = Console(stderr=True)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[note]}"),
                        TimeRemainingColumn(), console=console, disable=quiet)
    stopping = False
    with progress:
        while pending or active:
            if stop() and not stopping:
                stopping = True
                pending.clear()
                for proc, _, _ in active.values():
                    proc.send_signal(signal.SIGTERM)
            while pending and len(active) < jobs:
                run_dir = pending.pop(0)
                with open_log(run_dir / "runner.log") as log:
                    proc = subprocess.Popen([sys.executable, "-m", "engine.runner", str(run_dir)], stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT, env=env)
                task = progress.add_task(run_dir.name, total=None, note="starting")
                counts[run_dir] = Completion()
                active[run_dir] = (proc, task, 0)
            for run_dir, (proc, task, offset) in list(active.items()):
                events, offset = read_events(run_dir, offset)
                active[run_dir] = (proc, task, offset)
                count = counts[run_dir]
                for event in events:
                    if count.feed(event):
                        progress.update(task, total=count.total, completed=count.done)
                    if event["event"] == "eval":
                        progress.update(task, note=f"r{event['round']} acc {100 * event['test_accuracy']:.1f}%")
                if proc.poll() is not None:
                    try:
                        states[run_dir] = read_status(run_dir)["state"]
                    except StoreError:
                        states[run_dir] = "failed"
                    progress.update(task, note=states[run_dir])
                    del active[run_dir]
            time.sleep(0.2)
    return [states.get(d, "cancelled") for d in run_dirs]
