"""Both densities of a round (trainable, non-zero in the forward pass), runs without a hold-out,
and the best test accuracy over training: engine records, exports and the app, each checked
against a computation of our own from the stored tensors."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from conftest import FAST_PRESET, merged, wait_for
from textual.widgets import DataTable

from engine.config import from_dict
from engine.run_index import best_point
from engine.runner import execute
from engine.store import create_run, load_tensors, read_summary
from lth_tui.app import LthApp
from lth_tui.components.plot import PlotView
from lth_tui.export import to_csv, to_json, to_markdown, to_png


def _run(store: Path, preset: str, **sections) -> Path:
    raw = merged(tomllib.loads(FAST_PRESET), **sections)
    run_dir = create_run(from_dict(raw), store, preset=preset)
    assert execute(run_dir) == "done"
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import torch

    store = tmp_path_factory.mktemp("density")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {"freeze": _run(store, "freeze", prune={"mask0": "freeze_init_zero_mask"}),
                "frozen": _run(store, "frozen", prune={"mask0": "freeze_init", "rounds": 1}),
                "nohold": _run(store, "nohold", data={"val_size": 0}, prune={"rounds": 1})}
    finally:
        torch.set_num_threads(threads)


def _expected(run_dir: Path, r: int) -> tuple[float, float, dict[str, float], dict[str, float]]:
    """(trainable, non-zero, per-layer trainable, per-layer non-zero) from the stored mask and start weights:
    a position takes part in the forward pass when it is kept or holds a non-zero value."""
    rdir = run_dir / "trial-0" / f"round-{r}"
    masks = {k: v.numpy().astype(bool) for k, v in load_tensors(rdir / "mask.safetensors").items()}
    start = {k: v.numpy() for k, v in load_tensors(rdir / "start.safetensors").items()}
    final = {k: v.numpy() for k, v in load_tensors(rdir / "final.safetensors").items()}
    live = {k: m | (start[k] != 0) for k, m in masks.items()}
    for k, m in masks.items():  # pruned positions hold their value through training
        assert np.array_equal(start[k][~m], final[k][~m])
    total = sum(m.size for m in masks.values())
    return (sum(m.sum() for m in masks.values()) / total, sum(v.sum() for v in live.values()) / total,
            {k: m.mean() for k, m in masks.items()}, {k: v.mean() for k, v in live.items()})


@pytest.mark.parametrize("name", ["freeze", "frozen", "nohold"])
def test_round_records_carry_both_densities(runs, name):
    run_dir = runs[name]
    summary = read_summary(run_dir)
    records = summary["trials"][0]["rounds"]
    starts = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    starts = {e["round"]: e for e in starts if e["event"] == "round_start"}
    for rec, point in zip(records, summary["curve"]):
        trainable, nonzero, layers, layers_nonzero = _expected(run_dir, rec["round"])
        assert rec["weights_remaining"] == rec["weights_trainable"] == pytest.approx(trainable, abs=1e-12)
        assert rec["weights_nonzero"] == pytest.approx(nonzero, abs=1e-12)
        assert rec["layers"] == pytest.approx(layers, abs=1e-12)
        assert rec["layers_nonzero"] == pytest.approx(layers_nonzero, abs=1e-12)
        assert starts[rec["round"]]["weights_nonzero"] == rec["weights_nonzero"]
        assert point["weights_trainable"] == rec["weights_trainable"]
        assert point["weights_nonzero"] == rec["weights_nonzero"]
        evals = json.loads((run_dir / "trial-0" / f"round-{rec['round']}" / "evals.json").read_text())
        assert rec["test_accuracy_best"] == max(e["test_accuracy"] for e in evals)
        assert point["test_accuracy_best_mean"] == rec["test_accuracy_best"]
    last = records[-1]
    if name == "frozen":  # every pruned weight frozen at its (non-zero) θ0 value: the forward pass is dense
        assert last["weights_nonzero"] == 1.0 and last["weights_trainable"] < 0.9
    elif name == "freeze":  # variant 1 zeroes the pruned weights that shrank: in between
        assert last["weights_trainable"] < last["weights_nonzero"] < 1.0
    else:
        assert last["weights_nonzero"] == last["weights_trainable"]


def test_no_hold_out_has_no_early_stop(runs):
    summary = read_summary(runs["nohold"])
    for rec in summary["trials"][0]["rounds"]:
        assert rec["early_stop_iteration"] is None and rec["val_loss_min"] is None
        assert rec["test_accuracy_at_early_stop"] is None and rec["test_accuracy_final"] > 0.3
    for point in summary["curve"]:
        assert point["test_accuracy_mean"] is None and point["early_stop_iteration_mean"] is None
    evals = json.loads((runs["nohold"] / "trial-0" / "round-0" / "evals.json").read_text())
    assert all(e["val_loss"] is None and e["val_accuracy"] is None for e in evals)
    best = max(summary["curve"], key=lambda p: p["test_accuracy_final_mean"])
    assert best_point(summary) == (best["test_accuracy_final_mean"], best["weights_remaining"])
    md = to_markdown(runs["nohold"])
    assert "no hold-out (data.val_size = 0)" in md
    assert "| 0 | 100.00 | 100.00 | – |" in md  # trainable, non-zero, no early-stop accuracy
    assert to_csv(runs["nohold"]).splitlines()[1].split(",")[4] == ""  # early_stop_iteration empty


def test_exports_show_both_densities(runs, tmp_path):
    run_dir = runs["frozen"]
    rec = read_summary(run_dir)["trials"][0]["rounds"][1]
    md = to_markdown(run_dir)
    assert "| round | weights remaining (trainable) % | non-zero in forward % |" in md
    assert f"| 1 | {100 * rec['weights_remaining']:.2f} | 100.00 |" in md
    assert "Non-zero in the forward pass per layer" in md
    header, *rows = to_csv(run_dir).splitlines()
    columns = header.split(",")
    assert {"weights_trainable", "weights_nonzero", "test_accuracy_best"} <= set(columns)
    assert float(rows[1].split(",")[columns.index("weights_nonzero")]) == 1.0
    data = json.loads(to_json(run_dir))
    assert data["curve"][1]["weights_nonzero"] == 1.0
    to_png([run_dir, runs["nohold"]], tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 1000


async def test_run_screen_shows_the_non_zero_density(runs, tmp_path):
    app = LthApp(runs["frozen"].parent)
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_run(runs["frozen"])
        screen = app.run_screen
        await wait_for(pilot,
                       lambda: app.screen is screen and screen.model is not None and len(screen.model.curve()) == 2)
        sparsity = screen.query_one("#sparsity-plot", PlotView)
        await wait_for(pilot, lambda: len(sparsity.spec.series) == 2)
        trainable, nonzero = sparsity.spec.series
        assert "non-zero % (forward pass)" in nonzero.label and "non-zero" not in trainable.label
        assert nonzero.x == (100.0, 100.0) and trainable.x[1] < 90 and nonzero.y == trainable.y
        layers = screen.query_one("#layer-table", DataTable)
        await wait_for(pilot, lambda: layers.row_count == 3)
        rec = read_summary(runs["frozen"])["trials"][0]["rounds"][1]
        assert str(layers.get_cell("fc.weight", "r0")) == "100.0"  # round 0: both 100%, one number
        first = rec["layers"]["fc_layers.0.weight"]
        assert str(layers.get_cell("fc_layers.0.weight", "r1")) == f"{100 * first:.1f} (nz 100.0)"
        assert str(layers.get_cell("all weights", "r1")) == f"{100 * rec['weights_remaining']:.1f} (nz 100.0)"
        app.open_run(runs["nohold"])  # no hold-out: the sparsity curve draws the final accuracy
        await wait_for(pilot, lambda: screen.model is not None and screen.model.run_dir == runs["nohold"]
                       and len(sparsity.spec.series) == 1 and len(sparsity.spec.series[0].x) == 2)
        finals = [100 * r["test_accuracy_final"] for r in read_summary(runs["nohold"])["trials"][0]["rounds"]]
        assert sparsity.spec.series[0].y == pytest.approx(finals)
        assert sparsity.spec.title.startswith("Test accuracy final (no hold-out) (%)")


async def test_compare_switches_the_density_axis(runs):
    from lth_tui.screens.runs import CompareScreen

    app = LthApp(runs["frozen"].parent)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.screen is app.setup_screen and app.setup_screen.built, 30)
        screen = CompareScreen([runs["frozen"], runs["nohold"]])
        app.push_screen(screen)
        await wait_for(pilot, lambda: app.screen is screen and len(screen.spec.series) == 1, 20)
        # the default metric is the accuracy at early stop, which the no-hold-out run does not have
        frozen = read_summary(runs["frozen"])["curve"]
        assert screen.spec.xlabel == "weights remaining (%)"
        assert screen.spec.series[0].x == pytest.approx(tuple(100 * p["weights_remaining"] for p in frozen))
        await pilot.press("d")
        await wait_for(pilot, lambda: screen.spec.xlabel == "non-zero weights (forward pass) (%)")
        assert screen.spec.series[0].x == (100.0, 100.0)
        await pilot.press("m", "m")  # early-stop iteration, then the final accuracy: both runs
        await wait_for(pilot, lambda: len(screen.spec.series) == 2)
