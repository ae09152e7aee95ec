"""The Run screen's tabs, one widget per file, and the registry that lists them.

TABS drives the screen's compose, its number-key bindings, the command palette's "Show …"
entries and the help screen's Run section, so a new tab is one RunTab subclass in its own file
plus one line here. Everything else names a tab by its `tab_id`, never by position.
"""

from __future__ import annotations

from textual.binding import Binding

from lth_tui.screens.run_tabs.base import RunTab
from lth_tui.screens.run_tabs.early_stop import EarlyStopTab
from lth_tui.screens.run_tabs.layers import LayersTab
from lth_tui.screens.run_tabs.lmc import LmcTab
from lth_tui.screens.run_tabs.log import LogTab
from lth_tui.screens.run_tabs.masks import MasksTab
from lth_tui.screens.run_tabs.overlap import OverlapTab
from lth_tui.screens.run_tabs.sparsity import SparsityTab
from lth_tui.screens.run_tabs.training import TrainingTab

__all__ = ["TABS", "RunTab", "tab_bindings", "tab_class", "tab_commands"]

TABS: list[type[RunTab]] = [
    SparsityTab,
    EarlyStopTab,
    TrainingTab,
    LayersTab,
    MasksTab,
    LogTab,
    LmcTab,
    OverlapTab,
]


def tab_class(tab_id: str) -> type[RunTab]:
    """The registered tab of that id (KeyError names the ids there are)."""
    for cls in TABS:
        if cls.tab_id == tab_id:
            return cls
    raise KeyError(f"no Run tab {tab_id!r}; tabs: {', '.join(c.tab_id for c in TABS)}")


def tab_bindings() -> list[Binding]:
    """A priority key per tab (they work with a Select, a table or the heatmap focused); the
    first one stands for all in the footer, and every tab's priority keys while it shows."""
    keys = f"{TABS[0].key}-{TABS[-1].key}"
    bindings = []
    for i, cls in enumerate(TABS):
        if i == 0:
            bindings.append(Binding(cls.key, f"tab('{cls.tab_id}')", "Tabs", key_display=keys, priority=True,
                                    id=cls.binding_id(),
                                    tooltip=f"{keys}: {', '.join(c.title for c in TABS)}"))
        else:
            bindings.append(Binding(cls.key, f"tab('{cls.tab_id}')", cls.title, show=False, priority=True,
                                    id=cls.binding_id(), tooltip="" if cls.help == cls.title else cls.help))
    return bindings + [b for cls in TABS for b in cls.screen_bindings]


def tab_commands() -> list[tuple[str, str, str]]:
    """(palette name, help, tab id) of the tabs with a command-palette entry."""
    return [(cls.command[0], f"{cls.command[1]} (Run screen, {cls.key})", cls.tab_id) for cls in TABS if cls.command]
