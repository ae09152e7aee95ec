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
            self.task = self.progress.add_task("run", total=self.count.total, completed=self.count.done,
                                               where="starting", it="", acc="–", wr="100%")
            if event.get("resumed"):
                self.console.print(f"resuming: {event.get('rounds_done', 0)} round(s) already done")
        elif self.task is None:
            return
        elif kind == "round_start":
            trials, rounds = self.count.trials, self.count.rounds
            where = f"round {event['round']}/{rounds - 1}"
            if trials > 1:
                where = (f"{where}, {trials} trials together" if self.together
                         else f"trial {event['trial'] + 1}/{trials} {where}")
            self.progress.update(self.task, where=where, wr=f"{100 * event['weights_remaining']:.1f}%")
        elif kind == "eval":
            self.progress.update(self.task, completed=self.count.done,
                                 it=f"it {event['iteration']}/{self.count.iterations}",
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
        curve = summary.get("curve", [])
        held_out = any(p.get("test_accuracy_mean") is not None for p in curve)
        what = "at early stop" if held_out or not curve else "final (no hold-out)"
        table = Table(title=f"test accuracy {what} vs weights remaining", title_justify="left")
        for column in ("round", "weights %", "non-zero %", "acc % (mean)", "± std", "best %", "early stop",
                       "supermask %", "n"):
            table.add_column(column, justify="right")

        def cell(value: float | None, scale: float = 100.0, digits: int = 2) -> str:
            return "–" if value is None else f"{scale * value:.{digits}f}"

        for p in curve:
            key = "test_accuracy" if held_out else "test_accuracy_final"
            table.add_row(str(p["round"]), cell(p["weights_remaining"]), cell(p.get("weights_nonzero")),
                          cell(p.get(f"{key}_mean")), cell(p.get(f"{key}_std")), cell(p.get("test_accuracy_best_mean")),
                          cell(p.get("early_stop_iteration_mean"), 1.0, 0), cell(p.get("supermask_accuracy_mean")),
                          str(p["n"]))
        self.console.print(table)
