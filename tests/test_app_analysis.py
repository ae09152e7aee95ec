"""Pilot tests of the analysis views: the Run screen's LMC and Overlap tabs (filled from a run
trained here with analysis.lmc = true), the LMC key, a supermask run, the Runs screen's
mask-overlap matrix, and mean ± std with n on the curves."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest
from conftest import wait_for
from safetensors.numpy import load_file
from textual.widgets import DataTable, Input

from lth_tui.app import LthApp
from lth_tui.commands import app_commands
from lth_tui.components.plot import PlotView
from lth_tui.screens.analysis import OverlapMatrixScreen
from lth_tui.screens.dialogs import LmcDialog
from lth_tui.screens.run_tabs.lmc import LmcTab
from lth_tui.screens.runs import CompareScreen


@pytest.fixture
def store(tmp_path: Path, analysis_runs: dict[str, Path]) -> dict[str, Path]:
    """A fresh copy per test (the LMC key writes into the run dir)."""
    runs = tmp_path / "runs"
    runs.mkdir()
    out = {"dir": runs}
    for key, run_dir in analysis_runs.items():
        shutil.copytree(run_dir, runs / run_dir.name)
        out[key] = runs / run_dir.name
    return out


def _jaccard(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> tuple[float, float]:
    inter = union = kept_a = kept_b = total = 0
    for name in a:
        x, y = a[name].astype(bool), b[name].astype(bool)
        inter, union = inter + int((x & y).sum()), union + int((x | y).sum())
        kept_a, kept_b, total = kept_a + int(x.sum()), kept_b + int(y.sum()), total + x.size
    p, q = kept_a / total, kept_b / total
    return inter / union, p * q / (p + q - p * q)


def _mask(run_dir: Path, t: int, r: int) -> dict[str, np.ndarray]:
    return load_file(str(run_dir / f"trial-{t}" / f"round-{r}" / "mask.safetensors"))


def _lmc(run_dir: Path, pattern: str = "lmc.json") -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(run_dir.glob(f"trial-*/round-*/{pattern}"))]


async def _open(app: LthApp, pilot, run_dir: Path, rounds: int = 3) -> None:
    app.open_run(run_dir)
    screen = app.run_screen
    await wait_for(pilot, lambda: app.screen is screen and screen.model is not None and screen.model.run_dir == run_dir
                   and screen.model.state == "done" and len(screen.model.curve()) == rounds, 20)


async def test_lmc_and_overlap_tabs_fill_and_the_lmc_key_adds_a_curve(store: dict[str, Path]) -> None:
    run_dir = store["imp"]
    app = LthApp(store["dir"])
    async with app.run_test(size=(120, 40)) as pilot:
        await _open(app, pilot, run_dir)
        screen = app.run_screen
        await pilot.press("7")
        interp = screen.query_one("#lmc-interp-plot", PlotView)
        await wait_for(pilot, lambda: screen.query_one(LmcTab).records is not None and len(interp.spec.series) == 1)
        # the latest round with a result: round 2, both trials pooled, the barrier in the title
        starts = [rec for rec in _lmc(run_dir) if rec["round"] == 2]
        barriers = [100 * rec["barrier"] for rec in starts]
        spec = interp.spec
        assert spec.title.startswith("Round 2: barrier ")
        assert f"{statistics.fmean(barriers):.2f}±{statistics.stdev(barriers):.2f}%" in spec.title
        assert ("unstable" if not any(r["stable"] for r in starts) else "stable") in spec.title
        series = spec.series[0]
        assert "(n=2)" in series.label and len(series.x) == 21 and series.yerr is not None
        errors = [statistics.fmean(100 * rec["curve"][i]["error"] for rec in starts) for i in range(21)]
        assert series.y == pytest.approx(errors)
        assert "Round 2" in interp.render().plain  # the title is drawn, not dropped for width
        rewind = screen.query_one("#lmc-rewind-plot", PlotView).spec
        assert len(rewind.series) == 1 and rewind.series[0].x == (0.0,)  # round start at the run's k = 0
        barrier = screen.query_one("#lmc-barrier-plot", PlotView).spec
        assert barrier.xlog and len(barrier.series[0].x) == 3 and "n=2" in barrier.series[0].label
        result = json.loads((run_dir / "trial-1" / "round-0" / "result.json").read_text())
        assert barrier.series[0].x[0] == pytest.approx(100.0) and result["lmc_barrier"] >= 0

        # [ ] pick the LMC round on this tab
        await pilot.press("left_square_bracket")
        await wait_for(pilot, lambda: interp.spec.title.startswith("Round 1:"))

        # the overlap view: consecutive rounds per trial and across trials, against numpy
        await pilot.press("8")
        table = screen.query_one("#overlap-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 3)
        columns = [str(c.label) for c in table.columns.values()]
        assert columns == ["round", "wt %", "t1", "t2", "mean±std", "chance", "across", "chance "]
        for r in (1, 2):
            row = [str(c) for c in table.get_row(str(r))]
            for t in (0, 1):
                assert float(row[2 + t]) == pytest.approx(_jaccard(_mask(run_dir, t, r - 1), _mask(run_dir, t, r))[0],
                                                          abs=6e-4)
            jac, chance = _jaccard(_mask(run_dir, 0, r), _mask(run_dir, 1, r))
            assert float(row[6]) == pytest.approx(jac, abs=6e-4) and float(row[7]) == pytest.approx(chance, abs=6e-4)
        assert [str(c) for c in table.get_row("0")][2] == "–"

        # l: the dialog asks for k; k = 0 on round 1 trains two copies from θ0 and adds a curve
        await pilot.press("7", "l")
        await wait_for(pilot, lambda: isinstance(app.screen, LmcDialog))
        dialog = app.screen
        assert dialog.round == 1 and dialog.trials == [0, 1]
        dialog.query_one("#lmc-k", Input).value = "999"
        await pilot.press("enter")
        assert isinstance(app.screen, LmcDialog) and "0..59" in str(dialog.query_one("#lmc-error").render())
        dialog.query_one("#lmc-k", Input).value = "0"
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is screen)
        await wait_for(pilot, lambda: not screen.query_one(LmcTab).busy and len(interp.spec.series) == 2, 60)
        assert "k=0" in interp.spec.series[1].label and "(n=1)" in interp.spec.series[1].label
        (k0,) = _lmc(run_dir, "lmc-k0.json")
        assert k0["round"] == 1 and k0["rewind_iteration"] == 0 and k0["trial"] == 0
        rewind = screen.query_one("#lmc-rewind-plot", PlotView).spec
        assert rewind.series[0].x == (0.0,)  # k = 0 and the round start (the run rewinds to θ0) pool
        await pilot.press("6")
        await wait_for(pilot, lambda: any("from k=0" in line.text for line in screen.query_one("#run-log").lines))


async def test_analysis_tabs_read_at_80x24(store: dict[str, Path]) -> None:
    app = LthApp(store["dir"])
    async with app.run_test(size=(80, 24)) as pilot:
        await _open(app, pilot, store["imp"])
        screen = app.run_screen
        await pilot.press("7")
        interp = screen.query_one("#lmc-interp-plot", PlotView)
        await wait_for(pilot, lambda: len(interp.spec.series) == 1)
        await pilot.pause(0.3)
        for plot_id in ("#lmc-interp-plot", "#lmc-rewind-plot", "#lmc-barrier-plot"):
            view = screen.query_one(plot_id, PlotView)
            width = view.content_size.width
            assert view.spec.title and len(view.spec.title) <= width, (plot_id, view.spec.title, width)
            assert view.spec.title.rstrip("…")[:12] in view.render().plain  # drawn, not dropped
        await pilot.press("8")
        table = screen.query_one("#overlap-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 3)
        assert sum(c.get_render_width(table) for c in table.columns.values()) <= 80
        await pilot.press("3")  # training curves of a finished 2-trial run: mean ± std over trials
        acc = screen.query_one("#acc-plot", PlotView)
        await wait_for(pilot, lambda: acc.spec.series and all("(n=2)" in s.label for s in acc.spec.series))
        assert all(s.yerr is not None for s in acc.spec.series)
        await pilot.press("t")
        await wait_for(pilot, lambda: all("(n=1)" in s.label for s in acc.spec.series))
        sparsity = screen.query_one("#sparsity-plot", PlotView)
        assert "(n=2)" in sparsity.spec.series[0].label and sparsity.spec.series[0].yerr is not None


async def test_a_supermask_run_opens_sensibly(store: dict[str, Path]) -> None:
    run_dir = store["supermask"]
    app = LthApp(store["dir"])
    async with app.run_test(size=(80, 24)) as pilot:
        await _open(app, pilot, run_dir)
        screen = app.run_screen
        sparsity = screen.query_one("#sparsity-plot", PlotView)
        await wait_for(pilot, lambda: len(sparsity.spec.series) == 2)
        expected, sampled = sparsity.spec.series
        results = [json.loads((run_dir / "trial-0" / f"round-{r}" / "result.json").read_text()) for r in range(3)]
        assert "expected" in expected.label and "(n=1)" in expected.label and "sampled" in sampled.label
        assert expected.y == pytest.approx([100 * r["expected_mask_accuracy"] for r in results])
        assert sampled.y == pytest.approx([100 * r["sampled_mask_accuracy"] for r in results])
        assert expected.x == tuple(float(r["iterations"][1]) for r in results)
        progress = str(screen.query_one("#run-progress").render())
        assert "sampled" in progress and "best expected-mask" in progress
        tabs = screen.query_one("#run-tabs")
        assert tabs.get_tab("tab-stop").label_text == "2 Density"
        density = screen.query_one("#stop-plot", PlotView).spec
        assert density.series[0].y == pytest.approx([100 * r["weights_remaining"] for r in results])
        # no IMP-only key or view breaks: LMC is refused with a reason, the rest fills
        assert screen.check_action("lmc", ()) is False and screen.check_action("control", ()) is False
        for key in "12345678":
            await pilot.press(key)
        assert "IMP runs" in str(screen.query_one("#lmc-note").render())
        table = screen.query_one("#overlap-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 3)
        row = [str(c) for c in table.get_row("2")]
        assert float(row[2]) == pytest.approx(_jaccard(_mask(run_dir, 0, 1), _mask(run_dir, 0, 2))[0], abs=6e-4)
        await pilot.press("3")
        acc = screen.query_one("#acc-plot", PlotView)
        await wait_for(pilot, lambda: any("sampled" in s.label for s in acc.spec.series))


async def test_runs_screen_overlap_matrix_and_compare_labels(store: dict[str, Path]) -> None:
    imp, sm = store["imp"], store["supermask"]  # the same MLP, so their masks compare
    app = LthApp(store["dir"])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f4")
        await wait_for(pilot, lambda: app.screen is app.runs_screen and app.runs_screen.listed >= 1)
        runs = app.runs_screen
        assert runs.check_action("overlap", ()) is False  # needs two marked runs
        await pilot.press("a")  # mark all
        await wait_for(pilot, lambda: len(runs.marked) == 2)
        await pilot.press("o")
        await wait_for(pilot, lambda: isinstance(app.screen, OverlapMatrixScreen) and app.screen.result is not None)
        view = app.screen
        assert view.rounds == [0, 1, 2] and view.result["round"] == 2
        order = [i.path for i in runs.infos if i.path in runs.marked]
        assert set(order) == {imp, sm}
        table = view.query_one("#overlap-matrix", DataTable)
        jac, chance = _jaccard(_mask(order[0], 0, 2), _mask(order[1], 0, 2))
        cell = str(table.get_cell("0", "c1"))
        assert cell == f"{jac:.3f} / {chance:.3f}"
        await pilot.press("left_square_bracket")
        await wait_for(pilot, lambda: view.result["round"] == 1)
        jac, _ = _jaccard(_mask(order[0], 0, 1), _mask(order[1], 0, 1))
        assert view.result["matrix"][0][1] == pytest.approx(jac)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is runs)
        # compare: n in every label; the metric cycle offers what some run records
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and len(app.screen.spec.series) == 2)
        labels = {s.label for s in app.screen.spec.series}
        assert any("(n=2)" in label for label in labels)
        assert any(" supermask " in label and label.endswith("(n=1)") for label in labels)  # short id, what differs
        shown = [app.screen.spec.title]
        for _ in range(7):  # the metrics some run records now include test_accuracy_best
            await pilot.press("m")
            await pilot.pause()
            shown.append(app.screen.spec.title)
        assert any(title.startswith("LMC error barrier") for title in shown)
        assert any(title.startswith("sampled-mask accuracy") for title in shown)
        await pilot.press("o")  # the compared runs' mask overlap, from the compare view too
        await wait_for(pilot, lambda: isinstance(app.screen, OverlapMatrixScreen) and app.screen.result is not None)
        assert app.screen.result["runs"] == [p.name for p in order]


def test_palette_has_the_analysis_commands(tmp_path: Path) -> None:
    app = LthApp(tmp_path)
    names = {name for name, _, _ in app_commands(app)}
    assert {"Compute LMC of a round", "Show LMC", "Show mask overlap", "Mask overlap of marked runs"} <= names
