"""Tab 2, Early stop: the early-stop iteration against weights remaining. A mask-training run
has no early stopping: the tab is "Density" there, the learned mask's weights remaining per
training segment.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import TabbedContent

from lth_tui.components.plot import PlotView
from lth_tui.screens.run_tabs.base import RunTab
from lth_tui.screens.run_tabs.sparsity import imp_curve_spec, segment_spec
from lth_tui.viewmodel import MAIN_COLOR, Shown

__all__ = ["EarlyStopTab"]


class EarlyStopTab(RunTab):
    tab_id = "tab-stop"
    title = "Early stop"
    key = "2"
    help = "Early stop"

    def compose(self) -> ComposeResult:
        yield PlotView(id="stop-plot")

    def update(self, shown: Shown, dirty: set[str]) -> None:
        super().update(shown, dirty)
        model = shown.model
        if model is None or "curve" not in dirty:
            return
        tab = self.screen.query_one("#run-tabs", TabbedContent).get_tab(self.tab_id)
        label = f"{self.key} Density" if model.mask_training else self.label()
        if tab.label_text != label:
            tab.label = label
        plot = self.query_one(PlotView)
        if not model.mask_training:
            plot.set_plot(imp_curve_spec(shown, "early_stop_iteration", "iteration",
                                         "Early-stop iteration vs weights remaining (%)"))
            return
        plot.set_plot(segment_spec(shown, [("weights_remaining", MAIN_COLOR, None)], ("weights_remaining", None),
                                   "Weights remaining (%) in the learned (expected) mask", "weights %"))
