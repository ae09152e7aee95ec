"""The footer every screen shows, with the way to the other screens first.

Textual lists the focused widget's and the screen's keys before the app's, so at 80 columns
F1-F4 (and Quit) were the ones cut off; here they lead, then the screen's priority keys (the
Run screen's tab keys and the keys of the tab shown), and the keys are drawn compactly.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer

__all__ = ["LthFooter"]

LEADING = ("f1", "f2", "f3", "f4", "ctrl+q")


class LthFooter(Footer):
    """A compact Footer whose F1-F4 and ^q come first, then the priority keys."""

    # Compact keys keep a margin to their right; on the palette key, docked right, that margin
    # let the last column of an overflowing key show through (a stray letter at 80 columns).
    DEFAULT_CSS = """
    LthFooter.-compact FooterKey.-command-palette {
        margin-right: 0;
        padding-right: 1;
    }
    """

    def __init__(self) -> None:
        super().__init__(compact=True)

    def compose(self) -> ComposeResult:
        widgets = list(super().compose())
        bindings = self.screen.active_bindings if self.is_attached else {}

        def rank(widget: object) -> int:
            key = getattr(widget, "key", None)
            if key in LEADING:
                return LEADING.index(key)
            active = bindings.get(key) if key is not None else None
            if active is not None and active[1].priority:
                return len(LEADING)
            return len(LEADING) + (1 if key is not None else 2)  # the palette key, docked, stays last

        yield from sorted(widgets, key=rank)
