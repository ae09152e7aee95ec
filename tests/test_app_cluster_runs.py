"""The Runs screen on runs a cluster is training: where each run is, followed over the shared runs dir."""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path

import pytest
from conftest import FAST_PRESET, wait_for
from textual.widgets import DataTable

from engine.config import from_dict
from engine.store import create_run, write_json_atomic
from lth_tui.app import LthApp


@pytest.fixture
def cluster_store(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    """A runs dir with a run a Ray sweep put on another node, one on a node that died ten minutes
    ago, and one started on its own here."""
    runs = tmp_path / "runs"
    config = from_dict(tomllib.loads(FAST_PRESET))
    remote = create_run(config, runs, preset="on-ray")
    status = json.loads((remote / "status.json").read_text())
    now = time.time()
    status.update(state="running", pid=4242, host="gpu-node-7", backend="ray", node="gpu-node-7",
                  ray_task_id="c8ef45ccd0112571ffffffffffffffffffffffff01000000", cuda_visible_devices="1",
                  heartbeat={"time": now - 5, "host": "gpu-node-7", "pid": 4242, "pid_start": 123}, runner_start=123)
    write_json_atomic(remote / "status.json", status)
    gone = create_run(config, runs, preset="node-died")
    status = json.loads((gone / "status.json").read_text())
    status.update(state="running", pid=4343, host="gpu-node-8", backend="ray", node="gpu-node-8",
                  heartbeat={"time": now - 600, "host": "gpu-node-8", "pid": 4343, "pid_start": 77}, runner_start=77)
    write_json_atomic(gone / "status.json", status)
    here = create_run(config, runs, preset="on-its-own")
    status = json.loads((here / "status.json").read_text())
    status.update(state="cancelled", pid=None)
    write_json_atomic(here / "status.json", status)
    return runs, remote, gone, here


async def test_runs_show_the_node_and_backend_of_each_run_and_mark_lost_ones(cluster_store) -> None:
    import socket

    runs, remote, gone, here = cluster_store
    app = LthApp(runs)
    async with app.run_test(size=(140, 30)) as pilot:
        await pilot.press("f4")
        await wait_for(pilot, lambda: app.screen is app.runs_screen and app.runs_screen.listed >= 1)
        table = app.runs_screen.query_one("#runs-table", DataTable)
        assert str(table.get_cell(str(remote), "node")) == "gpu-node-7 (ray)"
        assert str(table.get_cell(str(here), "node")) == socket.gethostname()
        assert str(table.get_cell(str(remote), "state")) == "running"  # a fresh heartbeat from the other node
        assert str(table.get_cell(str(gone), "state")) == "lost"  # no heartbeat for ten minutes
        assert str(table.get_cell(str(gone), "node")) == "gpu-node-8 (ray)"
        table.move_cursor(row=table.get_row_index(str(remote)))
        await pilot.pause()
        assert "on gpu-node-7 (ray sweep)" in str(app.runs_screen.query_one("#run-detail").render())
