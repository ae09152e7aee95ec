"""The LMC tab's successive-round plots: barrier and distance between round r-1's and round
r's solutions against weights remaining (engine/successive.py), beside the instability curve.

The records come from the LMC tab's read (lth_tui/screens/run_tabs/lmc.py: the shown run's
successive.json files and the overlaid run's, e.g. its random-reinit control or a
random-pruning run), so this widget reads no files itself.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal

from lth_tui.components.plot import PlotSpec, PlotView, Series
from lth_tui.screens.analysis import COLORS, fit_spec, n_label
from lth_tui.stability import successive_rounds

EMPTY = "no successive-round result (analysis.successive = true, or lth-tui lmc RUN --successive)"


def _series(records: list[dict[str, Any]], figure: str, scale: float, label: str, color: str) -> list[Series]:
    rows = [row for row in successive_rounds(records) if row[figure][2]]
    if not rows:
        return []
    return [Series(f"{label} ({n_label(row[figure][2] for row in rows)})",
                   x=tuple(100 * row["weights_remaining"] for row in rows),
                   y=tuple(scale * row[figure][0] for row in rows), yerr=tuple(scale * row[figure][1] for row in rows),
                   color=color)]


def successive_barrier_plot(records: list[dict[str, Any]], overlay: list[dict[str, Any]] | None = None,
                            overlay_label: str = "overlay", overlay_color: str = COLORS[1]) -> PlotSpec:
    """Test-error barrier % of round r-1 → r against round r's weights remaining: projected and
    unprojected for the run, projected for the overlaid run."""
    series = (_series(records, "barrier", 100.0, "projected", COLORS[0])
              + _series(records, "barrier_unprojected", 100.0, "unprojected", COLORS[2])
              + _series(overlay or [], "barrier", 100.0, f"{overlay_label} projected", overlay_color))
    return PlotSpec(title="successive barrier % vs weights %", xlabel="weights remaining %", ylabel="barrier %",
                    series=tuple(series), xlog=True, xreverse=True, empty_message=EMPTY)


def successive_distance_plot(records: list[dict[str, Any]], overlay: list[dict[str, Any]] | None = None,
                             overlay_label: str = "overlay", overlay_color: str = COLORS[1]) -> PlotSpec:
    """L2 distance between round r-1's projected solution and round r's, and each round's
    distance from its rewind point, against weights remaining."""
    series = (_series(records, "l2", 1.0, "r-1 → r", COLORS[0])
              + _series(records, "rewind_distance", 1.0, "from rewind point", COLORS[2])
              + _series(overlay or [], "l2", 1.0, f"{overlay_label} r-1 → r", overlay_color))
    return PlotSpec(title="L2 distance vs weights %", xlabel="weights remaining %", ylabel="L2",
                    series=tuple(series), xlog=True, xreverse=True, empty_message=EMPTY)


class SuccessivePlots(Horizontal):
    """Two plots side by side; `show` takes the LMC tab's latest read."""

    DEFAULT_CSS = """
    SuccessivePlots { height: 1fr; min-height: 6; }
    SuccessivePlots PlotView { width: 1fr; height: 1fr; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._shown: tuple[Any, ...] = ([], None, "overlay", COLORS[1])

    def compose(self) -> ComposeResult:
        yield PlotView(id="successive-barrier-plot")
        yield PlotView(id="successive-distance-plot")

    def show(self, records: list[dict[str, Any]], overlay: list[dict[str, Any]] | None = None,
             overlay_label: str = "overlay", overlay_color: str = COLORS[1]) -> None:
        """Draws the run's successive-round records and the overlaid run's."""
        self._shown = (list(records), list(overlay or []), overlay_label, overlay_color)
        self._draw()

    def _draw(self) -> None:
        records, overlay, label, color = self._shown
        for plot_id, build in (("#successive-barrier-plot", successive_barrier_plot),
                               ("#successive-distance-plot", successive_distance_plot)):
            view = self.query_one(plot_id, PlotView)
            view.set_plot(fit_spec(build(records, overlay, label, color), view.content_size.width))

    def on_resize(self) -> None:
        self.call_after_refresh(self._draw)
