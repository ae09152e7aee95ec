"""Tab 4, Layers: weights remaining per layer and round (mean over trials), with the non-zero
density beside it where the two differ (lth_tui/screens/density_view.py), and all weights.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.widgets import DataTable

from engine.records import mean_std
from lth_tui.screens.density_view import layer_cell
from lth_tui.screens.run_tabs.base import RunTab
from lth_tui.viewmodel import Shown

__all__ = ["LayersTab"]


def _mean(values: list[float]) -> float:
    mean = mean_std(values).mean
    return float("nan") if mean is None else mean


class LayersTab(RunTab):
    tab_id = "tab-layers"
    title = "Layers"
    key = "4"
    help = "Layers"

    def __init__(self) -> None:
        super().__init__()
        self.columns: tuple[Any, ...] = ()  # (rounds, layer names) the table was built for

    def compose(self) -> ComposeResult:
        yield DataTable(id="layer-table", zebra_stripes=True, cursor_type="row")

    def reset(self, shown: Shown) -> None:
        super().reset(shown)
        self.columns = ()
        if shown.model is None:
            self.query_one(DataTable).clear(columns=True)

    def update(self, shown: Shown, dirty: set[str]) -> None:
        super().update(shown, dirty)
        model = shown.model
        if model is None or "layers" not in dirty:
            return
        table = self.query_one(DataTable)
        rounds = sorted({r for (_, r) in model.layers})
        names = list(model.layer_names)
        shape = (tuple(rounds), tuple(names))
        if shape != self.columns:
            table.clear(columns=True)
            table.add_column("layer", key="layer")
            for r in rounds:
                table.add_column(f"r{r} %", key=f"r{r}")
            for name in names + ["all weights"]:
                table.add_row(name, *([""] * len(rounds)), key=name)
            self.columns = shape
        for r in rounds:
            for name in names:
                values = [v[name] for (t, rr), v in model.layers.items() if rr == r and name in v]
                table.update_cell(name, f"r{r}", layer_cell(model, r, name, _mean(values)))
            overall = [w for (t, rr), w in model.weights.items() if rr == r]
            table.update_cell("all weights", f"r{r}", layer_cell(model, r, None, _mean(overall)))
