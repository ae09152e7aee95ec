"""Settings in ~/.config/lth-tui/settings.toml: theme and keymap applied, a bad file gives one line and the defaults."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from conftest import wait_for

from lth_tui.app import LthApp
from lth_tui.settings import binding_ids, parse_settings


def _write(home: Path, text: str) -> Path:
    path = home / ".config" / "lth-tui" / "settings.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _notices(app: LthApp) -> list[str]:
    return [n.message for n in app._notifications]


async def test_theme_and_a_remapped_key_apply(preset_home: Path, tmp_path: Path) -> None:
    _write(preset_home, 'theme = "gruvbox"\n[keymap]\n"app.runs" = "f6"\n"app.help" = "f1,question_mark"\n')
    app = LthApp(tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.screen is app.setup_screen and app.setup_screen.built, 30)
        assert app.theme == "gruvbox" and app.current_theme.name == "gruvbox"
        assert not any("settings" in n for n in _notices(app))
        await pilot.press("f4")  # the default key of app.runs no longer switches
        await pilot.pause()
        assert app.current_mode == "setup"
        await pilot.press("f6")
        await wait_for(pilot, lambda: app.current_mode == "runs")
        await pilot.press("f1")
        from lth_tui.screens.help import HelpScreen

        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        from lth_tui.screens.help import help_sections

        rows = {ident: key for _, section in help_sections(app) for key, _, ident in section}
        assert rows["app.runs"].lower() == "f6" and rows["app.runs"] != "f4"  # F1 lists the user's key
        assert rows["app.setup"].lower() == "f2"


async def test_theme_picked_in_the_app_is_saved(preset_home: Path, tmp_path: Path) -> None:
    path = _write(preset_home, '[keymap]\n"app.runs" = "f6"\n')
    app = LthApp(tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.screen is app.setup_screen and app.setup_screen.built, 30)
        app.theme = "nord"  # what ctrl+p "Change theme" does
        await wait_for(pilot, lambda: tomllib.loads(path.read_text()).get("theme") == "nord")
    assert tomllib.loads(path.read_text()) == {"theme": "nord", "keymap": {"app.runs": "f6"}}
    again = LthApp(tmp_path / "runs")
    async with again.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: again.screen is again.setup_screen and again.setup_screen.built, 30)
        assert again.theme == "nord"


BAD = [
    ('theme = "gruvbox"\n[keymap\n', "TOML syntax error"),
    ('theme = "no-such-theme"\n', "theme = 'no-such-theme' is not a theme; allowed:"),
    ('colour = "red"\n', "unknown key 'colour'; allowed: theme, keymap"),
    ('keymap = "f6"\n', "keymap must be a table"),
    ('theme = "gruvbox"\n[keymap]\n"app.nothing" = "f6"\n', "keymap.app.nothing: no binding has this id"),
    ('theme = "gruvbox"\n[keymap]\n"app.runs" = "f6 f7"\n', "is not a key list"),
    ('[keymap]\n"app.runs" = 6\n', "is not a key list"),
]


@pytest.mark.parametrize("text, message", BAD)
def test_bad_settings_are_one_line_naming_the_file_and_the_defaults(preset_home: Path, text: str, message: str) -> None:
    from lth_tui.settings import Settings, load_settings

    path = _write(preset_home, text)
    settings, problem = load_settings(["textual-dark", "gruvbox"], binding_ids())
    assert settings == Settings()
    assert problem.startswith(str(path)) and message in problem and problem.endswith("; using the defaults")
    assert "\n" not in problem


async def test_a_bad_file_in_the_app_gives_a_notice_and_the_defaults(preset_home: Path, tmp_path: Path) -> None:
    text = 'theme = "gruvbox"\n[keymap]\n"app.runs" = "f6"\n"app.nothing" = "f7"\n'
    path = _write(preset_home, text)
    app = LthApp(tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.screen is app.setup_screen and app.setup_screen.built, 30)
        notices = [n for n in _notices(app) if str(path) in n]
        assert len(notices) == 1 and "keymap.app.nothing" in notices[0] and notices[0].endswith("using the defaults")
        assert app.theme == "textual-dark"  # Textual's default, not the file's gruvbox
        await pilot.press("f4")  # default keys work
        await wait_for(pilot, lambda: app.current_mode == "runs")
        app.theme = "nord"
        await pilot.pause()
    assert path.read_text() == text  # a file with errors is never overwritten


def test_every_binding_has_an_id_and_the_ids_are_known() -> None:
    from textual.binding import Binding
    from textual.dom import DOMNode

    ids = binding_ids()
    assert {"app.help", "app.runs", "setup.start", "run.cancel", "runs.export", "heatmap.zoom_in", "dialog.yes"} <= ids
    stack, missing = [DOMNode], []
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__.startswith("lth_tui.") and "BINDINGS" in vars(cls):
            missing += [f"{cls.__name__}:{b.key}" for b in Binding.make_bindings(vars(cls)["BINDINGS"]) if not b.id]
    assert not missing  # a binding without an id cannot be remapped


def test_parse_settings_normalises_key_lists() -> None:
    settings = parse_settings('[keymap]\n"app.help" = " f1 , ? "\n', "s.toml", ["textual-dark"], {"app.help"})
    assert settings.keymap == {"app.help": "f1,?"} and settings.theme is None
