"""Tab 6, Log: the run's events as lines (started, rounds, evaluations, warnings, errors, LMC),
written as the view-model makes them; only the main run's lines are kept."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import RichLog

from lth_tui.screens.run_tabs.base import RunTab
from lth_tui.viewmodel import Shown

__all__ = ["LogTab"]

MAX_LINES = 3000


class LogTab(RunTab):
    tab_id = "tab-log"
    title = "Log"
    key = "6"
    help = "Log"

    def compose(self) -> ComposeResult:
        yield RichLog(id="run-log", max_lines=MAX_LINES, wrap=True, markup=False, highlight=False)

    def reset(self, shown: Shown) -> None:
        super().reset(shown)
        self.query_one(RichLog).clear()

    def update(self, shown: Shown, dirty: set[str]) -> None:
        super().update(shown, dirty)
        model = shown.model
        if model is None or "log" not in dirty or not model.log:
            return
        log = self.query_one(RichLog)
        lines, model.log = model.log[-MAX_LINES:], []
        for line in lines:
            log.write(line)
