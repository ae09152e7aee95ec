"""Tab 1, Sparsity: test accuracy against weights remaining, mean ± std over trials, with the
overlaid run, the non-zero-density curve when it differs, and the live point of the round in
progress. A mask-training run shows the accuracy of its expected (and a sampled) mask per
training segment instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult

from lth_tui.components.plot import PlotSpec, PlotView, Series
from lth_tui.screens.density_view import accuracy_kind, nonzero_series
from lth_tui.screens.run_tabs.base import RunTab
from lth_tui.viewmodel import EXTRA_COLORS, MAIN_COLOR, OVERLAY_COLOR, RunModel, Shown, curve_series

__all__ = ["SparsityTab", "imp_curve_spec", "segment_axis", "segment_spec"]


def imp_curve_spec(shown: Shown, name: str, ylabel: str, title: str) -> PlotSpec:
    """An IMP run's curve of figure `name` against weights remaining (log, reversed), the
    overlaid run's beside it; on the accuracy curve the live point of the round in progress."""
    model = shown.model
    assert model is not None
    series = [s for s in (curve_series(model, name, MAIN_COLOR),
                          nonzero_series(model, name, curve_series, EXTRA_COLORS[1])) if s is not None]
    if shown.overlay is not None:
        other = curve_series(shown.overlay, name, OVERLAY_COLOR)
        if other is not None:
            series.append(other)
    live = model.live_point()
    if live is not None and name == "headline":
        series.append(Series(f"{model.label().split(' ')[0]} round {live[0]} so far", x=(live[1],), y=(live[2],),
                             color=MAIN_COLOR, marker="●"))
    waiting = "waiting for the first round to finish" if model.state == "running" else "no finished round"
    return PlotSpec(title=title, xlabel="weights remaining %", ylabel=ylabel, series=tuple(series), xlog=True,
                    xreverse=True, ylim=None, empty_message=waiting, xmax=100.0)


def segment_axis(model: RunModel) -> tuple[str, str]:
    """(x figure, x label) of a mask-training run: the iteration its segments end at, else the round."""
    if any(p["segment_end"] is not None for p in model.curve()):
        return "segment_end", "iteration (segment end)"
    return "round", "round"


def segment_spec(shown: Shown, figures: Sequence[tuple[str, str, str | None]], overlay: tuple[str, str | None],
                 title: str, ylabel: str) -> PlotSpec:
    """A mask-training run's `figures` (name, color, label) per training segment, and the overlaid
    run's `overlay` figure (name, label) beside them when it trains masks too."""
    model = shown.model
    assert model is not None
    x, xlabel = segment_axis(model)
    series = [curve_series(model, name, color, label, x=x) for name, color, label in figures]
    if shown.overlay is not None and shown.overlay.mask_training:
        series.append(curve_series(shown.overlay, overlay[0], OVERLAY_COLOR, overlay[1], x=x))
    waiting = "waiting for the first segment to finish" if model.state == "running" else "no finished round"
    return PlotSpec(title=title, xlabel=xlabel, ylabel=ylabel, series=tuple(s for s in series if s),
                    empty_message=waiting)


class SparsityTab(RunTab):
    tab_id = "tab-sparsity"
    title = "Sparsity"
    key = "1"
    help = "Sparsity"

    def compose(self) -> ComposeResult:
        yield PlotView(id="sparsity-plot")

    def update(self, shown: Shown, dirty: set[str]) -> None:
        super().update(shown, dirty)
        model = shown.model
        if model is None or "curve" not in dirty:
            return
        plot = self.query_one(PlotView)
        if not model.mask_training:
            plot.set_plot(imp_curve_spec(shown, "headline", "acc %",
                                         f"Test accuracy {accuracy_kind(model)} (%) vs weights remaining (%)"))
            return
        sampled = model.experiment == "supermask"  # edge-popup's top-k mask is not sampled: the two are one
        figures = [("expected_mask_accuracy", MAIN_COLOR, f"{model.label()} expected mask" if sampled else None)]
        if sampled:
            figures.append(("sampled_mask_accuracy", EXTRA_COLORS[0], "sampled mask"))
        overlay = ("expected_mask_accuracy", f"{shown.overlay.label()} expected" if shown.overlay else None)
        plot.set_plot(segment_spec(
            shown, figures, overlay,
            (f"{model.experiment}: test accuracy (%) of the expected and a sampled mask" if sampled
             else f"{model.experiment}: test accuracy (%) of the learned mask"), "acc %"))


