"""What every Run-screen tab is: a widget with its own state that draws from the view-model.

The screen knows tabs only through this interface and the registry (run_tabs/__init__.py):
it calls `update` with the parts of the view-model that changed (at most 10 times a second),
`reset` when another run (or none) is shown, and `activated` when the user switches to the
tab. A tab that reads files does it in its own worker and draws what comes back.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.binding import Binding
from textual.containers import Vertical

from lth_tui.viewmodel import Shown

__all__ = ["EMPTY", "PARTS", "RunTab"]

# The parts of the view-model a change can touch (RunModel.open / apply / set_status return them).
PARTS = frozenset({"progress", "curve", "layers", "masks", "train", "log", "analysis"})
EMPTY = "no run open: F2 Setup to start one, F4 Runs to open one"


class RunTab(Vertical):
    """One tab of the Run screen. Subclasses set the class attributes the registry reads."""

    tab_id: ClassVar[str]  # the TabPane's id, how every other module names the tab
    title: ClassVar[str]  # the tab's label after its key, e.g. "Sparsity"
    key: ClassVar[str]  # the number key that shows it (a priority binding of the Run screen)
    help: ClassVar[str]  # what the key does, for the help screen (F1) and the binding's tooltip
    needs_analysis: ClassVar[bool] = False  # reads LMC / mask files of its own when shown
    command: ClassVar[tuple[str, str] | None] = None  # (name, help) of a command-palette entry, if any
    screen_bindings: ClassVar[list[Binding]] = []  # priority keys of the Run screen while this tab shows

    def __init__(self) -> None:
        super().__init__(id=self.tab_id.replace("tab-", "", 1) + "-tab")
        self.shown = Shown()

    @classmethod
    def label(cls) -> str:
        return f"{cls.key} {cls.title}"

    @classmethod
    def binding_id(cls) -> str:
        return "run." + cls.tab_id.replace("-", "_")

    @property
    def is_active(self) -> bool:
        """Whether this tab is the one shown."""
        return bool(self.screen.query_one("#run-tabs").active == self.tab_id) if self.is_mounted else False

    def reset(self, shown: Shown) -> None:
        """Another run (or none) is shown: forget the per-run state; with none, every plot of the
        tab says how to open one."""
        self.shown = shown
        if shown.model is None:
            from lth_tui.components.plot import PlotSpec, PlotView

            for plot in self.query(PlotView):
                plot.set_plot(PlotSpec(empty_message=EMPTY))

    def update(self, shown: Shown, dirty: set[str]) -> None:
        """Redraws what depends on the `dirty` parts of the view-model."""
        self.shown = shown

    def activated(self) -> None:
        """The user switched to this tab."""

    def round_step(self, step: int) -> bool:
        """[ or ] pressed while this tab shows; False leaves it to the screen (the training curves)."""
        return False

    def resized(self) -> None:
        """The screen changed size: plots fitted to their widths redraw."""

    def tab_action(self, action: str, *args: Any) -> None:
        """One of `screen_bindings` pressed while this tab shows."""
