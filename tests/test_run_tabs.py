"""Pilot tests of the Run screen's tab registry (lth_tui/screens/run_tabs): every registered tab
is composed, its number key shows it wherever the focus is (the heatmap, a table), the help
screen and the command palette list what the registry says, and a tab whose worker fails
tells the user instead of crashing the app."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import wait_for
from textual.widgets import DataTable, Static, TabbedContent

from lth_tui.app import LthApp
from lth_tui.commands import app_commands
from lth_tui.components.plot import PlotView
from lth_tui.screens.help import help_sections
from lth_tui.screens.run import RunScreen
from lth_tui.screens.run_tabs import TABS, RunTab, tab_bindings, tab_class
from lth_tui.screens.run_tabs import lmc as lmc_tab
from lth_tui.screens.run_tabs import masks as masks_tab
from lth_tui.screens.run_tabs.lmc import LmcTab
from lth_tui.screens.run_tabs.masks import MasksTab
from lth_tui.screens.run_tabs.overlap import OverlapTab

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def store(tmp_path: Path, analysis_runs: dict[str, Path]) -> dict[str, Path]:
    runs = tmp_path / "runs"
    runs.mkdir()
    out = {"dir": runs}
    for key, run_dir in analysis_runs.items():
        shutil.copytree(run_dir, runs / run_dir.name)
        out[key] = runs / run_dir.name
    return out


async def _open(app: LthApp, pilot, run_dir: Path) -> RunScreen:
    app.open_run(run_dir)
    screen = app.run_screen
    await wait_for(pilot, lambda: app.screen is screen and screen.model is not None and screen.model.state == "done"
                   and len(screen.model.curve()) == 3, 20)
    return screen


def _told(app: LthApp) -> list[str]:
    """Every notification of the app as "title: message", kept (toasts expire after 5 s)."""
    notes: list[str] = []
    real = app.notify

    def notify(message: str, **kw: object) -> None:
        notes.append(f"{kw.get('title', '')}: {message}")
        real(message, **kw)  # type: ignore[arg-type]

    app.notify = notify  # type: ignore[method-assign]
    return notes


def test_the_registry_is_one_list_of_distinct_tabs() -> None:
    assert len({cls.tab_id for cls in TABS}) == len({cls.key for cls in TABS}) == len(TABS) == 8
    assert [cls.key for cls in TABS] == [str(i + 1) for i in range(len(TABS))]
    assert all(issubclass(cls, RunTab) and cls.title and cls.help for cls in TABS)
    assert [cls.tab_id for cls in TABS if cls.needs_analysis] == ["tab-lmc", "tab-overlap"]
    ids = {b.id for b in RunScreen.BINDINGS}
    assert all(cls.binding_id() in ids for cls in TABS)
    assert tab_bindings()[0].tooltip == "1-8: " + ", ".join(cls.title for cls in TABS)
    assert tab_class("tab-masks") is MasksTab
    with pytest.raises(KeyError, match="tab-sparsity"):
        tab_class("tab-nope")


async def test_every_tab_key_shows_its_tab_with_the_focus_in_the_heatmap_or_a_table(store: dict[str, Path]) -> None:
    app = LthApp(store["dir"])
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(app, pilot, store["imp"])
        tabs = screen.query_one("#run-tabs", TabbedContent)
        panes = [pane.id for pane in tabs.query("TabPane")]
        assert panes == [cls.tab_id for cls in TABS]  # composed from the registry, in its order
        assert [str(tabs.get_tab(cls.tab_id).label) for cls in TABS] == [cls.label() for cls in TABS]
        await wait_for(pilot, lambda: screen.query_one(MasksTab).title_shown)
        for focus in ("#mask-heatmap", "#layer-table"):
            for cls in TABS:
                own = tab_class("tab-masks" if focus == "#mask-heatmap" else "tab-layers")
                await pilot.press(own.key)
                await wait_for(pilot, lambda own=own: tabs.active == own.tab_id)
                screen.query_one(focus).focus()
                await pilot.pause()
                assert screen.focused is screen.query_one(focus)
                await pilot.press(cls.key)
                await wait_for(pilot, lambda cls=cls: tabs.active == cls.tab_id)
                assert screen.query_one(cls).is_active


async def test_help_and_palette_list_the_registered_tabs(store: dict[str, Path]) -> None:
    app = LthApp(store["dir"])
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(app, pilot, store["imp"])
        rows = dict(help_sections(app))["Run screen"]
        by_id = {ident: (key, text) for key, text, ident in rows}
        for cls in TABS:
            key, text = by_id[cls.binding_id()]
            assert key == ("1-8" if cls is TABS[0] else cls.key)
            assert cls.title in text or cls.help in text
        commands = {name: callback for name, _, callback in app_commands(app)}
        for cls in TABS:
            if cls.command is None:
                continue
            await pilot.press("1")
            commands[cls.command[0]]()
            await wait_for(pilot, lambda cls=cls: screen.query_one("#run-tabs", TabbedContent).active == cls.tab_id)


async def test_a_failing_mask_read_is_told_not_a_crash(store: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> dict:
        raise OSError("mask.safetensors: truncated")

    monkeypatch.setattr(masks_tab, "mask_matrix", broken)
    app = LthApp(store["dir"])
    notes = _told(app)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(app, pilot, store["imp"])
        await pilot.press("5")
        await wait_for(pilot, lambda: any("load mask failed: mask.safetensors: truncated" in n for n in notes))
        assert app.is_running and screen.query_one(MasksTab).title_shown == ""
        await pilot.press("1")
        assert screen.query_one("#sparsity-plot", PlotView).spec.series  # the rest of the screen still draws


async def test_failing_lmc_and_overlap_reads_are_told_not_a_crash(store: dict[str, Path],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.overlap

    def broken(*args: object) -> None:
        raise ValueError("lmc.json: not JSON")

    def no_masks(*args: object) -> None:
        raise OSError("round-1/mask.safetensors: unreadable")

    monkeypatch.setattr(lmc_tab, "read_lmc_views", broken)
    monkeypatch.setattr(engine.overlap, "run_overlaps", no_masks)
    app = LthApp(store["dir"])
    notes = _told(app)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(app, pilot, store["imp"])
        await pilot.press("7")
        lmc = screen.query_one(LmcTab)
        await wait_for(pilot, lambda: any("read LMC results failed: lmc.json: not JSON" in n for n in notes))
        await wait_for(pilot, lambda: not lmc.loading)
        assert app.is_running and lmc.records is None
        await pilot.press("8")
        overlap = screen.query_one(OverlapTab)
        await wait_for(pilot, lambda: overlap.reads == 1)
        title = str(screen.query_one("#overlap-title", Static).render())
        assert "masks: OSError: round-1/mask.safetensors: unreadable" in title
        assert screen.query_one("#overlap-table", DataTable).row_count == 0


async def test_a_failing_lmc_measurement_is_told_and_the_tab_stays_usable(store: dict[str, Path],
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.lmc

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(engine.lmc, "run_lmc", broken)
    app = LthApp(store["dir"])
    notes = _told(app)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(app, pilot, store["imp"])
        lmc = screen.query_one(LmcTab)
        lmc.start(store["imp"], 1, 0, 0)
        assert lmc.busy == "round 1 trial 1 from k=0"
        await wait_for(pilot, lambda: any("LMC round 1 trial 1 from k=0 failed: out of memory" in n for n in notes))
        await wait_for(pilot, lambda: not lmc.busy and screen.query_one("#run-tabs", TabbedContent).active == "tab-lmc")
        assert app.is_running
        await wait_for(pilot, lambda: len(screen.query_one("#lmc-interp-plot", PlotView).spec.series) == 1)
