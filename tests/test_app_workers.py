"""Each screen runs its own work in workers: a failing one is told as an error toast and the
screen stays usable; quitting while the Setup panels are being built raises nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import wait_for

from lth_tui.app import LthApp


def _told(app: LthApp, title: str, text: str) -> bool:
    return any(n.title == title and text in n.message and n.severity == "error" for n in app._notifications)


def _boom(*args: object, **kwargs: object) -> None:
    raise RuntimeError("disk on fire")


@pytest.fixture
def store(tmp_path: Path, analysis_runs: dict[str, Path]) -> Path:
    """A runs dir with copies of the session's two finished runs."""
    runs = tmp_path / "runs"
    runs.mkdir()
    for path in analysis_runs.values():
        shutil.copytree(path, runs / path.name)
    return runs


async def test_setup_worker_failures_are_told_and_setup_stays_usable(preset_home: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from lth_tui import presets

    real_list = presets.list_presets
    monkeypatch.setattr(presets, "list_presets", _boom)
    app = LthApp(tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        setup = app.setup_screen
        await wait_for(pilot, lambda: _told(app, "list presets failed", "disk on fire"), 90)
        assert setup.built and setup.config is not None  # the defaults are in the fields
        # a preset still loads by name, and the list comes back once its reader works again
        monkeypatch.setattr(presets, "list_presets", real_list)
        setup.load_preset("fast-test")
        await wait_for(pilot, lambda: setup.preset_name == "fast-test", 30)
        setup._list_presets()
        await wait_for(pilot, lambda: any(i.name == "fast-test" for i in setup.preset_infos), 30)
        # starting fails in the worker (before any run dir): told, and Start is enabled again
        monkeypatch.setattr("lth_tui.store_tasks.create_checked_run", _boom)
        await wait_for(pilot, lambda: setup.ready(), 60)
        setup.action_start()
        await wait_for(pilot, lambda: _told(app, "start run failed", "disk on fire"), 30)
        await wait_for(pilot, lambda: not setup.launching and not setup.query_one("#start-button").disabled)
        assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
        # saving a preset that fails to write: told, nothing changes
        monkeypatch.setattr("lth_tui.store_tasks.write_preset", _boom)
        setup.save_preset_as("mine")
        await wait_for(pilot, lambda: _told(app, "save preset failed", "disk on fire"))
        assert setup.preset_name == "fast-test"


async def test_runs_compare_overlap_and_export_failures_are_told(preset_home: Path, store: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from lth_tui import store_tasks
    from lth_tui.screens import analysis
    from lth_tui.screens.analysis import OverlapMatrixScreen
    from lth_tui.screens.runs import CompareScreen

    app = LthApp(store)
    async with app.run_test(size=(120, 40)) as pilot:
        runs = app.runs_screen
        app.switch_mode("runs")
        await wait_for(pilot, lambda: len(runs.infos) == 2, 60)
        # the list's reader fails: told, the last list stays, F5 works again once it reads
        real_read = store_tasks.read_run_infos
        monkeypatch.setattr(store_tasks, "read_run_infos", _boom)
        runs.action_refresh()
        await wait_for(pilot, lambda: _told(app, "list runs failed", "disk on fire"))
        assert len(runs.infos) == 2
        monkeypatch.setattr(store_tasks, "read_run_infos", real_read)
        listed = runs.listed
        await pilot.press("f5")
        await wait_for(pilot, lambda: runs.listed > listed)
        # deleting fails: told, both runs still there
        monkeypatch.setattr(store_tasks, "delete_runs", _boom)
        await pilot.press("d")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "ConfirmDialog")
        await pilot.press("y")
        await wait_for(pilot, lambda: _told(app, "delete runs failed", "disk on fire"))
        assert all(p.is_dir() for p in runs.selection()) and len(list(store.iterdir())) == 2
        # exporting fails: told, no file
        monkeypatch.setattr(store_tasks, "write_export", _boom)
        target = store.parent / "out.md"
        runs.export(runs.selection(), "md", target)
        await wait_for(pilot, lambda: _told(app, "export md failed", "disk on fire"))
        assert not target.exists()
        # the compare view's summaries fail: told, and esc still goes back
        monkeypatch.setattr(store_tasks, "read_summaries", _boom)
        app.push_screen(CompareScreen([i.path for i in runs.infos]))
        await wait_for(pilot, lambda: _told(app, "read summaries failed", "disk on fire"))
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is runs)
        # the overlap matrix's readers fail: told in a toast and in its note line
        monkeypatch.setattr(analysis, "common_mask_rounds", _boom)
        app.push_screen(OverlapMatrixScreen([i.path for i in runs.infos], ["a", "b"]))
        await wait_for(pilot, lambda: _told(app, "mask rounds failed", "disk on fire"))
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is runs)
        assert app.return_code is None  # nothing crashed the app


async def test_quitting_while_the_setup_panels_are_built_raises_nothing(preset_home: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The teardown race: exit() while build_panels mounts must not mount into a closing app
    (Textual's NoMatches '#label' in a Select's mount)."""
    from lth_tui.screens import setup_fields

    real_grid = setup_fields.panel_grid
    for when in ("before the mount", "during the mount"):
        started = []
        app = LthApp(tmp_path / "runs")

        def grid_then_quit(*args: object, app: LthApp = app, when: str = when, started: list = started):
            started.append(True)
            grid = real_grid(*args)
            if when == "before the mount":
                app.exit(0)
            else:  # the exit is handled while the grid's ~200 widgets mount
                app.call_next(app.exit, 0)
            return grid

        monkeypatch.setattr(setup_fields, "panel_grid", grid_then_quit)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda started=started: started, 90)
            await pilot.pause()
        assert app.return_code == 0, when
    monkeypatch.setattr(setup_fields, "panel_grid", real_grid)
    # and quitting at each await of the build: the frame's first step, then the buttons
    for step in ("top_widgets", "buttons"):
        real = getattr(setup_fields, step)
        quitting = LthApp(tmp_path / "runs")

        def quit_here(real=real, quitting=quitting):
            quitting.exit(0)
            return real()

        monkeypatch.setattr(setup_fields, step, quit_here)
        async with quitting.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
        monkeypatch.setattr(setup_fields, step, real)
        assert quitting.return_code == 0 and not quitting.setup_screen.built
