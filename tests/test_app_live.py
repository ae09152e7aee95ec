"""Pilot tests with real runner children: launch → watch → export, and quit/re-attach/cancel."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import tomllib
from pathlib import Path

import pytest
from conftest import FAST_PRESET, wait_for
from textual.widgets import DataTable, Input, Select

from engine.config import from_dict
from engine.launch import spawn
from engine.process import request_stop
from engine.store import create_run, pid_alive, read_status
from lth_tui.app import LthApp
from lth_tui.components.heatmap import MaskHeatmap
from lth_tui.components.plot import PlotView
from lth_tui.screens.dialogs import ConfirmDialog, ExportDialog, QuitDialog
from lth_tui.screens.setup import field_id

CHILD_TIMEOUT = 90.0


@pytest.fixture
def one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runner children use one BLAS thread: on a 2-core box the app and the child then share fairly."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "1")


def _running(pid: int) -> bool:
    """Alive and not a zombie: the runner is this test process's child, so reap it first."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    return pid_alive(pid)


def _kill(pid: int | None) -> None:
    if pid and _running(pid):
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
        _running(pid)


async def _start_from_setup(app: LthApp, pilot, **fields: str) -> Path:
    setup = app.setup_screen
    await wait_for(pilot, lambda: setup.preset_infos, 15)
    setup.query_one("#preset-select", Select).value = "fast-test"
    await wait_for(pilot, lambda: setup.preset_name == "fast-test" and setup.config is not None
                   and setup.config.train.iterations.count == 60)
    for key, value in fields.items():
        setup.query_one("#" + field_id(key), Input).value = value
    await wait_for(pilot, lambda: setup.config is not None and all(
        str(setup.config.get(k)) in (v, f"{v}it") for k, v in fields.items()))
    await wait_for(pilot, setup.ready, 30)  # the data and model checks ran
    await pilot.press("ctrl+r")
    await wait_for(pilot, lambda: app.screen is app.run_screen and app.run_screen.model is not None, 30)
    return app.run_screen.model.run_dir


async def test_launch_watch_export(preset_home: Path, tmp_path: Path, one_thread: None) -> None:
    runs_dir = tmp_path / "runs"
    app = LthApp(runs_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        run_dir = await _start_from_setup(app, pilot)
        assert run_dir.parent == runs_dir and "fast-test" in run_dir.name
        screen = app.run_screen
        pid = None
        try:
            # the child trains while the UI keeps answering: switch tabs as it goes
            deadline = time.monotonic() + CHILD_TIMEOUT
            tab = 0
            while screen.model.state != "done":
                assert time.monotonic() < deadline, f"run did not finish: {screen.model.state} {screen.model.error}"
                await pilot.press(str(tab % 6 + 1))
                tab += 1
                await pilot.pause(0.2)
                pid = pid or (read_status(run_dir).get("pid") if (run_dir / "status.json").exists() else None)
            assert read_status(run_dir)["state"] == "done"
            assert screen.model.position is not None and screen.model.iterations == 60
            sparsity = screen.query_one("#sparsity-plot", PlotView)
            await wait_for(pilot, lambda: sparsity.spec.series and len(sparsity.spec.series[0].x) == 3)
            assert sparsity.spec.series[0].x[0] == pytest.approx(100.0)
            assert len(screen.query_one("#stop-plot", PlotView).spec.series[0].x) == 3
            layers = screen.query_one("#layer-table", DataTable)
            assert layers.row_count == 3 and len(layers.columns) == 4
            await pilot.press("5")
            heat = screen.query_one("#mask-heatmap", MaskHeatmap)
            await wait_for(pilot, lambda: heat.matrix is not None and heat.matrix.shape == (32, 64))
            assert screen.redraws > 0
            # export md from the app: e, m (markdown), enter on the focused Export button
            await pilot.press("e")
            await wait_for(pilot, lambda: isinstance(app.screen, ExportDialog))
            await pilot.press("m")
            await pilot.press("enter")
            target = run_dir / "export.md"
            await wait_for(pilot, lambda: target.is_file())
            assert "| round |" in target.read_text()
        finally:
            _kill(pid)


async def _reattached(app: LthApp, pilot) -> None:
    """The app opens on the run still training, following it (no key pressed)."""
    screen = app.run_screen
    await wait_for(pilot, lambda: app.screen is screen and screen.model is not None and screen.model.alive
                   and screen.model.position is not None, CHILD_TIMEOUT)


async def test_quit_leaves_run_going_then_reattach_and_cancel(preset_home: Path, tmp_path: Path,
                                                              one_thread: None) -> None:
    runs_dir = tmp_path / "runs"
    raw = tomllib.loads(FAST_PRESET)
    raw["train"].update(iterations=100000, eval_every=10)
    # started like `lth-tui run` would (any starter will do: the app follows the run dir)
    run_dir = create_run(from_dict(raw), runs_dir, preset="long")
    process = spawn(run_dir)
    try:
        app = LthApp(runs_dir)
        async with app.run_test(size=(80, 24)) as pilot:
            await _reattached(app, pilot)
            assert app.run_screen.model.run_dir == run_dir
            await pilot.press("ctrl+q")
            await wait_for(pilot, lambda: isinstance(app.screen, QuitDialog))
            await pilot.press("enter")  # the default: leave it running
        assert app.return_code == 0
        time.sleep(0.5)
        assert process.poll() is None, "quitting must leave the run going"
        assert read_status(run_dir)["state"] == "running"

        # a new app finds it running, follows it live, and cancels it (after asking)
        app = LthApp(runs_dir)
        async with app.run_test(size=(120, 40)) as pilot:
            await _reattached(app, pilot)
            screen = app.run_screen
            assert screen.model.run_dir == run_dir and app.run_infos[0].state == "running"
            seen = screen.model.position
            await wait_for(pilot, lambda: screen.model.position != seen, 30)  # live events keep coming
            await pilot.press("x")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
            await pilot.press("n")  # no: it keeps running
            await pilot.pause(0.5)
            assert process.poll() is None
            await pilot.press("x")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
            await pilot.press("y")
            await wait_for(pilot, lambda: screen.model.state == "cancelled" and not screen.model.alive, 30)
            assert read_status(run_dir)["state"] == "cancelled"
            assert screen.check_action("resume_run", ()) is True  # resumable
            await pilot.press("ctrl+q")  # nothing live any more: quits without asking
        assert app.return_code == 0
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            request_stop(run_dir)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
