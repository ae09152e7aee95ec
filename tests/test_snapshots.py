"""Snapshot tests (pytest-textual-snapshot): what every screen, Run tab and dialog looks like at
120×40 and 80×24, compared with the SVGs committed under tests/__snapshots__/test_snapshots/.

A failing snapshot writes snapshot_report.html (the old and new screens side by side). After an
intended change to what a screen shows, look at the report, then regenerate and commit them:

    export PYTHONPATH=$PWD OMP_NUM_THREADS=1
    python -m pytest -q -p no:cacheprovider tests/test_snapshots.py --snapshot-update
    git add tests/__snapshots__/test_snapshots

and look at every changed SVG before committing it (a browser shows them). Snapshots depend on
the exact Textual and pytest-textual-snapshot versions: the [test] extra pins the ones they
were taken with; after raising either, regenerate them.

The runs shown are finished runs committed under tests/fixtures/runs/ (written by
tests/fixtures/make_fixture_runs.py, with their times, host and pids already fixed): nothing
trains here. Every run is copied into tmp_path; the app is started there with relative paths
(runs dir "runs", HOME "home"), so no absolute path of the machine appears on a screen. The
tests reach screens, tabs and dialogs as a user does, by keys (F1-F4, 1-8 for the Run tabs,
the screens' letter keys), and before each screenshot wait until the screen shows what it
should and no "loading"/"reading" placeholder.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Input

from lth_tui.app import LthApp
from lth_tui.screens.setup import SetupScreen

FIXTURE_RUNS = Path(__file__).parent / "fixtures" / "runs"
IMP = "20260101-120000-digits-quick-4a4c7f"  # 2 trials × 3 rounds, LMC measured
SUPERMASK = "20260101-130000-digits-supermask-efa8be"  # 3 rounds of learned-supermask training
SIZES = [pytest.param((120, 40), id="120x40"), pytest.param((80, 24), id="80x24")]
PLACEHOLDERS = ("loading", "reading", "building the panels", "computing", "waiting for", "Traceback", "no run open")
TIMEOUT = 90.0  # generous: a loaded CI box is slow; a wait that fails prints the screen


TEXT = re.compile(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', re.S)


def screen_text(app: Any) -> str:
    """The text on the terminal, line by line, read from the screenshot: what the snapshot shows."""
    rows: dict[float, list[tuple[float, str]]] = {}
    for x, y, text in TEXT.findall(app.export_screenshot()):
        rows.setdefault(float(y), []).append((float(x), html.unescape(re.sub(r"<[^>]+>", "", text))))
    return "\n".join("".join(t for _, t in sorted(rows[y])).replace("\xa0", " ").rstrip() for y in sorted(rows))


async def shows(pilot: Any, *texts: str, hidden: tuple[str, ...] = PLACEHOLDERS,
                also: Callable[[], bool] = lambda: True) -> None:
    """Waits until the screen shows every one of `texts`, none of `hidden`, and `also()` holds."""
    deadline = time.monotonic() + TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        await pilot.pause()
        last = screen_text(pilot.app)
        if all(t in last for t in texts) and not any(h in last for h in hidden) and also():
            await pilot.pause(0.3)  # plots commit on a throttle timer: let the last one land
            return
        await asyncio.sleep(0.25)  # each look exports a screenshot: not too often
    raise AssertionError(f"the screen never showed {texts} without {hidden}:\n{last}")


def make_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setup_panels: bool) -> LthApp:
    """The app over a copy of the fixture runs, started in tmp_path with nothing machine-specific.

    Without `setup_panels` the Setup screen's ~200 fields are never built: styling them is most
    of an app start's CPU time, and the screenshots of the other screens do not show them.
    """
    shutil.copytree(FIXTURE_RUNS, tmp_path / "runs")
    (tmp_path / "home").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", "home")  # relative: the save-preset dialog names the preset dir under it
    for name in ("LTH_TUI_RUNS_DIR", "NO_COLOR", "TEXTUAL_THEME", "TEXTUAL_ANIMATIONS"):
        monkeypatch.delenv(name, raising=False)
    if not setup_panels:
        async def unbuilt(self: SetupScreen) -> None:
            return None

        monkeypatch.setattr(SetupScreen, "build_panels", unbuilt)
    return LthApp("runs")


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LthApp:
    """For the Run and Runs screens and their dialogs."""
    return make_app(tmp_path, monkeypatch, setup_panels=False)


@pytest.fixture
def setup_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LthApp:
    """For the Setup screen and its dialogs."""
    return make_app(tmp_path, monkeypatch, setup_panels=True)


async def open_runs(pilot: Any, rows: int = 2) -> DataTable:
    await pilot.press("f4")
    await shows(pilot, "Runs in runs",
                also=lambda: pilot.app.screen.query_one("#runs-table", DataTable).row_count == rows)
    return pilot.app.screen.query_one("#runs-table", DataTable)


async def open_run(pilot: Any, run_id: str) -> None:
    """F4, down to the run, enter: the Run screen with the run finished and drawn."""
    table = await open_runs(pilot)
    for _ in range(table.get_row_index(str(Path("runs") / run_id))):
        await pilot.press("down")
    await pilot.press("enter")
    await shows(pilot, " done ", run_id, "1 Sparsity", "best")


async def setup_ready(pilot: Any) -> None:
    """Setup with the default preset loaded and its data and model checks passed."""
    await shows(pilot, "digits-quick", "✓ ready",
                also=lambda: pilot.app.setup_screen.built and not pilot.app.screen.query_one("#start-button").disabled)


async def steady_cursor(pilot: Any) -> None:
    """A focused input's cursor blinks: whether a screenshot catches it on or off is timing."""
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause()


# -- Setup, Runs, help ------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_setup(snap_compare: Any, setup_app: LthApp, size: tuple[int, int]) -> None:
    """The Setup screen with its default preset (digits-quick) loaded and checked."""

    assert snap_compare(setup_app, terminal_size=size, run_before=setup_ready)


@pytest.mark.parametrize("size", SIZES)
def test_runs(snap_compare: Any, app: LthApp, size: tuple[int, int]) -> None:
    """The Runs screen listing both fixture runs, the newest highlighted."""
    assert snap_compare(app, terminal_size=size, run_before=open_runs)


@pytest.mark.parametrize("size", SIZES)
def test_help(snap_compare: Any, app: LthApp, size: tuple[int, int]) -> None:
    """F1: the key reference."""

    async def help_(pilot: Any) -> None:
        await open_runs(pilot)  # over the Runs screen (Setup's fields are not built here)
        await pilot.press("f1")
        await shows(pilot, "lth-tui keys", "Everywhere")

    assert snap_compare(app, terminal_size=size, run_before=help_)


# -- the Run screen, tab by tab ---------------------------------------------------------------

IMP_TABS = [
    # key, what the tab must show before the screenshot
    ("1", ("Test accuracy",)),
    ("2", ("Early-stop iteration",)),
    ("3", ("mean ± std over 2 trials", "accuracy (%)")),
    ("4", ("fc_layers.0.weight", "all weights")),
    ("5", ("fc_layers.0.weight r2 t2",)),
    ("6", ("run done",)),
    ("7", ("result(s)",)),
    ("8", ("Mask overlap",)),
]
TAB_NAMES = ("sparsity", "early-stop", "training", "layers", "masks", "log", "lmc", "overlap")


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("key", "texts"), [pytest.param(k, t, id=n) for (k, t), n in zip(IMP_TABS, TAB_NAMES)])
def test_run_tab(snap_compare: Any, app: LthApp, size: tuple[int, int], key: str, texts: tuple[str, ...]) -> None:
    """The finished IMP run (2 trials × 3 rounds) on one Run tab, reached by its number key."""

    async def tab(pilot: Any) -> None:
        await open_run(pilot, IMP)
        await pilot.press(key)
        await shows(pilot, *texts)

    assert snap_compare(app, terminal_size=size, run_before=tab)


SUPERMASK_TABS = [("1", ("supermask: test accuracy",)), ("2", ("Weights remaining (%) in the learned",)),
                  ("7", ("LMC is measured on IMP runs",))]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("key", "texts"), [pytest.param(k, t, id=n) for (k, t), n in
                                            zip(SUPERMASK_TABS, ("accuracy", "density", "lmc"))])
def test_supermask_run_tab(snap_compare: Any, app: LthApp, size: tuple[int, int], key: str,
                           texts: tuple[str, ...]) -> None:
    """The finished supermask run: its tabs that differ from an IMP run's."""

    async def tab(pilot: Any) -> None:
        await open_run(pilot, SUPERMASK)
        await pilot.press(key)
        await shows(pilot, *texts)

    assert snap_compare(app, terminal_size=size, run_before=tab)


# -- dialogs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_dialog_save_preset(snap_compare: Any, setup_app: LthApp, size: tuple[int, int]) -> None:
    """ctrl+s on Setup: the preset name prompt."""

    async def prompt(pilot: Any) -> None:
        await setup_ready(pilot)  # the status line under the dialog says the checks passed
        await pilot.press("ctrl+s")
        await shows(pilot, "Save as preset", "digits-quick-edited")
        await steady_cursor(pilot)

    assert snap_compare(setup_app, terminal_size=size, run_before=prompt)


@pytest.mark.parametrize("size", SIZES)
def test_dialog_export(snap_compare: Any, app: LthApp, size: tuple[int, int]) -> None:
    """e on the Run screen: format and file, defaulting into the run dir."""

    async def export(pilot: Any) -> None:
        await open_run(pilot, IMP)
        await pilot.press("e")
        await shows(pilot, f"Export {IMP}", "export.md")

    assert snap_compare(app, terminal_size=size, run_before=export)


@pytest.mark.parametrize("size", SIZES)
def test_dialog_pick_run(snap_compare: Any, app: LthApp, size: tuple[int, int]) -> None:
    """o on the Run screen: pick a run to overlay (the other fixture run)."""

    async def pick(pilot: Any) -> None:
        await open_run(pilot, IMP)
        await pilot.press("o")
        await shows(pilot, "Overlay a run on the curves", "(no overlay)", "0101-130000-efa8be  digits-supermask")

    assert snap_compare(app, terminal_size=size, run_before=pick)


@pytest.mark.parametrize("size", SIZES)
def test_dialog_lmc(snap_compare: Any, app: LthApp, size: tuple[int, int]) -> None:
    """l on the Run screen: the rewind point (and trial) of an LMC measurement."""

    async def lmc(pilot: Any) -> None:
        await open_run(pilot, IMP)
        await pilot.press("l")
        await shows(pilot, "LMC of round 2", "Rewind iteration k")
        await steady_cursor(pilot)

    assert snap_compare(app, terminal_size=size, run_before=lmc)


@pytest.mark.parametrize("size", SIZES)
def test_dialog_delete(snap_compare: Any, app: LthApp, size: tuple[int, int]) -> None:
    """d on the Runs screen: the confirm that names the run to delete."""

    async def delete(pilot: Any) -> None:
        await open_runs(pilot)
        await pilot.press("d")
        await shows(pilot, "Delete run", SUPERMASK)

    assert snap_compare(app, terminal_size=size, run_before=delete)


@pytest.mark.parametrize("size", SIZES)
def test_dialog_cancel(snap_compare: Any, app: LthApp, size: tuple[int, int]) -> None:
    """x on the Runs screen on a run whose runner went silent ("lost"): the cancel confirm."""
    status_path = Path("runs") / SUPERMASK / "status.json"
    status = json.loads(status_path.read_text(encoding="utf-8"))
    stale = {"time": status["created"], "host": "fixture-host", "pid": 4242, "pid_start": 1}
    status.update(state="running", pid=4242, heartbeat=stale)
    status_path.write_text(json.dumps(status), encoding="utf-8")

    async def cancel(pilot: Any) -> None:
        await open_runs(pilot)
        await shows(pilot, "lost")
        await pilot.press("x")
        await shows(pilot, "Cancel run", f"Stop {SUPERMASK}?")

    assert snap_compare(app, terminal_size=size, run_before=cancel)
