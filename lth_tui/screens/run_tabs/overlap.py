"""Tab 8, Overlap: Jaccard overlap of the run's masks between consecutive rounds of a trial and
between the trials of a round (engine.overlap.run_overlaps), against chance. The masks are read
in this tab's worker (group "analysis") when they changed and the tab shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.message import Message
from textual.widgets import DataTable, Static

from lth_tui.screens.analysis import overlap_table
from lth_tui.screens.run_tabs.base import AnalysisTab
from lth_tui.viewmodel import Shown

__all__ = ["OverlapTab"]

HELP = ("Jaccard |A∩B| / |A∪B| of the kept weights, all prunable layers pooled. chance: the overlap of random masks "
        "of the same densities, pq / (p + q − pq). IMP masks of consecutive rounds are nested, so their overlap is "
        "the density ratio.")


class OverlapTab(AnalysisTab):
    tab_id = "tab-overlap"
    title = "Overlap"
    key = "8"
    help = "Overlap tab: Jaccard overlap of the masks between rounds and between trials"
    command = ("Show mask overlap", "Jaccard overlap of the followed run's masks between rounds and trials")

    @dataclass
    class Loaded(Message):
        """run_overlaps of run `key` (run dir, model token); `error` says why there is none."""

        key: tuple[Path, int]
        overlap: dict[str, Any] | None
        error: str

    def __init__(self) -> None:
        super().__init__()
        self.overlap: dict[str, Any] | None = None
        self.error = ""
        self.table_shown: Any = None

    def compose(self) -> ComposeResult:
        yield Static("", id="overlap-title", classes="view-title")
        yield DataTable(id="overlap-table", zebra_stripes=True, cursor_type="row")
        yield Static(Text(HELP, style="dim"), id="overlap-help")

    def reset(self, shown: Shown) -> None:
        super().reset(shown)
        self.overlap, self.error, self.table_shown = None, "", None
        self.query_one(DataTable).clear(columns=True)

    @work(thread=True, group="analysis", exit_on_error=False)
    def read(self, key: tuple[Path, int]) -> None:
        try:
            from engine.overlap import run_overlaps

            overlap, error = run_overlaps(key[0]), ""
        except Exception as exc:  # noqa: BLE001 - shown in the view, never a crash
            overlap, error = None, f"masks: {type(exc).__name__}: {exc}"
        self.post_message(self.Loaded(key, overlap, error))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        message.stop()
        if self.read_done(message.key):
            self.overlap, self.error = message.overlap, message.error
            self.draw()
        self.load()

    def draw(self) -> None:
        model = self.shown.model
        if model is None:
            return
        weights = {p["round"]: p["weights_remaining"] for p in model.curve()}
        columns, rows = overlap_table(self.overlap, weights)
        title = self.query_one("#overlap-title", Static)
        trials = len((self.overlap or {}).get("consecutive") or {})
        if self.error:
            title.update(Text(self.error, style="red"))
        elif self.overlap is None:
            title.update(Text("reading masks…" if self.loading or self.stale else "no masks stored", style="dim"))
        else:
            pairs = trials * (trials - 1) // 2
            what = ("t1" if trials == 1 else "t1…" if trials > 4 else " ".join(f"t{t + 1}" for t in range(trials)))
            title.update(Text.assemble(("Mask overlap ", "bold"), (f"{what}: vs the previous round", ""),
                                       (f" · across: mean of {pairs} trial pair{'s' if pairs != 1 else ''}"
                                        if trials > 1 else "", "")))
        shown = (tuple(columns), tuple(tuple(str(c) for c in row) for row in rows))
        if shown == self.table_shown:
            return
        self.table_shown = shown
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear(columns=True)
        for label, key in columns:
            table.add_column(label, key=key)
        for row in rows:
            table.add_row(*row, key=str(row[0]))
        if rows and cursor is not None and 0 < cursor < len(rows):
            table.move_cursor(row=cursor, animate=False)
