"""Pilot tests of issue 13: the app never shows one run's figures as another's, names runs so
they can be told apart, re-attaches to the run still training, checks Setup before "ready",
and its keys work wherever the focus is. No runner child is started: "live" runs are run dirs
whose status names this test process, which is alive."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import tomllib
from pathlib import Path

import pytest
from conftest import FAST_PRESET, wait_for
from textual.widgets import DataTable, Select, Static, TabbedContent

from engine.config import choice_help, from_dict, to_toml
from engine.store import create_run, write_json_atomic
from lth_tui.app import LthApp
from lth_tui.components.heatmap import MaskHeatmap
from lth_tui.components.plot import PlotView
from lth_tui.run_labels import short_ids
from lth_tui.screens.dialogs import ConfirmDialog, ExportDialog
from lth_tui.screens.runs import CompareScreen, overlap_labels
from lth_tui.screens.setup import field_id


def _pid_start() -> int:
    """This process's start time as /proc/<pid>/stat field 22 (what a heartbeat records)."""
    stat = Path(f"/proc/{os.getpid()}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[19])


def _make_live(run_dir: Path, created: float) -> None:
    """A run whose runner is "this process": running, fresh heartbeat, on this host."""
    status = json.loads((run_dir / "status.json").read_text())
    beat = {"time": time.time() + 3600, "host": socket.gethostname(), "pid": os.getpid(), "pid_start": _pid_start()}
    status.update(state="running", pid=os.getpid(), host=socket.gethostname(), created=created, heartbeat=beat,
                  runner_start=beat["pid_start"])
    write_json_atomic(run_dir / "status.json", status)


def _copy(source: Path, store: Path, stamp: str, mask0: str | None = None) -> Path:
    """A copy of a finished run under another start time (and optionally another mask-0 action)."""
    parts = source.name.split("-")
    target = store / "-".join([parts[0], stamp, *parts[2:]])
    shutil.copytree(source, target)
    summary = json.loads((target / "summary.json").read_text())
    summary["run_id"] = target.name
    if mask0 is not None:
        raw = tomllib.loads((target / "config.toml").read_text())
        raw["prune"]["mask0"] = mask0
        (target / "config.toml").write_text(to_toml(from_dict(raw)), encoding="utf-8")
        summary["config"]["prune"]["mask0"] = mask0
        for point in summary["curve"]:
            point["test_accuracy_mean"] *= 0.8
    write_json_atomic(target / "summary.json", summary)
    return target


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from engine.runner import execute

    store = tmp_path_factory.mktemp("coherence")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_dir = create_run(from_dict(tomllib.loads(FAST_PRESET)), store, preset="fast")
        assert execute(run_dir) == "done"
    finally:
        torch.set_num_threads(threads)
    return run_dir


@pytest.fixture
def store(tmp_path: Path, trained: Path) -> dict[str, Path]:
    """a: the trained run; twin: the same config started later; other: mask-0 freeze_init."""
    runs = tmp_path / "runs"
    runs.mkdir()
    a = runs / trained.name
    shutil.copytree(trained, a)
    return {"runs": runs, "a": a, "twin": _copy(a, runs, "235958"), "other": _copy(a, runs, "235959", "freeze_init")}


def _labels(app: LthApp, plot: str = "#sparsity-plot") -> list[str]:
    return [s.label for s in app.run_screen.query_one(plot, PlotView).spec.series]


async def test_an_overlay_belongs_to_the_run_it_was_chosen_for(store: dict[str, Path]) -> None:
    app = LthApp(store["runs"])
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.run_screen
        app.open_run(store["a"])
        await wait_for(pilot, lambda: len(_labels(app)) == 1)
        a_id, twin_id = short_ids([store["a"].name, store["twin"].name])
        screen.set_overlay(store["twin"])  # what o (or c, for the control) does
        await wait_for(pilot, lambda: len(_labels(app)) == 2)
        # two runs of one config: told apart by a short unique id
        assert _labels(app)[0].startswith(f"{a_id} ") and _labels(app)[1].startswith(f"{twin_id} ")
        assert a_id != twin_id
        # open another run: the overlay chosen for the first is gone, and so is its follower
        app.open_run(store["other"])
        await wait_for(pilot, lambda: screen.model.run_dir == store["other"] and screen.model.opened
                       and len(_labels(app)) == 1)
        assert screen.overlay is None and set(app.followers) == {store["other"]}
        for plot in ("#sparsity-plot", "#stop-plot"):
            (label,) = _labels(app, plot)
            assert label.startswith(store["other"].name.split("-")[-1]) and "freeze_init" in label
        # the overlay picker's answer for a run no longer shown is dropped
        screen.action_overlay()
        await wait_for(pilot, lambda: app.screen is not screen)
        app.pop_screen()
        app.open_run(store["a"])
        await wait_for(pilot, lambda: screen.model.run_dir == store["a"] and len(_labels(app)) == 1)
        assert screen.overlay is None


async def test_compare_and_overlap_name_runs_by_short_id_and_what_differs(store: dict[str, Path]) -> None:
    app = LthApp(store["runs"])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f4")
        await wait_for(pilot, lambda: app.runs_screen.infos)
        app.push_screen(CompareScreen([store["a"], store["twin"], store["other"]]))
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and len(app.screen.spec.series) == 3)
        labels = [s.label for s in app.screen.spec.series]
        assert len({label.split()[0] for label in labels}) == 3  # three distinct short ids
        assert "mask0=zero" in labels[0] and "mask0=freeze_init" in labels[2]
        infos = {i.path: i for i in app.runs_screen.infos}
        rows = overlap_labels([infos[store["a"]], infos[store["twin"]]])
        assert rows[0] != rows[1]


async def test_the_app_opens_on_the_newest_live_run(store: dict[str, Path]) -> None:
    _make_live(store["a"], created=time.time() - 60)
    _make_live(store["other"], created=time.time() - 10)
    app = LthApp(store["runs"])
    notes: list[str] = []
    real = app.notify
    app.notify = lambda message, **kw: (notes.append(message), real(message, **kw))[1]  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.screen is app.run_screen and app.run_screen.model is not None, 20)
        assert app.run_screen.model.run_dir == store["other"]  # the newest
        await wait_for(pilot, lambda: app.run_screen.model.alive)
        assert any("1 more training: F4" in n for n in notes)
        await pilot.press("f4")  # the others one key away
        await wait_for(pilot, lambda: app.screen is app.runs_screen and app.runs_screen.infos)
        assert [i.state for i in app.runs_screen.infos if i.path == store["a"]] == ["running"]


async def test_mask_and_tab_keys_work_wherever_the_focus_is(store: dict[str, Path]) -> None:
    app = LthApp(store["runs"])
    async with app.run_test(size=(80, 24)) as pilot:  # narrow: the 32×64 mask does not fit 1:1
        app.open_run(store["a"])
        screen = app.run_screen
        await wait_for(pilot, lambda: screen.model is not None and screen.model.opened)
        tabs = screen.query_one("#run-tabs", TabbedContent)
        await pilot.press("5")
        heat = screen.query_one("#mask-heatmap", MaskHeatmap)
        await wait_for(pilot, lambda: heat.matrix is not None)
        assert not heat.has_focus
        await pilot.press("plus")  # zoom with the focus anywhere on the screen
        assert heat.zoom == 1
        before = heat.viewport
        await pilot.press("right")  # pans; does not switch tabs
        assert tabs.active == "tab-masks" and heat.viewport != before
        await pilot.press("minus")
        assert heat.zoom == 0
        footer_keys = [getattr(w, "key", None) for w in screen.query("FooterKey")]
        assert footer_keys[:4] == ["f1", "f2", "f3", "f4"] and "plus" in footer_keys, footer_keys
        screen.query_one("#mask-layer", Select).focus()
        await pilot.pause()
        await pilot.press("3")  # tab keys with a Select focused
        assert tabs.active == "tab-training"
        await pilot.press("5")
        heat.focus()
        await pilot.pause()
        await pilot.press("1")  # and with the heatmap focused
        assert tabs.active == "tab-sparsity"
        await pilot.press("plus")  # mask keys are off on the other tabs
        assert heat.zoom == 0


async def test_setup_checks_the_dataset_before_ready(preset_home: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LTH_TUI_DATA_DIR", str(tmp_path / "no-data"))
    runs = tmp_path / "runs"
    app = LthApp(runs)
    async with app.run_test(size=(80, 24)) as pilot:
        setup = app.setup_screen
        await wait_for(pilot, lambda: setup.preset_infos, 15)
        setup.query_one("#preset-select", Select).value = "lenet-mnist"
        status = setup.query_one("#setup-status", Static)
        hint = setup.query_one("#hint-data-name", Static)
        await wait_for(pilot, lambda: "cannot start" in str(status.render()), 30)
        assert "see the Data panel" in str(status.render())
        assert "set data dir (Data panel)" in str(hint.render()) and "tick download" in str(hint.render())
        assert setup.check_action("start", ()) is None
        await pilot.press("ctrl+r")
        await pilot.pause(0.5)
        assert not runs.exists() or not any(runs.iterdir())  # no run dir for a run that cannot start
        setup.query_one("#" + field_id("data.download")).value = True
        await wait_for(pilot, lambda: str(status.render()).startswith("✓ ready"), 30)
        # the model's size and the one-line hints of the pruning choices
        model_hint = str(setup.query_one("#hint-model-name", Static).render())
        assert "267k parameters" in model_hint and "prunable" in model_hint
        criterion = setup.query_one("#" + field_id("prune.criterion"), Select)
        hint = setup.query_one("#hint-prune-criterion", Static)
        assert str(hint.render()) == choice_help("prune.criterion", criterion.value)
        setup.focus_field("prune.mask0")
        await pilot.press("down")  # highlight the next mask-0 action in the open list
        mask0_hint = setup.query_one("#hint-prune-mask0", Static)
        await wait_for(pilot, lambda: str(mask0_hint.render()) == choice_help("prune.mask0", "freeze_init"))
        await pilot.press("escape")
        await wait_for(pilot, lambda: str(mask0_hint.render()) == choice_help("prune.mask0", "zero"))


async def test_a_second_identical_run_asks_first(preset_home: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    live = create_run(from_dict(tomllib.loads(FAST_PRESET)), runs, preset="fast-test")
    _make_live(live, created=time.time())
    app = LthApp(runs)
    async with app.run_test(size=(120, 40)) as pilot:
        setup = app.setup_screen
        await wait_for(pilot, lambda: app.screen is app.run_screen, 20)  # it re-attached to the live one
        await pilot.press("f2")
        await wait_for(pilot, lambda: setup.preset_infos, 15)
        setup.query_one("#preset-select", Select).value = "fast-test"
        await wait_for(pilot, lambda: setup.preset_name == "fast-test" and setup.ready(), 30)
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        assert live.name in str(app.screen.query_one(".dialog-message", Static).render())
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is setup and not setup.launching)
        assert [p.name for p in runs.iterdir()] == [live.name]


async def test_runs_screen_columns_home_end_delete_and_export_marked(store: dict[str, Path]) -> None:
    app = LthApp(store["runs"])
    timeouts: list[float | None] = []
    real = app.notify
    app.notify = lambda message, **kw: (timeouts.append(kw.get("timeout")), real(message, **kw))[1]  # type: ignore
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f4")
        screen = app.runs_screen
        await wait_for(pilot, lambda: len(screen.infos) == 3)
        table = screen.query_one("#runs-table", DataTable)
        assert str(table.get_cell(str(store["other"]), "mask0")) == "freeze_init"
        assert str(table.get_cell(str(store["a"]), "mask1")) == "rewind"
        await pilot.press("end")
        assert table.cursor_row == 2
        await pilot.press("home")
        assert table.cursor_row == 0
        # mark two and export them side by side as one Markdown table
        for run_dir in (store["other"], store["a"]):
            table.move_cursor(row=table.get_row_index(str(run_dir)))
            await pilot.press("space")
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportDialog))
        await pilot.press("m", "enter")
        written = lambda: list(store["runs"].glob("compare-*.md"))  # noqa: E731
        await wait_for(pilot, lambda: written())
        text = written()[0].read_text()
        assert store["a"].name in text and store["other"].name in text and "| round |" in text
        # the same file again: asks before overwriting
        (path,) = written()
        path.write_text("mine")
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportDialog))
        app.screen.query_one("#export-path").value = str(path)
        await pilot.press("m", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportDialog))
        await pilot.press("escape")
        assert path.read_text() == "mine"
        # d deletes the marked runs after one confirm listing them
        await wait_for(pilot, lambda: app.screen is screen)
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        message = str(app.screen.query_one(".dialog-message", Static).render())
        assert store["a"].name in message and store["other"].name in message and "these 2 runs" in message
        await pilot.press("y")
        await wait_for(pilot,
                       lambda: not store["a"].exists() and not store["other"].exists() and len(screen.infos) == 1)
        assert store["twin"].is_dir() and not screen.marked
    assert all(t is None or t <= 5 for t in timeouts) and LthApp.NOTIFICATION_TIMEOUT <= 5
