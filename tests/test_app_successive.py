"""Pilot tests of the successive-round plots in the Run screen's LMC tab: the shown run's
projected and unprojected barrier and its distances against weights remaining, and the
overlaid run (a control) drawn beside them."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import pytest
from conftest import wait_for

from engine.datasets import load_dataset
from engine.successive import run_successive
from lth_tui.app import LthApp
from lth_tui.components.plot import PlotView

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def store(tmp_path: Path, analysis_runs: dict[str, Path]) -> dict[str, Path]:
    """The session's 2-trial LMC run with successive results added, and a copy as its control."""
    runs = tmp_path / "runs"
    runs.mkdir()
    run_dir = runs / analysis_runs["imp"].name
    shutil.copytree(analysis_runs["imp"], run_dir)
    run_successive(run_dir, data=load_dataset("digits", val_size=300))
    control = runs / (run_dir.name + "-reinit")
    shutil.copytree(run_dir, control)
    return {"dir": runs, "imp": run_dir, "control": control}


async def test_lmc_tab_draws_successive_barrier_and_distance_with_the_overlay(store: dict[str, Path]) -> None:
    run_dir = store["imp"]
    records = [json.loads(p.read_text()) for p in sorted(run_dir.glob("trial-*/round-*/successive.json"))]
    assert sorted({(r["trial"], r["round"]) for r in records}) == [(0, 1), (0, 2), (1, 1), (1, 2)]
    app = LthApp(store["dir"])
    async with app.run_test(size=(160, 50)) as pilot:
        app.open_run(run_dir)
        screen = app.run_screen
        await wait_for(pilot, lambda: screen.model is not None and screen.model.state == "done", 20)
        screen.set_overlay(store["control"])
        await pilot.press("7")
        barrier = screen.query_one("#successive-barrier-plot", PlotView)
        distance = screen.query_one("#successive-distance-plot", PlotView)
        await wait_for(pilot, lambda: len(barrier.spec.series) == 3 and len(distance.spec.series) == 3, 20)
        projected, unprojected, overlay = barrier.spec.series
        assert projected.label == "projected (n=2)" and unprojected.label == "unprojected (n=2)"
        assert overlay.label.endswith("projected (n=2)") and "reinit" in overlay.label
        for r, x, y, y_un in zip((1, 2), projected.x, projected.y, unprojected.y):
            recs = [rec for rec in records if rec["round"] == r]
            assert x == pytest.approx(100 * statistics.fmean(rec["weights_remaining"] for rec in recs))
            assert y == pytest.approx(100 * statistics.fmean(rec["projected"]["barrier"] for rec in recs))
            assert y_un == pytest.approx(100 * statistics.fmean(rec["unprojected"]["barrier"] for rec in recs))
        assert [s.label.split(" (")[0] for s in distance.spec.series][:2] == ["r-1 → r", "from rewind point"]
        l2 = [statistics.fmean(rec["projected"]["l2"] for rec in records if rec["round"] == r) for r in (1, 2)]
        assert list(distance.spec.series[0].y) == pytest.approx(l2)
        assert barrier.spec.xlog and barrier.spec.title.startswith("successive barrier")
