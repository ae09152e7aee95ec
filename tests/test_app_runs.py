"""Pilot tests of the Runs screen and of the Run screen on finished runs (no child process)."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest
import torch
from conftest import FAST_PRESET, wait_for
from textual.widgets import DataTable, OptionList

from engine.config import from_dict, to_toml
from engine.runner import execute
from engine.store import create_run, write_json_atomic
from lth_tui.app import LthApp
from lth_tui.components.heatmap import MaskHeatmap
from lth_tui.components.plot import PlotView
from lth_tui.screens.dialogs import ConfirmDialog, RunPicker
from lth_tui.screens.run_tabs.masks import mask_matrix
from lth_tui.screens.runs import CompareScreen
from lth_tui.viewmodel import RunModel


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two finished fast runs: one trained in this process, and its random-reinit "control" made
    from a copy with lower accuracies (training a second one would only cost time)."""
    store = tmp_path_factory.mktemp("finished")
    raw = tomllib.loads(FAST_PRESET)
    run_dir = create_run(from_dict(raw), store, preset="fast-rewind")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny MLP: more threads only contend on a small box
    try:
        assert execute(run_dir) == "done"
    finally:
        torch.set_num_threads(threads)
    control = store / run_dir.name.replace("fast-rewind", "fast-reinit")
    shutil.copytree(run_dir, control)
    raw["prune"]["mask1"] = "random_reinit"
    (control / "config.toml").write_text(to_toml(from_dict(raw)), encoding="utf-8")
    summary = json.loads((control / "summary.json").read_text())
    summary["run_id"] = control.name
    summary["config"]["prune"]["mask1"] = "random_reinit"
    for point in summary["curve"]:
        point["test_accuracy_mean"] *= 0.9
    for trial in summary["trials"]:
        for record in trial["rounds"]:
            record["test_accuracy_at_early_stop"] *= 0.9
    write_json_atomic(control / "summary.json", summary)
    events = [json.loads(line) for line in (control / "events.jsonl").read_text().splitlines()]
    for event in events:
        if event["event"] == "round_end":
            event["test_accuracy_at_early_stop"] *= 0.9
    (control / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return [run_dir, control]


@pytest.fixture
def store(tmp_path: Path, finished_runs: list[Path]) -> Path:
    """A runs dir with the two finished runs, one never started, and two damaged dirs."""
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    for run_dir in finished_runs:
        shutil.copytree(run_dir, runs_dir / run_dir.name)
    never = create_run(from_dict(tomllib.loads(FAST_PRESET)), runs_dir, preset="never-started")
    status = json.loads((never / "status.json").read_text())
    write_json_atomic(never / "status.json", {**status, "created": status["created"] - 3600})  # an old orphan
    bad_json = runs_dir / "20990101-000000-bad-json-aaaaaa"
    shutil.copytree(finished_runs[0], bad_json)
    (bad_json / "status.json").write_text("{not json", encoding="utf-8")
    no_config = runs_dir / "20990101-000001-no-config-bbbbbb"
    no_config.mkdir()
    write_json_atomic(no_config / "status.json", {"state": "done"})
    return runs_dir


def _row(app: LthApp, run_dir: Path) -> int:
    return app.runs_screen.query_one("#runs-table", DataTable).get_row_index(str(run_dir))


def _cell(app: LthApp, run_dir: Path, column: str) -> str:
    return str(app.runs_screen.query_one("#runs-table", DataTable).get_cell(str(run_dir), column))


async def _open_runs(app: LthApp, pilot) -> None:
    await pilot.press("f4")
    await wait_for(pilot, lambda: app.screen is app.runs_screen and app.runs_screen.listed >= 1)


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
async def test_runs_list_damaged_compare_delete(store: Path, finished_runs: list[Path], size: tuple[int, int]) -> None:
    app = LthApp(store)
    async with app.run_test(size=size) as pilot:
        await _open_runs(app, pilot)
        table = app.runs_screen.query_one("#runs-table", DataTable)
        assert table.row_count == 5
        done = [store / r.name for r in finished_runs]
        for run_dir in done:
            assert _cell(app, run_dir, "state") == "done"
            assert float(_cell(app, run_dir, "best")) > 50
        assert _cell(app, done[0], "criterion") == "large_final"
        # damaged dirs are rows with the reason, not crashes
        bad_json = store / "20990101-000000-bad-json-aaaaaa"
        no_config = store / "20990101-000001-no-config-bbbbbb"
        assert _cell(app, bad_json, "state") == "damaged"
        assert "status.json is damaged" in _cell(app, bad_json, "note")
        assert _cell(app, no_config, "state") == "damaged"
        assert "config.toml is missing" in _cell(app, no_config, "note")
        table.move_cursor(row=_row(app, bad_json))
        await pilot.pause()
        assert "status.json is damaged" in str(app.runs_screen.query_one("#run-detail").render())

        # mark the two finished runs (space) and compare them on one plot
        for run_dir in done:
            table.move_cursor(row=_row(app, run_dir))
            await pilot.press("space")
        assert app.runs_screen.marked == set(done)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and len(app.screen.spec.series) == 2)
        spec = app.screen.spec
        assert spec.xlog and all(len(s.x) == 3 for s in spec.series)
        assert spec.series[0].x[0] == pytest.approx(100.0)
        await pilot.press("m")  # next metric: early-stop iteration
        await wait_for(pilot, lambda: "early-stop" in app.screen.spec.title)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.runs_screen)

        for run_dir in done:  # unmark: d deletes the marked runs when there are any
            table.move_cursor(row=_row(app, run_dir))
            await pilot.press("space")
        assert not app.runs_screen.marked
        # delete asks first; "no" keeps the dir, "yes" removes it
        never = next(i.path for i in app.runs_screen.infos if "never-started" in i.run_id)
        table.move_cursor(row=_row(app, never))
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is app.runs_screen)
        assert never.is_dir()
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_for(pilot, lambda: not never.exists() and table.row_count == 4)


async def test_open_a_finished_run_rebuilds_every_view(store: Path, finished_runs: list[Path]) -> None:
    app = LthApp(store)
    run_dir = store / finished_runs[0].name
    control = store / finished_runs[1].name
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_runs(app, pilot)
        table = app.runs_screen.query_one("#runs-table", DataTable)
        table.move_cursor(row=_row(app, run_dir))
        await pilot.press("enter")
        screen = app.run_screen
        await wait_for(pilot, lambda: app.screen is screen and screen.model is not None and screen.model.state == "done"
                       and len(screen.model.curve()) == 3)
        sparsity = screen.query_one("#sparsity-plot", PlotView)
        await wait_for(pilot, lambda: len(sparsity.spec.series) == 1 and len(sparsity.spec.series[0].x) == 3)
        assert sparsity.spec.xlog and sparsity.spec.series[0].yerr is not None
        assert len(screen.query_one("#stop-plot", PlotView).spec.series) == 1
        layers = screen.query_one("#layer-table", DataTable)
        await wait_for(pilot,
                       lambda: layers.row_count == 3 and len(layers.columns) == 4)  # 2 layers + all; layer, r0..r2
        assert str(layers.get_cell("fc.weight", "r0")) == "100.0"
        assert float(str(layers.get_cell("fc_layers.0.weight", "r2"))) == pytest.approx(64.0, abs=0.1)
        await pilot.press("3")
        assert len(screen.query_one("#loss-plot", PlotView).spec.series) == 2
        assert len(screen.query_one("#acc-plot", PlotView).spec.series) == 2
        await pilot.press("5")
        heat = screen.query_one("#mask-heatmap", MaskHeatmap)
        await wait_for(pilot, lambda: heat.matrix is not None)
        assert heat.matrix.shape == (32, 64)
        assert heat.matrix.mean() == pytest.approx(0.64, abs=0.01)  # the latest round (2) of the first layer
        pixels = screen.query_one("#pixel-heatmap", MaskHeatmap)  # digits are 8×8 images
        assert pixels.matrix is not None and pixels.matrix.shape == (8, 8) and pixels.display
        heat.focus()
        await pilot.press("plus")  # the heatmap's own zoom key
        # another round through the round selector
        screen.query_one("#mask-round").value = 0
        await wait_for(pilot, lambda: heat.matrix is not None and heat.matrix.mean() == 1.0)
        await pilot.press("6")
        assert screen.query_one("#run-log").lines
        # overlay the random-reinit control on the curves: o, pick it from the list
        await pilot.press("1", "o")
        await wait_for(pilot, lambda: isinstance(app.screen, RunPicker))
        picker = app.screen.query_one(OptionList)
        picker.highlighted = next(i for i in range(picker.option_count)
                                  if picker.get_option_at_index(i).id == str(control))
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(sparsity.spec.series) == 2)
        assert "random_reinit" in sparsity.spec.series[1].label
        assert sparsity.spec.series[1].y[1] < sparsity.spec.series[0].y[1]

        # a damaged run opens too, saying why
        app.open_run(store / "20990101-000001-no-config-bbbbbb")
        await wait_for(pilot, lambda: screen.model.opened and screen.model.state == "damaged")
        assert "config.toml is missing" in str(screen.query_one("#run-progress").render())


def test_run_model_merges_a_resumed_round_and_estimates_eta(tmp_path: Path) -> None:
    model = RunModel(tmp_path)
    start = {"event": "run_start", "time": 100.0, "trials": 1, "rounds": 2, "iterations": 100, "device": "cpu"}
    model.apply([start, {"event": "round_start", "time": 100.0, "trial": 0, "round": 0, "weights_remaining": 1.0,
                         "layers": {"a": 1.0}}]
                + [{"event": "eval", "time": 100.0 + i, "trial": 0, "round": 0, "iteration": i, "train_loss": 1.0,
                    "val_loss": 1.0, "val_accuracy": 0.5, "test_loss": 1.0, "test_accuracy": 0.5} for i in (0, 10, 20)])
    assert model.eta() == pytest.approx(180.0)  # 10 iterations a second, 180 left
    # killed, then resumed from the checkpoint at iteration 20: the round's curve continues
    model.apply([{**start, "time": 500.0, "resumed": True}, {"event": "round_start", "time": 500.0, "trial": 0,
                 "round": 0, "weights_remaining": 1.0, "layers": {"a": 1.0}}]
                + [{"event": "eval", "time": 500.0 + i / 5, "trial": 0, "round": 0, "iteration": i, "train_loss": 1.0,
                    "val_loss": 1.0, "val_accuracy": 0.6, "test_loss": 1.0, "test_accuracy": 0.6} for i in (30, 40)])
    assert sorted(model.evals[(0, 0)]) == [0, 10, 20, 30, 40]
    assert model.eta() == pytest.approx(160 / 5)  # the rate since the resume: 5 iterations a second
    model.apply([{"event": "round_end", "time": 600.0, "trial": 0, "round": 0, "weights_remaining": 1.0,
                  "layers": {"a": 1.0}, "early_stop_iteration": 40, "test_accuracy_at_early_stop": 0.6}])
    assert model.curve()[0]["test_accuracy_mean"] == 0.6 and model.curve()[0]["n"] == 1


def test_conv_masks_become_rows_by_fan_in(tmp_path: Path) -> None:
    from engine.store import save_tensors

    mask = torch.ones(4, 2, 3, 3, dtype=torch.bool)
    mask[0] = False
    save_tensors(tmp_path / "trial-0" / "round-1" / "mask.safetensors", {"conv.weight": mask})
    result = mask_matrix(tmp_path, 0, 1, "conv.weight", (8, 8))
    assert result["matrix"].shape == (4, 18) and result["matrix"][0].sum() == 0 and result["matrix"][1:].all()
    assert "4×2×3×3" in result["title"]
    assert result["density"] is None  # a conv kernel has no per-pixel density


def test_run_model_progress_for_batched_trials(tmp_path: Path) -> None:
    """Trials trained together interleave their events: the bar counts what was trained."""
    model = RunModel(tmp_path)
    model.apply([{"event": "run_start", "time": 0.0, "trials": 4, "rounds": 2, "iterations": 100, "device": "cuda",
                  "parallel_trials": True}]
                + [{"event": "round_start", "time": 0.0, "trial": t, "round": 0, "weights_remaining": 1.0, "layers": {}}
                   for t in range(4)]
                + [{"event": "eval", "time": 1.0, "trial": t, "round": 0, "iteration": 50, "train_loss": 1.0,
                    "val_loss": 1.0, "val_accuracy": 0.5, "test_loss": 1.0, "test_accuracy": 0.5} for t in range(4)]
                + [{"event": "round_end", "time": 2.0, "trial": t, "round": 0, "weights_remaining": 1.0, "layers": {},
                    "seconds": 1.0, "batched_seconds": 4.0, "batched_trials": 4} for t in range(4)])
    assert model.fraction_done() == 0.5
    model.state, model.alive = "running", True
    assert "4 trials together · round 0/1" in str(model.progress_text())
    assert "0:01 (its share of 0:04 for 4 trials together)" in str(model.log[-1])
    model.apply([{"event": "warning", "time": 3.0, "message": "train.bf16 on a CPU: slower"}])
    assert str(model.log[-1]) == "warning: train.bf16 on a CPU: slower" and model.log[-1].style == "bold yellow"
