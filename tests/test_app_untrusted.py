"""Pilot tests: the Runs and Run screens over damaged, foreign and lost run dirs.

A damaged dir is a row saying which file and why, the other runs are listed as usual, and
opening a damaged run shows the reason instead of a blank or crashed screen.
"""

from __future__ import annotations

import json
import shutil
import time
import tomllib
from pathlib import Path

import pytest
import torch
from conftest import FAST_PRESET, wait_for
from textual.widgets import DataTable

from engine.config import from_dict
from engine.runner import execute
from engine.store import create_run, write_json_atomic
from lth_tui.app import LthApp


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = tomllib.loads(FAST_PRESET)
    raw["train"].update(iterations=20, eval_every=10)
    raw["prune"]["rounds"] = 1
    run_dir = create_run(from_dict(raw), tmp_path_factory.mktemp("app-untrusted"), preset="tiny")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert execute(run_dir) == "done"
    finally:
        torch.set_num_threads(threads)
    return run_dir


@pytest.fixture
def store(tmp_path: Path, finished: Path) -> dict[str, Path]:
    runs = tmp_path / "runs"
    runs.mkdir()
    dirs = {name: runs / f"2099010{i}-000000-{name}-abcdef"
            for i, name in enumerate(("healthy", "types", "shape", "lost", "events", "symlink"))}
    for path in dirs.values():
        shutil.copytree(finished, path)
    status = json.loads((finished / "status.json").read_text())
    write_json_atomic(dirs["types"] / "status.json", {**status, "pid": "abc", "created": "yesterday"})
    write_json_atomic(dirs["shape"] / "summary.json", {"trials": [1, "a"], "curve": [1, 2]})
    write_json_atomic(dirs["lost"] / "status.json", {**status, "state": "running", "host": "gone-node", "pid": 4242,
                                                     "heartbeat": {"time": time.time() - 3600, "host": "gone-node",
                                                                   "pid": 4242, "pid_start": 1}})
    (dirs["events"] / "events.jsonl").write_bytes(b'\x00garbage\n{"event": "eval", "trial": "x", "round": 0}\n[1]\n')
    victim = tmp_path / "victim.json"
    victim.write_text(json.dumps(status))
    (dirs["symlink"] / "status.json").unlink()
    (dirs["symlink"] / "status.json").symlink_to(victim)
    dirs["runs"] = runs
    return dirs


def _cell(app: LthApp, run_dir: Path, column: str) -> str:
    return str(app.runs_screen.query_one("#runs-table", DataTable).get_cell(str(run_dir), column))


async def test_runs_screen_lists_damaged_and_lost_dirs_with_reasons_and_the_others_as_usual(store) -> None:
    app = LthApp(store["runs"])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f4")
        await wait_for(pilot, lambda: app.screen is app.runs_screen and app.runs_screen.listed >= 1)
        table = app.runs_screen.query_one("#runs-table", DataTable)
        assert table.row_count == 6
        assert _cell(app, store["healthy"], "state") == "done" and float(_cell(app, store["healthy"], "best")) > 10
        assert _cell(app, store["events"], "state") == "done"  # events.jsonl is not read for the list
        assert _cell(app, store["types"], "state") == "damaged"
        assert "status.json is damaged: pid must be an integer" in _cell(app, store["types"], "note")
        assert _cell(app, store["shape"], "state") == "damaged"
        assert "summary.json is damaged: trials[0] must be an object" in _cell(app, store["shape"], "note")
        assert _cell(app, store["symlink"], "state") == "damaged"
        assert "symlink" in _cell(app, store["symlink"], "note")
        assert _cell(app, store["lost"], "state") == "lost"
        assert "no heartbeat from gone-node" in _cell(app, store["lost"], "note")
        table.move_cursor(row=table.get_row_index(str(store["lost"])))
        await pilot.pause()
        assert app.runs_screen.check_action("resume", ()) and app.runs_screen.check_action("cancel_run", ())


async def test_run_screen_opens_damaged_lost_and_garbled_runs(store) -> None:
    app = LthApp(store["runs"])
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.run_screen
        app.open_run(store["shape"])
        await wait_for(pilot,
                       lambda: screen.model is not None and screen.model.opened and screen.model.state == "damaged")
        assert "summary.json is damaged" in str(screen.query_one("#run-progress").render())
        app.open_run(store["types"])
        await wait_for(pilot, lambda: screen.model.run_dir == store["types"] and screen.model.opened
                       and screen.model.state == "damaged")
        assert "pid must be an integer" in str(screen.query_one("#run-progress").render())
        app.open_run(store["events"])  # bad event lines are skipped; the summary still draws the curve
        await wait_for(pilot, lambda: screen.model.run_dir == store["events"] and screen.model.opened
                       and len(screen.model.curve()) == 2)
        assert screen.model.state == "done"
        app.open_run(store["lost"])
        await wait_for(pilot, lambda: screen.model.run_dir == store["lost"] and screen.model.state == "lost")
        assert "lost" in str(screen.query_one("#run-progress").render())
        assert screen.check_action("resume_run", ()) and screen.check_action("cancel_run", ())
