"""The command palette (ctrl+p): every action of the app by name.

Preset and run names come from the app's cached lists (refreshed by workers), so opening the
palette never reads the disk on the UI thread.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

Command = tuple[str, str, Callable[[], Any]]


def _on_run_screen(app: Any, action: str, *args: Any) -> None:
    """Switches to the Run screen, then runs one of its actions."""
    app.switch_mode("run")
    getattr(app.run_screen, f"action_{action}")(*args)


def _on_runs_screen(app: Any, action: str) -> None:
    app.switch_mode("runs")
    getattr(app.runs_screen, f"action_{action}")()


def app_commands(app: Any) -> list[Command]:
    """(name, help, callback) for everything the app can do right now."""
    from lth_tui.screens.run_tabs import tab_commands  # imported off the UI thread by LthCommands.startup

    commands: list[Command] = [
        ("Screen: Setup", "pick a preset, edit the config, start a run (F2)", partial(app.switch_mode, "setup")),
        ("Screen: Run", "the followed run: curves, layers, masks, log (F3)", partial(app.switch_mode, "run")),
        ("Screen: Runs", "every run in the store (F4)", partial(app.switch_mode, "runs")),
        ("Help: keys", "every key of every screen (F1)", app.action_help),
        ("Start run", "launch the config on the Setup screen", app.action_start_run),
        ("Save config as preset", "write the Setup config to a preset file", app.action_save_preset),
        ("Cancel run", "stop the followed run (it checkpoints and stays resumable)", app.action_cancel_current),
        ("Resume run", "continue the followed run if it was cancelled or interrupted", app.action_resume_current),
        ("Export run", "write the followed run as md, json, csv or png", app.action_export_current),
        ("Overlay a run", "draw another run's curve beside the followed one", app.action_overlay),
        ("Start random-reinit control", "same config with mask-1 = random_reinit, overlaid", app.action_control),
        ("Compare marked runs", "the marked runs of the Runs screen on one plot", app.action_compare),
        ("Compute LMC of a round", "linear mode connectivity: train two copies of the LMC tab's round from a rewind "
         "point k and measure the error barrier (l)", partial(_on_run_screen, app, "lmc")),
        *((name, help_text, partial(_on_run_screen, app, "tab", tab_id)) for name, help_text, tab_id in tab_commands()),
        ("Mask overlap of marked runs", "Jaccard matrix of the marked runs' masks at one round (o on the Runs screen)",
         partial(_on_runs_screen, app, "overlap")),
        ("Refresh runs", "re-read the runs dir", app.action_refresh_runs),
        ("Quit", "leave lth-tui (asks about live runs)", app.action_quit),
    ]
    for info in app.preset_infos:
        commands.append((f"Load preset {info.name}", info.error or info.description or str(info.path),
                         partial(app.action_load_preset, info.name)))
    for info in app.run_infos:
        best = "" if info.best_accuracy is None else f", best {100 * info.best_accuracy:.2f}%"
        commands.append((f"Open run {info.run_id}", f"{info.state}{best}", partial(app.open_run, info.path)))
    for key in app.setup_screen.keys:
        allowed = app.setup_screen.choices.get(key)
        commands.append((f"Edit {key}",
                         "one of: " + ", ".join(allowed) if allowed else "jump to this field on the Setup screen",
                         partial(app.action_edit_field, key)))
    for theme in sorted(app.available_themes):
        commands.append((f"Theme: {theme}", "switch the colour theme", partial(setattr, app, "theme", theme)))
    return commands


class LthCommands(Provider):
    """Every lth-tui action, preset and run for the command palette."""

    async def startup(self) -> None:
        """The Run tabs' registry (plotext, numpy) loads in a thread, not on the UI thread, the
        first time the palette opens before the Run screen was shown."""
        await asyncio.to_thread(importlib.import_module, "lth_tui.screens.run_tabs")

    async def discover(self) -> Hits:
        for name, help_text, callback in app_commands(self.app):
            if name.startswith(("Open run", "Theme:", "Load preset", "Edit ")):
                continue
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in app_commands(self.app):
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, text=name, help=help_text)
