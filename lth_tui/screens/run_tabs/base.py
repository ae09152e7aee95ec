"""What every Run-screen tab is: a widget with its own state that draws from the view-model.

The screen knows tabs only through this interface and the registry (run_tabs/__init__.py):
it calls `update` with the parts of the view-model that changed (at most 10 times a second),
`reset` when another run (or none) is shown, and `activated` when the user switches to the
tab. A tab that reads files does it in its own worker and draws what comes back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from textual.binding import Binding
from textual.containers import Vertical

from lth_tui.viewmodel import Shown

__all__ = ["EMPTY", "PARTS", "AnalysisTab", "RunTab"]

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


class AnalysisTab(RunTab):
    """A tab that reads run-store files of its own (LMC results, masks) in a worker, when they
    changed and the tab shows. Subclasses implement `read` (start the worker for a key) and
    `draw`; their Loaded handler calls `read_done` first and draws when it says the result is
    for the run shown."""

    needs_analysis = True
    # What each subclass defines: start the worker that reads run `key`'s files (it posts the
    # tab's Loaded), and draw what was read with the view-model's part of it.
    read: Callable[[tuple[Path, int]], None]
    draw: Callable[[], None]

    def __init__(self) -> None:
        super().__init__()
        self.stale = True  # the files changed since the last read (or were never read)
        self.loading = False
        self.reads = 0  # tests wait on it

    def reset(self, shown: Shown) -> None:
        super().reset(shown)
        self.stale = True

    def update(self, shown: Shown, dirty: set[str]) -> None:
        super().update(shown, dirty)
        if shown.model is None:
            return
        if "analysis" in dirty:
            self.stale = True
        if dirty & {"analysis", "curve"}:
            self.draw()
        self.load()

    def activated(self) -> None:
        self.load()
        self.call_after_refresh(self.draw)

    def read_key(self) -> tuple[Path, int] | None:
        """(run dir, model token) of the run shown: a result read for another key is dropped."""
        model = self.shown.model
        return None if model is None else (model.run_dir, model.token)

    def load(self, force: bool = False) -> None:
        """Starts a read when the files changed and the tab shows (or `force`), one at a time."""
        key = self.read_key()
        if key is None or self.loading or not (force or (self.stale and self.is_active)):
            return
        self.stale, self.loading = False, True
        self.read(key)

    def read_done(self, key: tuple[Path, int] | None) -> bool:
        """A read finished: whether its result is for the run shown now."""
        self.loading = False
        self.reads += 1
        return key is not None and key == self.read_key()
