"""Runs: every run in the store — open, compare, mask overlap, export, resume, cancel, delete.

The list is read by `engine.run_index.list_runs` in this screen's worker every 2 s while the screen
is shown (and on F5); a damaged run dir is a row in state "damaged" with its reason, never a
crash. Reading, deleting and exporting run in the screens' own workers and come back as their
messages; resuming and cancelling are the app's (it owns the runner processes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from lth_tui.components.footer import LthFooter
from lth_tui.components.plot import PlotSpec, PlotView, Series
from lth_tui.guards import RESUMABLE
from lth_tui.run_ids import short_id
from lth_tui.run_labels import run_labels
from lth_tui.screens.export_flow import ExportFlow, tell_failure

REFRESH_SECONDS = 2.0
STATE_STYLES = {"running": "bold green", "done": "cyan", "failed": "bold red", "cancelled": "yellow",
                "interrupted": "bold yellow", "damaged": "bold red", "queued": "dim", "lost": "bold magenta"}
METRICS = (
    ("test_accuracy", "test accuracy at early stop (%)", 100.0),
    ("early_stop_iteration", "early-stop iteration", 1.0),
    ("test_accuracy_final", "final test accuracy (%)", 100.0),
    ("supermask_accuracy", "supermask accuracy (%)", 100.0),
    ("test_accuracy_best", "best test accuracy over training (%)", 100.0),
    # only some runs record these (mask training, the LMC option); the compare view skips a
    # metric none of the compared runs has
    ("expected_mask_accuracy", "expected-mask accuracy (%)", 100.0),
    ("sampled_mask_accuracy", "sampled-mask accuracy (%)", 100.0),
    ("lmc_barrier", "LMC error barrier (%)", 100.0),
    ("successive_barrier", "successive-round barrier (%)", 100.0),
)
COLORS = ("#56b4e9", "#e69f00", "#009e73", "#cc79a7", "#f0e442", "#d55e00", "#aaaaaa")


class RunsScreen(ExportFlow, Screen):
    """The runs table with a detail line for the highlighted run."""

    BINDINGS = [
        Binding("enter", "open_run", "Open", id="runs.open", show=True),
        Binding("space", "toggle_mark", "Mark", id="runs.mark", tooltip="Mark: select the run for compare / export"),
        Binding("c", "compare", "Compare", id="runs.compare",
                tooltip="Compare the marked runs (or the highlighted one) on one plot"),
        Binding("o", "overlap", "Overlap", id="runs.overlap",
                tooltip="Overlap: Jaccard overlap matrix of the marked runs' masks at a chosen round "
                        "(e.g. the criteria of a sweep)"),
        Binding("g", "group", "Group", id="runs.group",
                tooltip="Group: the highlighted run's sweep as a stability study (instability vs the swept value)"),
        Binding("e", "export", "Export", id="runs.export",
                tooltip="Export the marked runs (png: one plot) or the highlighted one: md, json, csv, png"),
        Binding("r", "resume", "Resume", id="runs.resume", tooltip="Resume a cancelled, interrupted or failed run"),
        Binding("x", "cancel_run", "Cancel run", id="runs.cancel", tooltip="Cancel run: stop a live run after asking"),
        Binding("d", "delete", "Delete", id="runs.delete",
                tooltip="Delete the marked runs (or the highlighted one) after one confirm listing them; "
                        "refused while running"),
        Binding("home", "cursor('first')", "First", show=False, priority=True, id="runs.first"),
        Binding("end", "cursor('last')", "Last", show=False, priority=True, id="runs.last"),
        Binding("f5", "refresh", "Refresh", id="runs.refresh",
                tooltip="Refresh: re-read the runs dir (also every 2 s)"),
        Binding("a", "mark_all", "Mark all", show=False, id="runs.mark_all", tooltip="Mark all / none"),
    ]

    @dataclass
    class Listed(Message):
        infos: list[Any]

    @dataclass
    class Deleted(Message):
        paths: list[Path]

    @dataclass
    class Failed(Message):
        """A worker of this screen failed: told, and the screen stays usable."""

        what: str
        error: BaseException

    def __init__(self) -> None:
        super().__init__(id="runs")
        self.infos: list[Any] = []
        self.marked: set[Path] = set()
        self._columns_for: str = ""
        self.listed = 0  # how many times the list was refreshed (tests wait on it)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="runs-title")
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="run-detail")
        yield LthFooter()

    def on_mount(self) -> None:
        self.set_interval(REFRESH_SECONDS, self._tick)

    def on_screen_resume(self) -> None:
        self.action_refresh()

    def _tick(self) -> None:
        if self.app.screen is self:
            self.action_refresh()

    def action_refresh(self) -> None:
        self._list_runs()

    @work(thread=True, group="runs-list", exclusive=True, exit_on_error=False)
    def _list_runs(self) -> None:
        from lth_tui.store_tasks import read_run_infos

        try:
            self.post_message(self.Listed(read_run_infos(self.app.runs_dir)))
        except Exception as exc:  # noqa: BLE001 - told; the screen stays usable
            self.post_message(self.Failed("list runs", exc))

    @work(thread=True, group="delete", exit_on_error=False)
    def _delete_runs(self, run_dirs: list[Path]) -> None:
        from lth_tui.store_tasks import delete_runs

        try:
            self.post_message(self.Deleted(delete_runs(run_dirs)))
        except Exception as exc:  # noqa: BLE001
            self.post_message(self.Failed("delete runs", exc))

    @on(Listed)
    def _listed(self, message: Listed) -> None:
        self.app.run_infos = message.infos
        self.show_runs(message.infos)

    @on(Deleted)
    def _deleted(self, message: Deleted) -> None:
        paths = message.paths
        self.app.notify(f"deleted {paths[0].name}" if len(paths) == 1 else f"deleted {len(paths)} runs",
                        title="runs deleted")
        for path in paths:
            self.app.run_screen.clear_run(path)
        self.marked -= set(paths)
        self.action_refresh()

    @on(Failed)
    def _failed(self, message: Failed) -> None:
        tell_failure(self.app, message.what, message.error)

    # -- table -------------------------------------------------------------------------------

    def show_runs(self, infos: list[Any]) -> None:
        if not self.query("#runs-table"):  # not composed yet (reading is quick), or being torn down
            if self.is_attached and not self._closing:
                self.call_after_refresh(self.show_runs, infos)
            return
        self.listed += 1
        self.infos = infos
        paths = {i.path for i in infos}
        self.marked &= paths
        tables = self.query("#runs-table")
        if not tables:  # a refresh that finished while the app was closing: nothing left to fill
            return
        table = tables.first(DataTable)
        wide = self.size.width >= 110
        layout = "wide" if wide else "narrow"
        keep = None
        if table.row_count and table.cursor_row is not None and 0 <= table.cursor_row < table.row_count:
            keep = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        if layout != self._columns_for:
            table.clear(columns=True)
            for label, key in self._columns(wide):
                table.add_column(label, key=key)
            self._columns_for = layout
        else:
            table.clear()
        for info in infos:
            table.add_row(*self._cells(info, wide), key=str(info.path))
        if keep is not None and keep in {str(p) for p in paths}:
            table.move_cursor(row=table.get_row_index(keep), animate=False)
        self.query_one("#runs-title", Static).update(
            Text.assemble(("Runs in ", "dim"), (str(self.app.runs_dir), "bold"),
                          (f"   {len(infos)} run(s)" + (f", {len(self.marked)} marked" if self.marked else ""), "dim")))
        self._show_detail()

    @staticmethod
    def _columns(wide: bool) -> list[tuple[str, str]]:
        """At 80 columns the preset moves to the detail line, so the figures stay on screen."""
        columns = [("✓", "mark"), ("run", "run"), ("state", "state")]
        if wide:
            columns.append(("preset", "preset"))
        columns += [("criterion", "criterion"), ("mask-1", "mask1"), ("mask-0", "mask0"), ("best %", "best"),
                    ("@ weights %" if wide else "@ wt %", "at"), ("rounds" if wide else "rnd", "rounds")]
        if wide:
            columns.append(("node", "node"))
        columns.append(("note", "note"))
        return columns

    def _cells(self, info: Any, wide: bool) -> list[Any]:
        limit = 24 if wide else 11
        acc = "" if info.best_accuracy is None else f"{100 * info.best_accuracy:.2f}"
        at = "" if info.best_weights_remaining is None else f"{100 * info.best_weights_remaining:.1f}"
        note = info.error or (f"group {info.group}" if info.group else "")
        note = " ".join(note.split())  # one line, whatever a damaged file put in it
        cells = {
            "mark": Text("●", style="bold magenta") if info.path in self.marked else "",
            "run": short_id(info.run_id),  # the whole id is on the detail line below
            "state": Text(info.state, style=STATE_STYLES.get(info.state, "")),
            "preset": _trunc(info.preset, limit),
            "criterion": _trunc(info.criterion, limit),
            "mask1": _trunc(info.mask1, limit),
            "mask0": _trunc(info.mask0, limit),
            "best": Text(acc, justify="right"),
            "at": Text(at, justify="right"),
            "rounds": Text(str(info.rounds_done), justify="right"),
            "node": _trunc(f"{info.node} ({info.backend})" if info.backend == "ray" else info.node, 24),
            "note": Text(_trunc(note, 80), style="red" if info.state in ("damaged", "failed") else "dim"),
        }
        return [cells[key] for _, key in self._columns(wide)]

    def on_resize(self, event: Any) -> None:
        if self.infos:
            self.show_runs(self.infos)

    def highlighted(self) -> Any | None:
        table = self.query_one("#runs-table", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        return next((i for i in self.infos if str(i.path) == key), None)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_run()

    def _show_detail(self) -> None:
        info = self.highlighted()
        detail = self.query_one("#run-detail", Static)
        if info is None:
            detail.update(Text("No runs yet: start one from Setup (F2), or run `lth-tui run PRESET`.", style="dim"))
            return
        text = Text.assemble((info.run_id, "bold"), "  ", (info.state, STATE_STYLES.get(info.state, "")))
        if info.preset:
            text.append(f"  preset {info.preset}", style="dim")
        if info.best_accuracy is not None:
            text.append(f"  best {100 * info.best_accuracy:.2f}% at {100 * info.best_weights_remaining:.1f}% weights")
        if info.node:
            text.append(f"  on {info.node}" + (f" ({info.backend} sweep)" if info.backend else ""), style="dim")
        text.append(f"\n{info.path}", style="dim")
        if info.error:
            text.append(f"\n{info.error}", style="red")
        detail.update(text)
        self.refresh_bindings()

    # -- actions -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        info = self.highlighted() if self.is_mounted else None
        if action in ("open_run", "toggle_mark", "export"):
            return info is not None
        if action == "delete":
            return bool(self.marked) or (info is not None and info.state != "running")
        if action == "resume":
            return info is not None and info.state in RESUMABLE
        if action == "cancel_run":
            return info is not None and info.state in ("running", "queued", "lost")
        if action == "compare":
            return bool(self.marked) or info is not None
        if action == "overlap":
            return len(self.marked) >= 2
        if action == "group":
            return info is not None and bool(info.group)
        return True

    def action_group(self) -> None:
        from lth_tui.screens.group import GroupScreen
        from lth_tui.sweeps import find_group

        info = self.highlighted()
        folder = find_group(info.group, self.app.runs_dir) if info is not None and info.group else None
        if folder is None:
            self.app.notify("this run's sweep group folder is not in the runs dir", severity="warning")
            return
        self.app.push_screen(GroupScreen(folder))

    def action_open_run(self) -> None:
        info = self.highlighted()
        if info is None:
            return
        if info.state == "damaged":
            self.app.notify(f"{info.run_id} is damaged: {info.error}", severity="warning")
        self.app.open_run(info.path)

    def action_toggle_mark(self) -> None:
        info = self.highlighted()
        if info is None:
            return
        self.marked ^= {info.path}
        table = self.query_one("#runs-table", DataTable)
        table.update_cell(str(info.path), "mark", Text("●", style="bold magenta") if info.path in self.marked else "")
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1)
        self.show_runs(self.infos)

    def action_mark_all(self) -> None:
        everything = {i.path for i in self.infos if i.state != "damaged"}
        self.marked = set() if self.marked >= everything else everything
        self.show_runs(self.infos)

    def selection(self) -> list[Path]:
        """Marked runs in list order, else the highlighted one."""
        if self.marked:
            return [i.path for i in self.infos if i.path in self.marked]
        info = self.highlighted()
        return [info.path] if info is not None else []

    def action_compare(self) -> None:
        runs = self.selection()
        if not runs:
            return
        self.app.push_screen(CompareScreen(runs))

    def action_overlap(self) -> None:
        """The mask-overlap matrix of the marked runs (two or more) at a round picked in the view."""
        from lth_tui.screens.analysis import OverlapMatrixScreen

        runs = [i for i in self.infos if i.path in self.marked]
        if len(runs) < 2:
            self.app.notify("mark two or more runs (space) to compare their masks", severity="warning")
            return
        self.app.push_screen(OverlapMatrixScreen([i.path for i in runs], overlap_labels(runs)))

    def action_export(self) -> None:
        runs = self.selection()
        if runs:
            self.export_dialog(runs)

    def action_resume(self) -> None:
        info = self.highlighted()
        if info is not None:
            self.app.resume_run(info.path)

    def action_cancel_run(self) -> None:
        info = self.highlighted()
        if info is not None:
            self.app.confirm_cancel(info.path)

    def action_delete(self) -> None:
        """Deletes runs after one confirm that lists them; none is deleted while one is running."""
        from lth_tui.screens.dialogs import ConfirmDialog

        run_dirs = self.selection()
        if not run_dirs:
            return
        states = {i.path: i.state for i in self.infos}
        running = [d.name for d in run_dirs if states.get(d) == "running"]
        if running:
            self.app.notify(f"{', '.join(running)} running; cancel first (x)", title="nothing deleted",
                            severity="warning")
            return
        more = f"\n  … and {len(run_dirs) - 8} more" if len(run_dirs) > 8 else ""
        names = "\n".join(f"  • {d.name}" for d in run_dirs[:8]) + more
        what = ("this run and every file in it" if len(run_dirs) == 1
                else f"these {len(run_dirs)} runs and every file in them")
        self.app.push_screen(ConfirmDialog("Delete runs" if len(run_dirs) > 1 else "Delete run",
                                           f"Delete {what}?\n{names}\nin {self.app.runs_dir}",
                                           yes="Delete"), lambda yes: self._delete_runs(run_dirs) if yes else None)

    def action_cursor(self, where: str) -> None:
        table = self.query_one("#runs-table", DataTable)
        if table.row_count:
            table.move_cursor(row=0 if where == "first" else table.row_count - 1, animate=False)


def _trunc(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def overlap_labels(infos: list[Any]) -> list[str]:
    """The runs' legend names (a short unique id plus what differs), cut for the matrix's rows."""
    return [_trunc(name, 40) for name in run_labels([(i.run_id, i.config) for i in infos])]


def _config_dict(summary: dict[str, Any] | None) -> dict[str, Any]:
    config = (summary or {}).get("config")
    return config if isinstance(config, dict) else {}


def compare_series(summaries: list[tuple[Path, dict[str, Any] | None]], metric: str, scale: float,
                   density: str = "weights_remaining") -> tuple[Series, ...]:
    """One series per run with a curve: x = % weights remaining (or `density`, e.g. weights_nonzero,
    where a run records it), y = the metric's mean ± std over trials, n (the trials behind the points) in the label."""
    out = []
    names = run_labels([(path.name, _config_dict(summary)) for path, summary in summaries])
    for index, ((_, summary), label) in enumerate(zip(summaries, names)):
        points = [p for p in (summary or {}).get("curve", []) if p.get(f"{metric}_mean") is not None]
        if not points:
            continue
        counts = [int(p.get(f"{metric}_n", p.get("n", 1)) or 0) for p in points]
        lo, hi = min(counts), max(counts)
        label += f" (n={lo})" if lo == hi else f" (n={lo}–{hi})"
        out.append(Series(label, x=tuple(100 * p.get(density, p["weights_remaining"]) for p in points),
                          y=tuple(scale * p[f"{metric}_mean"] for p in points),
                          yerr=tuple(scale * (p.get(f"{metric}_std") or 0.0) for p in points),
                          color=COLORS[index % len(COLORS)]))
    return tuple(out)


class CompareScreen(ExportFlow, Screen):
    """Several runs on one plot; m cycles the metric, e exports them as one PNG."""

    @dataclass
    class Loaded(Message):
        """(run dir, summary or None, problem) per compared run."""

        summaries: list[tuple[Path, dict[str, Any] | None, str]]

    @dataclass
    class Failed(Message):
        what: str
        error: BaseException

    BINDINGS = [
        Binding("escape", "close", "Back", id="compare.back"),
        Binding("m", "metric", "Metric", id="compare.metric"),
        Binding("d", "density", "Density axis", id="compare.density",
                tooltip="Density axis: weights remaining (trainable) or non-zero in the forward pass (they differ "
                        "under the freezing mask-0 actions)"),
        Binding("o", "overlap", "Mask overlap", id="compare.overlap",
                tooltip="Mask overlap: Jaccard matrix of these runs' masks at a chosen round"),
        Binding("e", "export", "Export PNG", id="compare.export"),
        Binding("f5", "reload", "Reload", id="compare.reload"),
    ]

    def __init__(self, run_dirs: list[Path]) -> None:
        super().__init__(id="compare")
        self.run_dirs = list(run_dirs)
        self.summaries: list[tuple[Path, dict[str, Any] | None]] = []
        self.metric = 0
        self.density = "weights_remaining"  # or "weights_nonzero" (engine/density.py)

    def compose(self) -> ComposeResult:
        yield Header()
        yield PlotView(PlotSpec(empty_message="reading summaries…"), id="compare-plot")
        yield Static("", id="compare-legend")
        yield LthFooter()

    def on_mount(self) -> None:
        self.action_reload()
        self.set_interval(5.0, self._tick)

    def _tick(self) -> None:
        """Live runs grow a point per round: re-read while shown."""
        if self.app.screen is self and any(i.state == "running" for i in self.app.run_infos if i.path in self.run_dirs):
            self.action_reload()

    def action_reload(self) -> None:
        self._read_summaries()

    @work(thread=True, group="summaries", exit_on_error=False)
    def _read_summaries(self) -> None:
        from lth_tui.store_tasks import read_summaries

        try:
            self.post_message(self.Loaded(read_summaries(self.run_dirs)))
        except Exception as exc:  # noqa: BLE001 - told; the view stays usable
            self.post_message(self.Failed("read summaries", exc))

    @on(Failed)
    def _failed(self, message: Failed) -> None:
        tell_failure(self.app, message.what, message.error)

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        summaries = message.summaries
        self.summaries = [(p, s) for p, s, _ in summaries]
        problems = [f"{p.name}: {e}" for p, _, e in summaries if e]
        legend = self.query_one("#compare-legend", Static)
        text = Text(f"{len(self.run_dirs)} run(s) · m: next metric · d: density axis · o: mask overlap · "
                    "e: export PNG · esc: back",
                    style="dim")
        if problems:
            text.append("\n" + "; ".join(problems), style="red")
        legend.update(text)
        self._draw()

    def metrics(self) -> list[int]:
        """Indices of METRICS some compared run records (the first four always)."""
        have = {k for _, s in self.summaries for p in (s or {}).get("curve", []) for k in p}
        return [i for i, (key, _, _) in enumerate(METRICS) if i < 4 or f"{key}_mean" in have]

    def _draw(self) -> None:
        key, label, scale = METRICS[self.metric]
        axis = "weights remaining" if self.density == "weights_remaining" else "non-zero weights (forward pass)"
        self.query_one("#compare-plot", PlotView).set_plot(PlotSpec(
            # a short y label: plotext's bottom row holds both labels and a long one runs into the x label
            title=f"{label} vs {axis}", xlabel=f"{axis} (%)", ylabel="%" if scale == 100.0 else "iteration",
            series=compare_series(self.summaries, key, scale, self.density), xlog=True, xreverse=True, ylim=None,
                                                                    xmax=100.0,
            empty_message="none of these runs has a finished round yet"))

    @property
    def spec(self) -> PlotSpec:
        return self.query_one("#compare-plot", PlotView).spec

    def action_density(self) -> None:
        self.density = "weights_nonzero" if self.density == "weights_remaining" else "weights_remaining"
        self._draw()

    def action_metric(self) -> None:
        shown = self.metrics()
        later = [i for i in shown if i > self.metric]
        self.metric = later[0] if later else shown[0]
        self._draw()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "overlap":
            return len(self.run_dirs) >= 2
        return True

    def action_overlap(self) -> None:
        from lth_tui.screens.analysis import OverlapMatrixScreen

        if len(self.run_dirs) < 2:
            return
        configs = {p: _config_dict(s) for p, s in self.summaries}
        labels = [_trunc(n, 40) for n in run_labels([(d.name, configs.get(d)) for d in self.run_dirs])]
        self.app.push_screen(OverlapMatrixScreen(self.run_dirs, labels))

    def action_export(self) -> None:
        self.export_dialog(self.run_dirs, formats=("png",))

    def action_close(self) -> None:
        self.app.pop_screen()
