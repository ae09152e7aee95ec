"""A sweep group as one stability study: instability against the swept value, and the ticket
curve of every value (lth_tui/stability.py builds the rows; this screen draws them).

Opened from the Runs screen (g on a run of a group). For `--sweep train.batch_size=...` with
`analysis.lmc = true` the left plot is Maene et al. 2021's figure 2 (instability at a few
rounds against the batch size) and the right one their figure 1 (accuracy against weights
remaining per batch size).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from lth_tui.components.plot import PlotSpec, PlotView, Series
from lth_tui.stability import stability_study

COLORS = ("#56b4e9", "#e69f00", "#009e73", "#cc79a7", "#f0e442", "#d55e00", "#aaaaaa")


def load_study(folder: Path) -> tuple[dict[str, Any], list[tuple[dict[str, Any], dict[str, Any] | None]], list[str]]:
    """(group.json, [(run entry, summary or None)], problems) of a sweep group folder."""
    from engine.store import StoreError, read_summary
    from lth_tui.sweeps import read_group

    group = read_group(folder)
    entries, problems = [], []
    for entry in group["runs"]:
        try:
            entries.append((entry, read_summary(Path(entry["run_dir"]))))
        except (StoreError, KeyError, TypeError) as exc:
            entries.append((entry, None))
            problems.append(f"{Path(str(entry.get('run_dir', '?'))).name}: {exc}")
    return group, entries, problems


def _x(value: Any) -> float | None:
    """A swept value on a numeric axis: numbers as they are, lengths ("10ep", "500it") by their count."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value)
    for unit in ("ep", "it"):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return float(text[: -len(unit)])
    return None


def picked_rounds(rounds: list[int]) -> list[int]:
    """Round 0, the middle one and the last: the rounds the instability plot follows."""
    if not rounds:
        return []
    return sorted({rounds[0], rounds[len(rounds) // 2], rounds[-1]})


def instability_plot(rows: list[dict[str, Any]], axis: str) -> PlotSpec:
    """LMC barrier % against the first swept key, one curve per picked round and per value of
    the other swept keys; non-numeric values are placed at their index."""
    numeric = all(_x(row["swept"].get(axis)) is not None for row in rows)
    positions = {id(row): (_x(row["swept"].get(axis)) if numeric else float(i)) for i, row in enumerate(rows)}
    others: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        rest = ", ".join(f"{k.rpartition('.')[2]}={v}" for k, v in row["swept"].items() if k != axis)
        others.setdefault(rest, []).append(row)
    rounds = picked_rounds(sorted({r for row in rows for r in row["instability"]}))
    series, color = [], 0
    for rest, members in others.items():
        for r in rounds:
            points = [(positions[id(row)], row["instability"][r]) for row in members if r in row["instability"]]
            if not points:
                continue
            points.sort()
            label = f"r{r}" + (f" {rest}" if rest else "")
            series.append(Series(label, x=tuple(p[0] for p in points), y=tuple(100 * p[1][0] for p in points),
                                 yerr=tuple(100 * p[1][1] for p in points), color=COLORS[color % len(COLORS)]))
            color += 1
    xlabel = axis.rpartition(".")[2] + ("" if numeric else " (index)")
    return PlotSpec(title=f"instability % vs {axis.rpartition('.')[2]}", xlabel=xlabel, ylabel="barrier %",
                    series=tuple(series), empty_message="no LMC results in this group (analysis.lmc = true)")


def ticket_curves_plot(rows: list[dict[str, Any]]) -> PlotSpec:
    """Test accuracy at early stop against weights remaining, one curve per run of the group."""
    series = []
    for i, row in enumerate(rows):
        if not row["curve"]:
            continue
        series.append(Series(row["label"] or f"run {i + 1}", x=tuple(100 * p[0] for p in row["curve"]),
                             y=tuple(100 * p[1] for p in row["curve"]), yerr=tuple(100 * p[2] for p in row["curve"]),
                             color=COLORS[i % len(COLORS)]))
    return PlotSpec(title="ticket accuracy % vs weights %", xlabel="weights remaining %", ylabel="acc %",
                    series=tuple(series), xlog=True, xreverse=True, empty_message="no finished round yet")


class GroupScreen(Screen):
    """Instability against the swept value and the ticket curve per value, for one sweep group."""

    BINDINGS = [
        Binding("escape", "close", "Back", id="group.back"),
        Binding("f5", "reload", "Reload", id="group.reload"),
    ]
    DEFAULT_CSS = """
    GroupScreen #group-plots { height: 1fr; }
    GroupScreen #group-plots PlotView { width: 1fr; height: 1fr; }
    GroupScreen #group-title { height: auto; }
    """

    @dataclass
    class Loaded(Message):
        """The group's runs as read by the worker."""

        group: dict[str, Any]
        entries: list[tuple[dict[str, Any], dict[str, Any] | None]]
        problems: list[str]

    @dataclass
    class Failed(Message):
        error: str

    def __init__(self, folder: Path) -> None:
        super().__init__(id="group")
        self.folder = Path(folder)
        self.rows: list[dict[str, Any]] = []
        self.loads = 0  # tests wait on it

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text(f"reading {self.folder.name}…", style="dim"), id="group-title")
        with Horizontal(id="group-plots"):
            yield PlotView(PlotSpec(empty_message="reading…"), id="group-instability-plot")
            yield PlotView(PlotSpec(empty_message="reading…"), id="group-curves-plot")
        yield Footer()

    def on_mount(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        self._read()

    @work(thread=True, group="group-study", exclusive=True, exit_on_error=False)
    def _read(self) -> None:
        try:
            self.post_message(self.Loaded(*load_study(self.folder)))
        except Exception as exc:  # noqa: BLE001 - a damaged group is shown, never a crash
            self.post_message(self.Failed(f"{type(exc).__name__}: {exc}"))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        self.loads += 1
        self.rows = stability_study(message.entries)
        axes = list(message.group.get("axes") or {})
        axis = axes[0] if axes else ""
        self.query_one("#group-instability-plot", PlotView).set_plot(instability_plot(self.rows, axis))
        self.query_one("#group-curves-plot", PlotView).set_plot(ticket_curves_plot(self.rows))
        text = Text.assemble(("Sweep ", "bold"), (str(message.group.get("group", self.folder.name)), "bold"),
                             (f"  {len(self.rows)} run(s) over {', '.join(axes) or '–'} · f5 reload · esc back", "dim"))
        if message.problems:
            text.append("\n" + "; ".join(message.problems), style="red")
        self.query_one("#group-title", Static).update(text)

    @on(Failed)
    def _failed(self, message: Failed) -> None:
        self.loads += 1
        self.query_one("#group-title", Static).update(Text(f"{self.folder.name}: {message.error}", style="red"))

    def action_close(self) -> None:
        self.app.pop_screen()
