"""Pilot tests of the Setup screen, the help screen and the command palette (no run is started)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from conftest import wait_for
from textual.widgets import Button, Input, Select, Static

from engine.config import choices
from lth_tui.app import LthApp
from lth_tui.commands import LthCommands
from lth_tui.presets import load_preset
from lth_tui.screens.setup import field_id


def _input(app: LthApp, key: str) -> Input:
    return app.setup_screen.query_one("#" + field_id(key), Input)


def _select(app: LthApp, key: str) -> Select:
    return app.setup_screen.query_one("#" + field_id(key), Select)


def _error(app: LthApp, key: str) -> str:
    """The inline error under a field ("" when there is none); it sits right below the field's row."""
    found = app.setup_screen.query(".err-" + field_id(key)[2:])
    if not found:
        return ""
    widget = found.first()
    siblings = list(widget.parent.children)
    row = app.setup_screen.query_one("#row-" + field_id(key)[2:])
    assert siblings.index(widget) - siblings.index(row) in (1, 2)  # under the row (or under its hint)
    return str(widget.render())


async def _load_fast(app: LthApp, pilot) -> None:
    await wait_for(pilot, lambda: app.setup_screen.preset_infos, 15)
    preset = app.setup_screen.query_one("#preset-select", Select)
    preset.value = "fast-test"  # as a click in the picker would
    await wait_for(pilot, lambda: _input(app, "train.iterations").value == "60"
                   and app.setup_screen.preset_name == "fast-test")


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
async def test_setup_panels_choices_and_preset(preset_home: Path, tmp_path: Path, size: tuple[int, int]) -> None:
    app = LthApp(tmp_path / "runs")
    async with app.run_test(size=size) as pilot:
        setup = app.setup_screen
        await wait_for(pilot, lambda: app.screen is setup and setup.built, 30)
        for panel in ("data", "model", "training", "pruning", "run"):
            assert setup.query_one(f"#panel-{panel}").border_title
        for key in ("prune.criterion", "prune.mask1", "prune.mask0", "prune.scope", "prune.count", "prune.strategy",
                    "prune.rate.conv",
                    "prune.rate.fc", "prune.rate.output", "prune.rounds", "prune.rewind_iteration", "trials", "device",
                    "seed", "train.optimizer", "train.lr", "train.momentum", "train.weight_decay", "train.batch_size",
                    "train.iterations", "train.schedule", "train.warmup_iterations", "train.eval_every", "data.name",
                    "model.name"):
            assert setup.query("#" + field_id(key)), key
        # every choice list is the engine registry's, in its order
        for key, allowed in choices().items():
            options = tuple(value for _, value in _select(app, key)._options if value is not Select.NULL)
            assert options == tuple(allowed), key
        # the picker lists the user's preset with its description, and choosing it fills the fields
        await _load_fast(app, pilot)
        info = next(i for i in setup.preset_infos if i.name == "fast-test")
        assert info.description == "tiny digits run for the app tests"
        assert "tiny digits run" in str(setup.query_one("#preset-description", Static).render())
        assert _input(app, "model.hidden").value == "32"
        assert _input(app, "train.eval_every").value == "20"
        assert _input(app, "prune.rounds").value == "2"
        assert _input(app, "device").value == "cpu"
        assert setup.config is not None and setup.config.train.iterations.count == 60
        start = setup.query_one("#start-button", Button)
        await wait_for(pilot, lambda: not start.disabled, 60)  # the data and model checks import the engine in a worker
        # the Start button is on screen at this size
        assert start.region.bottom <= size[1] and start.region.right <= size[0]


INVALID = [
    ("prune.rate.fc", "1.5", "0 <= rate < 1"),
    ("train.lr", "-1", "greater than 0"),
    ("train.iterations", "abc", "not a length"),
    ("model.hidden", "32, x", "integer"),
]


async def test_invalid_values_are_refused_inline(preset_home: Path, tmp_path: Path) -> None:
    app = LthApp(tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await _load_fast(app, pilot)
        setup = app.setup_screen
        for key, bad, reason in INVALID:
            field = _input(app, key)
            good = field.value
            if key == "train.lr":  # typed key by key: the error line follows every keystroke
                field.focus()
                field.value = ""
                await pilot.press(*bad)
            else:
                field.value = bad
            await wait_for(pilot, lambda field=field, bad=bad: setup.config is None and field.value == bad)
            assert reason in _error(app, key), key
            assert setup.query_one("#start-button", Button).disabled
            assert setup.check_action("start", ()) is None  # the footer key is shown disabled
            assert reason in str(setup.query_one("#setup-status", Static).render())
            await pilot.press("ctrl+r")  # refused: nothing is created
            await pilot.pause(0.2)
            assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
            field.value = good
            await wait_for(pilot, lambda: setup.config is not None)
            assert _error(app, key) == ""
            assert not setup.query_one("#start-button", Button).disabled


async def test_openlth_count_is_refused_inline_where_it_has_no_meaning(preset_home: Path, tmp_path: Path) -> None:
    app = LthApp(tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await _load_fast(app, pilot)
        setup = app.setup_screen
        count = _select(app, "prune.count")
        assert count.value == "exact"
        count.value = "openlth"  # layer-wise large_final: OpenLTH's rule per layer
        await wait_for(pilot, lambda: setup.config is not None and setup.config.prune.count == "openlth")
        _select(app, "prune.criterion").value = "movement"
        await wait_for(pilot, lambda: setup.config is None)
        assert "needs criterion large_final" in _error(app, "prune.count")
        assert setup.query_one("#start-button", Button).disabled
        _select(app, "prune.criterion").value = "large_final"
        await wait_for(pilot, lambda: setup.config is not None)
        assert _error(app, "prune.count") == "" and not setup.query_one("#start-button", Button).disabled


async def test_change_criterion_and_save_as_preset(preset_home: Path, tmp_path: Path) -> None:
    from lth_tui.screens.dialogs import ConfirmDialog, TextPrompt

    app = LthApp(tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await _load_fast(app, pilot)
        # the criterion through the widget, as a user does it: open the list, next entry, enter
        select = _select(app, "prune.criterion")
        assert select.value == "large_final"
        select.focus()
        await pilot.press("enter")
        await pilot.press("down", "enter")
        order = choices()["prune.criterion"]
        await wait_for(pilot, lambda: app.setup_screen.config.prune.criterion == order[1])
        assert "(edited)" in str(app.setup_screen.query_one("#preset-description", Static).render())
        # then save it, with one more change, as a preset
        _select(app, "prune.criterion").value = "movement"
        _input(app, "train.lr").value = "0.005"
        await wait_for(pilot, lambda: app.setup_screen.config is not None
                       and app.setup_screen.config.prune.criterion == "movement")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, TextPrompt))
        prompt = app.screen.query_one(Input)
        prompt.value = "my-movement"
        await pilot.press("enter")
        target = preset_home / ".config" / "lth-tui" / "presets" / "my-movement.toml"
        await wait_for(pilot, lambda: target.is_file() and app.setup_screen.preset_name == "my-movement")
        config, name = load_preset("my-movement")
        assert name == "my-movement"
        assert config.prune.criterion == "movement" and config.train.lr == 0.005 and config.name == "my-movement"
        assert tomllib.loads(target.read_text())["train"]["iterations"] == 60
        before = target.read_text()
        # the same name again: asks, and "no" leaves the file alone
        _input(app, "train.lr").value = "0.001"
        await wait_for(pilot, lambda: app.setup_screen.config is not None and app.setup_screen.config.train.lr == 0.001)
        app.setup_screen.save_preset_as("my-movement")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("n")
        await pilot.pause(0.3)
        assert target.read_text() == before


async def test_help_and_command_palette(preset_home: Path, tmp_path: Path) -> None:
    from lth_tui.screens.help import HelpScreen

    app = LthApp(tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert len(app.screen.query(".help-section")) == len(app.screen.sections)
        text = "\n".join(f"{title}\n" + "\n".join(f"{k} {d}" for k, d, _ in rows)
                         for title, rows in app.screen.sections)
        for needle in ("Setup screen", "Run screen", "Runs screen", "Start run", "Save preset", "Cancel run",
                       "Overlay run",
                       "Compare", "Export", "Delete", "Resume", "Zoom in", "command palette", "Quit"):
            assert needle in text, needle
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen))
        await _palette(app, pilot)


async def test_bindings_have_ids(preset_home: Path, tmp_path: Path) -> None:
    from textual.binding import Binding

    from lth_tui.screens.dialogs import ConfirmDialog, ExportDialog, QuitDialog
    from lth_tui.screens.run import RunScreen
    from lth_tui.screens.runs import CompareScreen, RunsScreen
    from lth_tui.screens.setup import SetupScreen

    for cls in (LthApp, SetupScreen, RunScreen, RunsScreen, CompareScreen, ConfirmDialog, QuitDialog, ExportDialog):
        for binding in Binding.make_bindings(cls.BINDINGS):
            assert binding.id, f"{cls.__name__}: {binding.key} has no id"


async def _palette(app: LthApp, pilot) -> None:
    """The command palette provider yields every action, presets and themes; ctrl+p opens it."""
    await wait_for(pilot, lambda: app.preset_infos)
    provider = LthCommands(app.screen)

    async def names(query: str) -> list[str]:
        hits = provider.search(query) if query else provider.discover()
        return [hit.text async for hit in hits]

    discovered = await names("")
    for name in ("Screen: Setup", "Screen: Run", "Screen: Runs", "Start run", "Cancel run", "Export run", "Help: keys"):
        assert name in discovered
    assert "Load preset fast-test" in await names("load preset fast")
    assert any(n.startswith("Theme: ") for n in await names("theme"))
    assert "Screen: Runs" in await names("runs")
    # picking a hit runs it
    hit = [h async for h in provider.search("Screen: Runs")][0]
    hit.command()
    await wait_for(pilot, lambda: app.screen is app.runs_screen)
    # and ctrl+p opens the palette itself
    await pilot.press("ctrl+p")
    from textual.command import CommandPalette

    await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))


async def test_worker_failures_are_reported_and_quit_can_stop_live_runs(preset_home: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.process import StopResult
    from lth_tui.screens.dialogs import QuitDialog

    stopped = []
    monkeypatch.setattr("engine.process.request_stop",
                        lambda run_dir, by="": stopped.append(Path(run_dir)) or StopResult("signalled", "stopped"))

    class LiveChild:
        pid = 4242

        def poll(self) -> None:
            return None

    app = LthApp(tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        # every worker failure lands in the app's one handler: an error notification, no crash
        app.start_worker(lambda: 1 / 0, name="boom", group="test")
        await wait_for(pilot, lambda: any("division by zero" in n.message and n.severity == "error"
                                          for n in app._notifications))
        app.setup_screen.load_preset("no-such-preset")
        await wait_for(pilot, lambda: any("no preset named 'no-such-preset'" in n.message for n in app._notifications))
        # a live run: quitting asks; "s" stops it, then the app exits
        app.processes[tmp_path / "runs" / "live"] = LiveChild()
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitDialog))
        await pilot.press("s")
        await wait_for(pilot, lambda: stopped, 10)
    assert stopped == [tmp_path / "runs" / "live"]
    assert app.return_code == 0
