"""Analysis views over the run store: linear mode connectivity and mask overlap.

The Run screen's "7 LMC" and "8 Overlap" tabs and the Runs screen's overlap matrix are built
here from what the engine wrote: `lmc.json` / `lmc-k<K>.json` per round (engine.lmc.read_lmc)
and the rounds' masks (engine.overlap). The readers run in workers (`read_analysis`,
`common_mask_rounds`, `engine.overlap.between_runs`); everything else here is a pure function
of their results, so the tests can check the figures without a screen.

Several trials are pooled: every curve is the mean over trials with a ±std band and n in its
legend label.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, Select, Static

from engine.records import mean_std as records_mean_std
from lth_tui.components.plot import PlotSpec, Series

COLORS = ("#56b4e9", "#e69f00", "#009e73", "#cc79a7", "#f0e442", "#d55e00", "#aaaaaa")
MAX_TRIAL_COLUMNS = 4  # more trials than this: the overlap table shows their mean ± std only


# -- readers (run in workers) -------------------------------------------------------------------


def read_analysis(run_dir: Path | str, overlay_dir: Path | str | None = None) -> dict[str, Any]:
    """Every LMC record, successive-round record and mask overlap of a run: {"run_dir", "lmc",
    "successive", "overlay_successive" (the overlaid run's), "overlap", "errors"}.

    A damaged or half-written file is reported in "errors" (or skipped) instead of raising, so
    a live run's analysis view keeps what it could read."""
    from lth_tui.stability import read_successive

    run_dir = Path(run_dir)
    out: dict[str, Any] = {"run_dir": run_dir, "lmc": [], "overlap": None, "errors": [],
                           "successive": read_successive(run_dir),
                           "overlay_successive": read_successive(overlay_dir) if overlay_dir else []}
    try:
        from engine.store import read_lmc

        out["lmc"] = read_lmc(run_dir)
    except Exception as exc:  # noqa: BLE001 - shown in the view, never a crash
        out["errors"].append(f"LMC files: {type(exc).__name__}: {exc}")
    try:
        from engine.overlap import run_overlaps

        out["overlap"] = run_overlaps(run_dir)
    except Exception as exc:  # noqa: BLE001
        out["errors"].append(f"masks: {type(exc).__name__}: {exc}")
    return out


def common_mask_rounds(run_dirs: list[Path], trial: int = 0) -> list[int]:
    """Rounds whose mask is stored for `trial` in every one of the runs."""
    from engine.layout import RunLayout

    common: set[int] | None = None
    for run_dir in run_dirs:
        layout = RunLayout(run_dir)
        rounds = {r for r, _ in layout.rounds_on_disk(trial) if layout.mask(trial, r).is_file()}
        common = rounds if common is None else common & rounds
    return sorted(common or ())


# -- statistics ---------------------------------------------------------------------------------


def mean_std(values: Iterable[float | None]) -> tuple[float, float, int]:
    """engine.records.mean_std as the plots read it: (nan, 0, 0) when nothing is there."""
    stats = records_mean_std(values)
    return (float("nan"), 0.0, 0) if stats.n == 0 else (stats.mean, stats.std, stats.n)


def n_label(counts: Iterable[int]) -> str:
    """"n=3", or "n=1–3" when the points of a curve rest on different numbers of trials."""
    counts = [c for c in counts if c]
    if not counts:
        return "n=0"
    lo, hi = min(counts), max(counts)
    return f"n={lo}" if lo == hi else f"n={lo}–{hi}"


def verdict(stables: list[bool]) -> str:
    if not stables:
        return "?"
    if all(stables):
        return "stable"
    if not any(stables):
        return "unstable"
    return f"{sum(stables)}/{len(stables)} stable"


# -- linear mode connectivity -------------------------------------------------------------------


def rewind_name(k: int | None) -> str:
    return "round start" if k is None else f"k={k}"


def _by_rewind(records: list[dict[str, Any]]) -> list[tuple[int | None, list[dict[str, Any]]]]:
    """Records grouped by rewind point: the round-start one (None) first, then k ascending."""
    groups: dict[int | None, list[dict[str, Any]]] = {}
    for rec in records:
        groups.setdefault(rec.get("rewind_iteration"), []).append(rec)
    return sorted(groups.items(), key=lambda kv: -1 if kv[0] is None else kv[0])


def lmc_rounds(records: list[dict[str, Any]]) -> list[int]:
    return sorted({int(r.get("round", 0)) for r in records})


def barrier_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std (percent) of the barrier over the records, their stable verdict and n."""
    mean, std, n = mean_std(r.get("barrier") for r in records)
    stables = [bool(r.get("stable")) for r in records if r.get("barrier") is not None]
    threshold = next((r.get("threshold") for r in records if r.get("threshold") is not None), None)
    return {"mean": 100 * mean, "std": 100 * std, "n": n, "verdict": verdict(stables), "threshold": threshold}


def _fmt_barrier(s: dict[str, Any]) -> str:
    if s["n"] == 0:
        return "–"
    spread = f"±{s['std']:.2f}" if s["n"] > 1 else ""
    return f"{s['mean']:.2f}{spread}%"


def interpolation_plot(records: list[dict[str, Any]], round_: int | None) -> PlotSpec:
    """Test error (%) against α on the line θA → θB of one round, one curve per rewind point
    (mean ± std over the trials that measured it); the title carries the barrier and verdict."""
    if round_ is None:
        return PlotSpec(title="LMC interpolation",
                        empty_message="no LMC result yet: l computes one for a finished round")
    recs = [r for r in records if r.get("round") == round_ and r.get("curve")]
    if not recs:
        return PlotSpec(title=f"Round {round_}: LMC interpolation",
                        empty_message=f"no LMC result for round {round_}: press l to compute one")
    series = []
    groups = _by_rewind(recs)
    for index, (k, group) in enumerate(groups):
        alphas = [float(p["alpha"]) for p in group[0]["curve"]]
        same = [g for g in group if len(g["curve"]) == len(alphas)
                and all(abs(float(p["alpha"]) - a) < 1e-9 for p, a in zip(g["curve"], alphas))]
        ys, errs = [], []
        for i in range(len(alphas)):
            mean, std, _ = mean_std(100 * float(g["curve"][i]["error"]) for g in same)
            ys.append(mean)
            errs.append(std)
        summary = barrier_summary(same)
        label = f"{rewind_name(k)}: {_fmt_barrier(summary)} {summary['verdict']} ({n_label([len(same)])})"
        series.append(Series(label, x=tuple(alphas), y=tuple(ys), yerr=tuple(errs), color=COLORS[index % len(COLORS)]))
    head = barrier_summary(groups[0][1])
    title = f"Round {round_}: barrier {_fmt_barrier(head)} {head['verdict']}"
    return PlotSpec(title=title, xlabel="α (θA → θB)", ylabel="test error %", series=tuple(series),
                    empty_message="no curve stored")


def config_rewind_iteration(config: Any, iterations: int = 0) -> int | None:
    """prune.rewind_iteration in iterations: a count of iterations as written, epochs converted
    with the iterations per epoch implied by `iterations` (the resolved train.iterations) when
    train.iterations is given in epochs too; None when it cannot be known here."""
    prune, train = getattr(config, "prune", None), getattr(config, "train", None)
    step = getattr(prune, "rewind_iteration", 0)
    if isinstance(step, int):
        return step
    count, unit = getattr(step, "count", None), getattr(step, "unit", "it")
    if count is None:
        return None
    if unit == "it" or count == 0:
        return int(count)
    total = getattr(train, "iterations", None)
    if iterations and getattr(total, "unit", "it") == "ep" and getattr(total, "count", 0):
        return int(count * iterations // total.count)
    return None


def start_rewind_point(config: Any, round_: int, iterations: int = 0) -> int | None:
    """The rewind iteration a round's own start stands for (its lmc.json on the k axis): 0 for
    round 0, the run's rewind point after that, and none when mask-1 does not rewind."""
    if round_ == 0:
        return 0
    prune = getattr(config, "prune", None)
    if prune is None or getattr(prune, "mask1", "rewind") != "rewind":
        return None
    return config_rewind_iteration(config, iterations)


def rewind_points(records: list[dict[str, Any]], round_: int | None, own: int | None) -> dict[int,
                                                                                              list[dict[str, Any]]]:
    """The LMC records of one round by rewind iteration: every lmc-k<K>.json at K, and the
    round's own lmc.json at `own` (the run's rewind point; left out when None)."""
    points: dict[int, list[dict[str, Any]]] = {}
    for rec in records:
        if rec.get("round") != round_ or rec.get("barrier") is None:
            continue
        k = rec.get("rewind_iteration")
        k = own if k is None else int(k)
        if k is not None:
            points.setdefault(k, []).append(rec)
    return dict(sorted(points.items()))


def rewind_plot(records: list[dict[str, Any]], round_: int | None, config: Any, iterations: int = 0) -> PlotSpec:
    """Instability against the rewind iteration k of one round (Frankle et al. 2020, fig. 3):
    barrier % (mean ± std over trials) of every lmc-k<K>.json of the round, with the round's
    own lmc.json at the run's rewind point."""
    title = "barrier % vs rewind k" if round_ is None else f"Round {round_}: barrier % vs rewind k"
    own = start_rewind_point(config, round_, iterations) if round_ is not None else None
    points = rewind_points(records, round_, own)
    series = []
    if points:
        stats = [barrier_summary(group) for group in points.values()]
        starts = any(r.get("rewind_iteration") is None for group in points.values() for r in group)
        label = f"barrier ({n_label(s['n'] for s in stats)})" + (f"; round start at k={own}" if starts else "")
        series.append(Series(label, x=tuple(float(k) for k in points), y=tuple(s["mean"] for s in stats),
                             yerr=tuple(s["std"] for s in stats), color=COLORS[0]))
    return PlotSpec(title=title, xlabel="rewind iteration k", ylabel="barrier %", series=tuple(series),
                    empty_message="l: measure the barrier from θk for a k")


def barrier_plot(records: list[dict[str, Any]], weights: dict[int, float]) -> PlotSpec:
    """The barrier of every round against weights remaining (log axis), one curve per rewind
    point, mean ± std over trials."""
    series = []
    for index, (k, group) in enumerate(_by_rewind([r for r in records if r.get("barrier") is not None])):
        rounds = sorted({int(r["round"]) for r in group if int(r["round"]) in weights})
        if not rounds:
            continue
        stats = [barrier_summary([r for r in group if r["round"] == rr]) for rr in rounds]
        series.append(Series(f"{rewind_name(k)} ({n_label(s['n'] for s in stats)})",
                             x=tuple(100 * weights[rr] for rr in rounds), y=tuple(s["mean"] for s in stats),
                             yerr=tuple(s["std"] for s in stats), color=COLORS[index % len(COLORS)]))
    return PlotSpec(title="barrier % per round vs weights %", xlabel="weights remaining %",
                    ylabel="barrier %", series=tuple(series), xlog=True, xreverse=True,
                    empty_message="no round has an LMC result (analysis.lmc = true, or l)")


def fit_spec(spec: PlotSpec, width: int) -> PlotSpec:
    """The spec made to fit a plot `width` cells wide: plotext drops a title wider than the plot,
    and PlotView moves a y label that does not fit beside the x label into the title. Our titles
    name the y quantity, so that label is dropped and the title cut with an ellipsis."""
    if width <= 0:
        return spec
    ylabel = spec.ylabel if len(spec.xlabel) + len(spec.ylabel) + 12 <= width else ""
    title = spec.title if len(spec.title) <= width else spec.title[: max(width - 1, 0)] + "…"
    return dataclasses.replace(spec, title=title, ylabel=ylabel)


# -- mask overlap -------------------------------------------------------------------------------


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def overlap_table(overlap: dict[str, Any] | None, weights: dict[int, float]) -> tuple[list[tuple[str, str]],
                                                                                      list[list[Any]]]:
    """Columns (label, key) and rows of the Overlap tab: per round, the Jaccard overlap of each
    trial's mask with its previous round's, their mean ± std and chance level, and (with
    several trials) the mean overlap across trials at that round with its chance level."""
    if not overlap:
        return [], []
    consecutive = {int(t): recs for t, recs in (overlap.get("consecutive") or {}).items()}
    across = {int(r): v for r, v in (overlap.get("between_trials") or {}).items()}
    trials = sorted(consecutive)
    paired = {r for recs in consecutive.values() for rec in recs for r in rec["rounds"]}
    rounds = sorted(paired | set(across) | set(weights))
    per_trial = len(trials) <= MAX_TRIAL_COLUMNS
    columns = [("round", "round"), ("wt %", "weights")]
    if per_trial:
        columns += [(f"t{t + 1}", f"t{t}") for t in trials]
    if len(trials) > 1:
        columns.append(("mean±std", "mean"))
    columns.append(("chance", "chance"))
    if across:
        columns += [("across", "across"), ("chance ", "across_chance")]
    rows = []
    for r in rounds:
        by_trial = {t: next((rec for rec in consecutive[t] if rec["rounds"][1] == r), None) for t in trials}
        found = [rec for rec in by_trial.values() if rec is not None]
        cells: dict[str, Any] = {"round": str(r), "weights": "–" if r not in weights else f"{100 * weights[r]:.1f}"}
        for t in trials:
            cells[f"t{t}"] = "–" if by_trial[t] is None else _fmt(by_trial[t]["all"])
        mean, std, n = mean_std(rec["all"] for rec in found)
        cells["mean"] = "–" if n == 0 else (f"{mean:.3f}±{std:.3f}" if n > 1 else f"{mean:.3f}")
        chance, _, _ = mean_std(rec["chance"] for rec in found)
        cells["chance"] = Text(_fmt(chance if found else None), style="dim")
        if across:
            entry = across.get(r) or {}
            cells["across"] = "–" if entry.get("mean") is None else f"{entry['mean']:.3f}"
            cells["across_chance"] = Text(_fmt(entry.get("chance_mean")), style="dim")
        rows.append([cells[key] for _, key in columns])
    return columns, rows


def matrix_table(result: dict[str, Any], labels: list[str]) -> tuple[list[tuple[str, str]], list[list[Any]]]:
    """The between-runs Jaccard matrix as table columns and rows: "jaccard / chance" cells, the
    run's weights remaining in its own column."""
    n = len(result["runs"])
    columns = [("run", "run"), ("weights %", "weights")] + [(f"{i + 1}", f"c{i}") for i in range(n)]
    rows = []
    for i in range(n):
        wr = result["weights_remaining"][i]
        row: list[Any] = [f"{i + 1} {labels[i]}", "–" if wr is None else f"{100 * wr:.1f}"]
        for j in range(n):
            value, chance = result["matrix"][i][j], result["chance"][i][j]
            if value is None:
                row.append("–")
            elif i == j:
                row.append(Text("1", style="dim"))
            else:
                row.append(Text.assemble(f"{value:.3f}", (f" / {chance:.3f}", "dim")))
        rows.append(row)
    return columns, rows


class OverlapMatrixScreen(ModalScreen[None]):
    """Jaccard overlap between the masks of several runs at one round (trial 1), against chance."""

    BINDINGS = [
        Binding("escape", "close", "Back", id="overlap.back"),
        Binding("left_square_bracket", "step(-1)", "Previous round", key_display="[", id="overlap.prev"),
        Binding("right_square_bracket", "step(1)", "Next round", key_display="]", id="overlap.next"),
    ]

    @dataclasses.dataclass
    class RoundsFound(Message):
        """The rounds every run has a stored mask for."""

        rounds: list[int]

    @dataclasses.dataclass
    class Computed(Message):
        """engine.overlap.between_runs's result at one round."""

        result: dict[str, Any]

    @dataclasses.dataclass
    class Failed(Message):
        what: str
        error: BaseException

    def __init__(self, run_dirs: list[Path], labels: list[str]) -> None:
        super().__init__(classes="dialog-screen")
        self.run_dirs = list(run_dirs)
        self.labels = list(labels)
        self.rounds: list[int] = []
        self.round: int | None = None
        self.result: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide-dialog", id="overlap-box") as box:
            box.border_title = f"Mask overlap of {len(self.run_dirs)} runs"
            with Horizontal(id="overlap-controls"):
                yield Label("round", classes="control-label")
                yield Select[int]([], id="overlap-round", compact=True, allow_blank=True, prompt="–")
                yield Static("", id="overlap-note")
            yield DataTable(id="overlap-matrix", zebra_stripes=True, cursor_type="row")
            yield Static(Text("cells: Jaccard |A∩B| / |A∪B| of the kept weights (all layers, trial 1) / chance "
                              "level of random masks of the same densities · [ ] round · esc back", style="dim"),
                         classes="dialog-hint-wrap")

    def on_mount(self) -> None:
        self.query_one("#overlap-note", Static).update(Text(" reading masks…", style="dim"))
        self._find_rounds()

    @work(thread=True, group="overlap", exit_on_error=False)
    def _find_rounds(self) -> None:
        try:
            self.post_message(self.RoundsFound(common_mask_rounds(self.run_dirs)))
        except Exception as exc:  # noqa: BLE001 - told; the view stays usable
            self.post_message(self.Failed("mask rounds", exc))

    @work(thread=True, group="overlap-matrix", exclusive=True, exit_on_error=False)
    def _compute(self, round_: int) -> None:
        from engine.overlap import between_runs

        try:
            self.post_message(self.Computed(between_runs(self.run_dirs, round_)))
        except Exception as exc:  # noqa: BLE001
            self.post_message(self.Failed("mask overlap", exc))

    @on(Failed)
    def _failed(self, message: Failed) -> None:
        from lth_tui.screens.export_flow import tell_failure

        tell_failure(self.app, message.what, message.error)
        self.query_one("#overlap-note", Static).update(Text(f" {message.what} failed", style="red"))

    @on(RoundsFound)
    def _rounds_found(self, message: RoundsFound) -> None:
        rounds = message.rounds
        self.rounds = rounds
        note = self.query_one("#overlap-note", Static)
        if not rounds:
            note.update(Text(" these runs share no round with a stored mask", style="yellow"))
            return
        select = self.query_one("#overlap-round", Select)
        with self.prevent(Select.Changed):
            select.set_options([(str(r), r) for r in rounds])
            select.value = rounds[-1]
        self.show_round(rounds[-1])

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if isinstance(event.value, int) and event.value != self.round:
            self.show_round(event.value)

    def show_round(self, round_: int) -> None:
        self.round = round_
        self.query_one("#overlap-note", Static).update(Text(f" last common round: {self.rounds[-1]}", style="dim"))
        self._compute(round_)

    @on(Computed)
    def _show(self, message: Computed) -> None:
        result = message.result
        if result.get("round") != self.round:
            return
        self.result = result
        columns, rows = matrix_table(result, self.labels)
        table = self.query_one("#overlap-matrix", DataTable)
        table.clear(columns=True)
        for label, key in columns:
            table.add_column(label, key=key)
        for i, row in enumerate(rows):
            table.add_row(*row, key=str(i))

    def action_step(self, step: int) -> None:
        if not self.rounds or self.round is None:
            return
        i = max(0, min(len(self.rounds) - 1, self.rounds.index(self.round) + step))
        if self.rounds[i] != self.round:
            self.query_one("#overlap-round", Select).value = self.rounds[i]

    def action_close(self) -> None:
        self.dismiss(None)
