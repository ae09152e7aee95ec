"""F1: every key of every screen, read from the BINDINGS themselves so it cannot go stale."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


def binding_rows(app: Any, cls: type) -> list[tuple[str, str, str]]:
    """(keys, description, id) for every binding a class declares (inherited ones included)."""
    rows: list[tuple[str, str, str]] = []
    seen: set[tuple[str, str]] = set()
    for klass in reversed(cls.__mro__):
        if klass.__module__.startswith("textual.") and cls.__module__.startswith("lth_tui."):
            continue  # Screen's own tab / copy keys are listed once, under "Everywhere"
        for binding in Binding.make_bindings(getattr(klass, "BINDINGS", []) if "BINDINGS" in vars(klass) else []):
            if binding.system:
                continue
            remapped = getattr(app, "keymap", {}).get(binding.id or "")  # settings.toml's keymap wins
            keys = remapped or binding.key
            key = (binding.key_display if not remapped else None) or ", ".join(
                app.get_key_display(Binding(k.strip(), "")) for k in keys.split(","))
            description = binding.tooltip or binding.description or binding.action
            ident = (binding.action, binding.key)
            if ident in seen:
                continue
            seen.add(ident)
            rows.append((key, description, binding.id or ""))
    return rows


def help_sections(app: Any) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """The key table of every screen and of the widgets with their own keys."""
    from textual.widgets import DataTable

    from lth_tui.screens import dialogs
    from lth_tui.screens.analysis import OverlapMatrixScreen
    from lth_tui.screens.run import RunScreen
    from lth_tui.screens.runs import CompareScreen, RunsScreen
    from lth_tui.screens.setup import SetupScreen

    sections: list[tuple[str, list[tuple[str, str, str]]]] = [
        ("Everywhere", binding_rows(app, type(app)) + [
            (app.get_key_display(Binding("ctrl+p", "")),
             "command palette: every action by name (screens, presets, runs, "
                                                         "fields, themes)", ""),
            ("tab / shift+tab", "next / previous field or widget", ""),
            ("mouse", "click tabs, buttons, rows and lists; scroll to zoom the heatmap", "")]),
        ("Setup screen",
         binding_rows(app, SetupScreen) + [("enter", "open a choice list (↑ ↓ then enter to pick)", "")]),
        ("Run screen", binding_rows(app, RunScreen)),
        ("Runs screen", binding_rows(app, RunsScreen) + [("↑ ↓ / mouse", "move, click to pick", ""),
                                                           ("enter", "open the highlighted run", "")]),
        ("Compare view", binding_rows(app, CompareScreen)),
        ("Mask-overlap view (o on the Runs screen)", binding_rows(app, OverlapMatrixScreen)),
    ]
    try:
        from lth_tui.components.heatmap import MaskHeatmap

        sections.append(("Mask heatmap (when focused)", binding_rows(app, MaskHeatmap)))
    except Exception:  # the heatmap component is optional for the help text
        pass
    sections.append(("Tables",
                     [(k, d, i) for k, d, i in binding_rows(app, DataTable) if d and d != "select_cursor"][:6]))
    sections.append(("Dialogs", binding_rows(app, dialogs.ConfirmDialog) + binding_rows(app, dialogs.QuitDialog)
                     + [("enter / esc", "LMC dialog: compute / cancel (k empty: the round's own start)", "")]))
    return sections


class HelpScreen(ModalScreen[None]):
    """The key reference, each binding with its id (for settings.toml's keymap); Escape, F1 or q closes it."""

    BINDINGS = [Binding("escape,f1,q", "close", "Close help", id="help.close")]

    def compose(self) -> ComposeResult:
        self.sections = help_sections(self.app)
        with VerticalScroll(id="help-body") as body:
            body.border_title = "lth-tui keys (esc closes)"
            for title, rows in self.sections:
                table = Table(title=Text(title, style="bold"), title_justify="left", show_header=False, box=None,
                              padding=(0, 1), expand=True)
                table.add_column("key", style="bold", no_wrap=True, min_width=14)
                table.add_column("what it does", ratio=1)
                for key, description, ident in rows:  # the id is what settings.toml's [keymap] remaps
                    table.add_row(key, Text(description) + Text(f"  {ident}" if ident else "", style="dim"))
                yield Static(table, classes="help-section")

    def on_mount(self) -> None:
        self.query_one("#help-body").focus()

    def action_close(self) -> None:
        self.dismiss(None)
