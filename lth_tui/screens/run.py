"""Run: one run live or finished — progress, sparsity curve, early stop, training curves,
per-layer weights remaining, mask heatmap, the event log, and the analysis tabs: linear mode
connectivity (LMC) and mask overlap (built by lth_tui.screens.analysis).

Mask-training runs (experiment = "supermask" | "edge-popup") write the same store; for them
the sparsity tab shows the expected- and sampled-mask accuracy per round and the second tab
the density of the learned mask, since they have no early stopping.

The screen holds a RunModel per shown run (the main one and an optional overlay) built from
the messages of the follower threads (config, status, summary.json, then events.jsonl from the
start), so a finished run opened later and a live one started anywhere look the same. Messages
only mark parts dirty; a 10 Hz timer redraws what changed.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Header, Label, ProgressBar, RichLog, Select, Static, TabbedContent, TabPane
from textual.worker import get_current_worker

from engine.process import shown_state
from lth_tui.completion import Completion
from lth_tui.components.footer import LthFooter
from lth_tui.components.plot import PlotSpec, PlotView, Series
from lth_tui.components.successive import SuccessivePlots
from lth_tui.run_labels import run_labels
from lth_tui.screens.masks_tab import MASK_BINDINGS, MasksTab
from lth_tui.screens.analysis import (barrier_plot, fit_spec, interpolation_plot, lmc_rounds, n_label, overlap_table,
                                      read_analysis, rewind_plot, start_rewind_point)
from lth_tui.screens.density_view import accuracy_kind, headline, layer_cell, nonzero_series

MAIN_COLOR = "#56b4e9"
OVERLAY_COLOR = "#e69f00"
EXTRA_COLORS = ("#009e73", "#cc79a7")
TABS = ("tab-sparsity", "tab-stop", "tab-training", "tab-layers", "tab-masks", "tab-log", "tab-lmc", "tab-overlap")
ANALYSIS_TABS = ("tab-lmc", "tab-overlap")


def _mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None]
    if not values:
        return float("nan"), 0.0
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "–"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


@dataclass
class RunModel:
    """Everything the Run screen shows about one run, rebuilt from the run store; no widgets."""

    run_dir: Path
    token: int = 0
    config: Any = None
    status: dict[str, Any] | None = None
    alive: bool = False
    error: str = ""
    trials: int = 1
    rounds: int = 1
    iterations: int = 0
    records: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    layers: dict[tuple[int, int], dict[str, float]] = field(default_factory=dict)
    layer_names: list[str] = field(default_factory=list)
    evals: dict[tuple[int, int], dict[int, dict[str, Any]]] = field(default_factory=dict)
    weights: dict[tuple[int, int], float] = field(default_factory=dict)
    position: tuple[int, int, int] | None = None
    state: str = "?"
    device: str = ""
    log: list[Text] = field(default_factory=list)
    opened: bool = False
    started: bool = False  # a run_start event was seen
    experiment_name: str = ""  # from the run_start event when the config cannot be read
    # ETA: the first eval after the latest run_start, and the latest eval
    _rate_start: tuple[float, int] | None = None
    _last: tuple[float, int] | None = None
    _awaiting_rate_start: bool = False
    count: Completion = field(default_factory=Completion)  # iterations done, trial-major or batched
    together: bool = False  # the trials train as one batched model (run_start's parallel_trials)
    shown_label: str = ""  # the legend name among the runs shown with it

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    @property
    def experiment(self) -> str:
        """imp, supermask or edge-popup."""
        return str(getattr(self.config, "experiment", "") or self.experiment_name or "imp")

    @property
    def mask_training(self) -> bool:
        """A learned-supermask or edge-popup run: rounds are segments of one mask training."""
        return self.experiment != "imp"

    # -- feeding -----------------------------------------------------------------------------

    def open(self, config: Any, status: dict[str, Any] | None, summary: dict[str, Any] | None, error: str) -> set[str]:
        self.opened = True
        self.config, self.status, self.error = config, status, error
        if config is not None:
            from engine.config import total_rounds

            self.trials = config.trials
            self.rounds = total_rounds(config)
        if status:
            self.state = status.get("state", self.state)
            if status.get("error"):
                self.error = status["error"]
        if config is None or status is None or error:  # any file that failed its checks (engine/schema.py)
            self.state = "damaged"
        if summary:
            for t, trial in enumerate(summary.get("trials", [])):
                for record in trial.get("rounds", []):
                    self._record(t, record)
        if error:
            self.log.append(Text(f"cannot read the whole run: {error}", style="bold red"))
        return {"progress", "curve", "layers", "masks", "analysis"}

    def _record(self, t: int, record: dict[str, Any]) -> None:
        r = int(record.get("round", 0))
        self.records[(t, r)] = record
        if record.get("weights_remaining") is not None:
            self.weights[(t, r)] = record["weights_remaining"]
        if isinstance(record.get("layers"), dict):
            self._layers(t, r, record["layers"])

    def _layers(self, t: int, r: int, layers: dict[str, float]) -> None:
        self.layers[(t, r)] = layers
        for name in layers:
            if name not in self.layer_names:
                self.layer_names.append(name)

    def set_status(self, status: dict[str, Any] | None, alive: bool, error: str) -> set[str]:
        changed = {"progress"}
        if status is not None and self.state != "damaged":
            self.status = status
            self.state, note = shown_state(status, alive)  # interrupted, lost: engine/process.py
            self.error = note or status.get("error") or self.error
        elif error:
            self.error = error
        if alive != self.alive:
            self.alive = alive
        return changed

    def _set_state(self, state: str, error: str | None = None) -> None:
        """A state from the events; a run found damaged when opened stays damaged, with its reason."""
        if self.state == "damaged":
            return
        self.state = state
        if error:
            self.error = error

    def apply(self, events: list[dict[str, Any]]) -> set[str]:
        """Feeds events in file order; returns the parts of the screen that changed."""
        dirty: set[str] = set()
        for ev in events:
            kind = ev.get("event")
            when = ev.get("time")
            t, r = ev.get("trial"), ev.get("round")
            self.count.feed(ev)
            if kind == "run_start":
                self.together = bool(ev.get("parallel_trials"))
                self.trials = ev.get("trials", self.trials)
                self.rounds = ev.get("rounds", self.rounds)
                self.iterations = ev.get("iterations", self.iterations)
                self.device = ev.get("device", self.device)
                self.experiment_name = ev.get("experiment", self.experiment_name) or ""
                self._set_state("running")
                self.started = True
                self._rate_start, self._awaiting_rate_start = None, True
                self.log.append(Text(f"{'resumed' if ev.get('resumed') else 'started'} on {self.device}: "
                                     f"{self.trials} trial(s) × {self.rounds} round(s) × {self.iterations} it"
                                     + (f", {ev.get('rounds_done')} round(s) already done" if ev.get("rounds_done") else ""),
                                     style="bold"))
                dirty |= {"progress"}
            elif kind == "round_start" and t is not None and r is not None:
                self._layers(t, r, ev.get("layers") or {})
                if ev.get("weights_remaining") is not None:
                    self.weights[(t, r)] = ev["weights_remaining"]
                self.position = (t, r, 0)
                self.log.append(Text(f"trial {t + 1} round {r}: {100 * ev.get('weights_remaining', 1):.2f}% of weights remain",
                                     style="cyan"))
                dirty |= {"progress", "layers", "masks", "train", "analysis"}
            elif kind == "eval" and t is not None and r is not None:
                it = int(ev.get("iteration", 0))
                self.evals.setdefault((t, r), {})[it] = ev
                self.position = (t, r, it)
                if when is not None:
                    done = self.count.done
                    if self._awaiting_rate_start:
                        self._rate_start, self._awaiting_rate_start = (when, done), False
                    self._last = (when, done)
                acc = ev.get("test_accuracy")
                loss = ev.get("val_loss")
                sampled = ev.get("sampled_test_accuracy")
                self.log.append(Text(f"  t{t + 1} r{r} it {it}: " + ("" if loss is None else f"val loss {loss:.4f}  ")
                                     + f"test acc {100 * acc:.2f}%" + (f" (sampled mask {100 * sampled:.2f}%)" if sampled is not None else "")
                                     if acc is not None else f"  t{t + 1} r{r} it {it}", style="dim"))
                dirty |= {"progress", "train", "curve"}  # curve: the live point of the round in progress
            elif kind == "round_end" and t is not None:
                self._record(t, ev)
                acc = ev.get("test_accuracy_at_early_stop")
                extra = f", LMC barrier {100 * ev['lmc_barrier']:.2f}%" if ev.get("lmc_barrier") is not None else ""
                if ev.get("batched_trials"):
                    extra += f" (its share of {fmt_seconds(ev.get('batched_seconds'))} for {ev['batched_trials']} trials together)"
                if ev.get("expected_mask_accuracy") is not None or ev.get("sampled_mask_accuracy") is not None:
                    figures = (f"expected-mask acc {_pct(ev.get('expected_mask_accuracy'))}, sampled-mask acc "
                               f"{_pct(ev.get('sampled_mask_accuracy'))}")
                else:
                    figures = (f"test acc {_pct(acc)} at early stop (it {ev.get('early_stop_iteration')})" if acc is not None
                               else f"final test acc {_pct(ev.get('test_accuracy_final'))} (no hold-out)")
                self.log.append(Text(f"trial {t + 1} round {ev.get('round')} done: {figures}, "
                                     f"{100 * ev.get('weights_remaining', 1):.2f}% weights, "
                                     f"{fmt_seconds(ev.get('seconds'))}{extra}", style="green"))
                dirty |= {"progress", "curve", "layers", "masks", "analysis"}
            elif kind == "run_end":
                self._set_state(ev.get("state", self.state), ev.get("error"))
                style = "bold green" if self.state == "done" else "bold yellow"
                self.log.append(Text(f"run {self.state}" + (f": {ev.get('error')}" if ev.get("error") else ""), style=style))
                dirty |= {"progress", "train"}  # a stopped run's training curves pool its trials
            elif kind == "warning":
                self.log.append(Text(f"warning: {ev.get('message', '')}", style="bold yellow"))
            elif kind == "error":
                self._set_state("failed", ev.get("message", "error"))
                self.log.append(Text(f"error: {ev.get('message', 'error')}", style="bold red"))
                for line in str(ev.get("traceback", "")).rstrip().splitlines()[-6:]:
                    self.log.append(Text("  " + line, style="red"))
                dirty |= {"progress"}
            elif kind == "lmc" and ev.get("barrier") is not None:
                where = f"trial {(t or 0) + 1} round {r}" if r is not None else "run"
                stable = "stable" if ev.get("stable") else "unstable"
                k = ev.get("rewind_iteration")
                self.log.append(Text(f"{where}{'' if k is None else f' from k={k}'}: linear mode connectivity barrier "
                                     f"{100 * ev['barrier']:.2f}% ({stable})", style="magenta"))
                dirty |= {"analysis"}
            else:
                self.log.append(Text(f"{kind}: " + ", ".join(f"{k}={v}" for k, v in ev.items() if k not in ("event", "time")),
                                     style="dim"))
            dirty.add("log")
        return dirty

    # -- derived figures ---------------------------------------------------------------------

    @property
    def total_iterations(self) -> int:
        return self.count.total or self.trials * self.rounds * self.iterations

    def eta(self) -> float | None:
        """Seconds left, from the event times since the run (re)started."""
        if self._rate_start is None or self._last is None or not self.iterations:
            return None
        (t0, d0), (t1, d1) = self._rate_start, self._last
        if d1 <= d0 or t1 <= t0:
            return None
        rate = (d1 - d0) / (t1 - t0)
        return max(0.0, (self.total_iterations - d1) / rate)

    def curve(self) -> list[dict[str, Any]]:
        """Per round, mean ± std over trials: weights remaining, accuracy at early stop, early-stop iteration."""
        by_round: dict[int, list[dict[str, Any]]] = {}
        for (t, r), rec in self.records.items():
            by_round.setdefault(r, []).append(rec)
        points = []
        for r, recs in sorted(by_round.items()):
            wr, _ = _mean_std([x.get("weights_remaining") for x in recs])
            acc, acc_std = _mean_std([headline(x) for x in recs])  # final accuracy when nothing was held out
            es, es_std = _mean_std([x.get("early_stop_iteration") for x in recs])
            final, final_std = _mean_std([x.get("test_accuracy_final") for x in recs])
            point = {"round": r, "weights_remaining": wr, "acc": acc, "acc_std": acc_std, "es": es,
                     "es_std": es_std, "final": final, "final_std": final_std, "n": len(recs)}
            # figures only some runs record: expected / sampled mask accuracy (mask training), LMC barrier
            for key, name in (("expected_mask_accuracy", "exp"), ("sampled_mask_accuracy", "smp"),
                              ("lmc_barrier", "lmc"), ("weights_remaining", "wr"), ("weights_nonzero", "nz")):
                values = [x.get(key) for x in recs if x.get(key) is not None]
                point[name], point[name + "_std"] = _mean_std(values)
                point[name + "_n"] = len(values)
            ends = [x["iterations"][1] for x in recs if isinstance(x.get("iterations"), list) and len(x["iterations"]) == 2]
            point["end"] = statistics.fmean(ends) if ends else float("nan")  # mask training: segment end
            points.append(point)
        return points

    def best(self) -> dict[str, Any] | None:
        points = [p for p in self.curve() if p["acc"] == p["acc"]]
        return max(points, key=lambda p: (p["acc"], -p["weights_remaining"])) if points else None

    def rounds_done(self) -> int:
        return len(self.records)

    def latest_round(self) -> tuple[int, int] | None:
        keys = set(self.layers) | set(self.evals)
        return max(keys) if keys else None

    def label(self) -> str:
        """The legend name: set by the screen from the runs shown together (lth_tui.run_labels)."""
        return self.shown_label or run_labels([(self.run_id, self.config)])[0]

    def live_point(self) -> tuple[int, float, float] | None:
        """(round, % weights, test acc %) of the round in progress at its latest evaluation."""
        if self.position is None or self.state != "running" or self.mask_training:
            return None
        t, r, _ = self.position
        evals, wr = self.evals.get((t, r)) or {}, self.weights.get((t, r))
        if (t, r) in self.records or not evals or wr is None:
            return None
        acc = evals[max(evals)].get("test_accuracy")
        return None if acc is None else (r, 100 * wr, 100 * acc)

    def progress_text(self) -> Text:
        text = Text()
        state = self.state
        color = {"running": "bold green", "done": "bold cyan", "failed": "bold red", "cancelled": "bold yellow",
                 "interrupted": "bold yellow", "queued": "dim", "lost": "bold magenta"}.get(state, "bold")
        text.append(f" {state} ", style=f"reverse {color}")
        text.append(f" {self.run_id}", style="bold")
        if self.device:
            text.append(f" on {self.device}", style="dim")
        text.append("\n")
        if self.position is not None and state != "done":
            t, r, it = self.position
            who = (f"{self.trials} trials together · " if self.together and self.trials > 1
                   else f"trial {t + 1}/{self.trials} · " if self.trials > 1 else "")
            text.append(f"{who}round {r}/{max(self.rounds - 1, 0)} · it {it}/{self.iterations}")
            wr = self.weights.get((t, r))
            if wr is not None:
                text.append(f" · {100 * wr:.1f}% wt")
            last = self.evals.get((t, r), {})
            if last:
                ev = last[max(last)]
                if ev.get("test_accuracy") is not None:
                    text.append(f" · acc {100 * ev['test_accuracy']:.1f}%")
                if ev.get("sampled_test_accuracy") is not None:
                    text.append(f" (sampled {100 * ev['sampled_test_accuracy']:.1f}%)")
        elif self.state == "running" and not self.started:
            text.append("starting: loading the data and building the model…", style="italic")
        else:
            text.append(f"{self.rounds_done()} of {self.trials * self.rounds} rounds")
        if self.state == "running" and self.alive:
            text.append(f" · ETA {fmt_seconds(self.eta())}", style="bold")
        best = self.best()
        if best is not None:
            what = "best expected-mask" if self.mask_training else "best"
            spread = f" ± {100 * best['acc_std']:.2f}" if best["n"] > 1 else ""
            text.append(f" · {what} {100 * best['acc']:.2f}{spread}% at {100 * best['weights_remaining']:.1f}%", style="cyan")
            if self.mask_training and best.get("smp_n"):
                text.append(f" (sampled {100 * best['smp']:.2f}%)", style="cyan")
        if self.error and self.state in ("failed", "interrupted", "damaged", "lost"):
            text.append(f"\n{self.error}", style="red")
        return text

    def fraction_done(self) -> float:
        if self.state == "done":
            return 1.0
        if self.position is None or not self.count.total:
            return self.rounds_done() / max(self.trials * self.rounds, 1)
        return self.count.fraction


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}%"


def curve_series(model: RunModel, metric: str, color: str | None, label: str | None = None,
                 x: str = "weights_remaining") -> Series | None:
    """One run's curve as a plot series, mean ± std over trials with n in the label.

    x: "weights_remaining" (in %, the sparsity curve), "round", or "end" (the iteration a
    mask-training segment ends at)."""
    points = [p for p in model.curve() if p[metric] == p[metric] and p.get(x, float("nan")) == p.get(x, float("nan"))]
    if not points:
        return None
    scale = 100.0 if metric in ("acc", "final", "exp", "smp", "lmc", "wr") else 1.0
    xscale = 100.0 if x in ("weights_remaining", "nz") else 1.0
    counts = [p.get(metric + "_n", p["n"]) for p in points]
    return Series(f"{label or model.label()} ({n_label(counts)})", x=tuple(xscale * p[x] for p in points),
                  y=tuple(scale * p[metric] for p in points), yerr=tuple(scale * p[metric + "_std"] for p in points),
                  color=color)


class RunScreen(Screen):
    """One run: progress and the eight views (tabs)."""

    BINDINGS = [
        Binding("x", "cancel_run", "Cancel run", id="run.cancel",
                tooltip="Cancel run: stop the live run after asking; it checkpoints and stays resumable"),
        Binding("r", "resume_run", "Resume", id="run.resume", tooltip="Resume a cancelled or interrupted run"),
        Binding("o", "overlay", "Overlay run", id="run.overlay",
                tooltip="Overlay run: draw another run's curves beside this one (pick from a list)"),
        Binding("c", "control", "Reinit control", id="run.control",
                tooltip="Reinit control: start this config with mask-1 = random_reinit and overlay it"),
        Binding("e", "export", "Export", id="run.export", tooltip="Export: md, json, csv or png (into the run dir by default)"),
        Binding("l", "lmc", "LMC", id="run.lmc",
                tooltip="LMC: train two copies of the selected round from a rewind point k (asked) and measure the "
                        "error barrier between them; the LMC tab shows it"),
        Binding("left_square_bracket", "round(-1)", "Previous round (training curves; on the LMC tab its round)",
                key_display="[", show=False, id="run.prev_round"),
        Binding("right_square_bracket", "round(1)", "Next round (training curves; on the LMC tab its round)",
                key_display="]", show=False, id="run.next_round"),
        Binding("t", "trials", "Trials", show=False, id="run.trials",
                tooltip="Training curves: one trial, or mean ± std over the trials of the round"),
        # priority: the tab keys work with a Select, a table or the heatmap focused
        Binding("1", "tab(0)", "Tabs", key_display="1-8", priority=True, id="run.tab_sparsity",
                tooltip="1-8: Sparsity, Early stop, Train, Layers, Masks, Log, LMC, Overlap"),
        Binding("2", "tab(1)", "Early stop", show=False, priority=True, id="run.tab_stop"),
        Binding("3", "tab(2)", "Training", show=False, priority=True, id="run.tab_training"),
        Binding("4", "tab(3)", "Layers", show=False, priority=True, id="run.tab_layers"),
        Binding("5", "tab(4)", "Masks", show=False, priority=True, id="run.tab_masks"),
        Binding("6", "tab(5)", "Log", show=False, priority=True, id="run.tab_log"),
        Binding("7", "tab(6)", "LMC", show=False, priority=True, id="run.tab_lmc",
                tooltip="LMC tab: interpolation curve of a round, barrier vs rewind k and vs weights remaining"),
        Binding("8", "tab(7)", "Overlap", show=False, priority=True, id="run.tab_overlap",
                tooltip="Overlap tab: Jaccard overlap of the masks between rounds and between trials"),
        *MASK_BINDINGS,
    ]

    def __init__(self) -> None:
        super().__init__(id="run")
        self.model: RunModel | None = None
        self.overlay: RunModel | None = None
        self._token = 0
        self._dirty: set[str] = set()
        self._train_pick: tuple[int, int] | None = None  # None: follow the latest round
        self._layer_cols: tuple[Any, ...] = ()
        self.redraws = 0
        self._pending: Path | None = None  # a run asked for before the screen was mounted
        self._train_mean: bool | None = None  # training curves over trials; None: when the run is not running
        # analysis tabs: the latest read of the LMC files and masks (read_analysis), re-read when stale
        self.analysis: dict[str, Any] | None = None
        self._analysis_stale = True
        self._analysis_loading = False
        self.analysis_reads = 0  # tests wait on it
        self._lmc_pick: int | None = None  # None: the latest round with an LMC result
        self._lmc_options: list[int] | None = None
        self.lmc_busy: str = ""  # what the LMC worker is computing, "" when idle
        self._overlap_shown: Any = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="run-head"):
            yield Static("No run open. Start one from Setup (F2) or open one from Runs (F4).", id="run-progress")
            yield ProgressBar(total=1.0, show_eta=False, show_percentage=True, id="run-bar")
        with TabbedContent(id="run-tabs", initial="tab-sparsity"):
            with TabPane("1 Sparsity", id="tab-sparsity"):
                yield PlotView(id="sparsity-plot")
            with TabPane("2 Early stop", id="tab-stop"):
                yield PlotView(id="stop-plot")
            with TabPane("3 Train", id="tab-training"):
                yield Static("", id="train-title", classes="view-title")
                with Horizontal(id="train-plots"):
                    yield PlotView(id="loss-plot")
                    yield PlotView(id="acc-plot")
            with TabPane("4 Layers", id="tab-layers"):
                yield DataTable(id="layer-table", zebra_stripes=True, cursor_type="row")
            with TabPane("5 Masks", id="tab-masks"):
                yield MasksTab(id="masks-tab")
            with TabPane("6 Log", id="tab-log"):
                yield RichLog(id="run-log", max_lines=3000, wrap=True, markup=False, highlight=False)
            with TabPane("7 LMC", id="tab-lmc"):
                with Horizontal(id="lmc-controls"):
                    yield Label("round", classes="control-label")
                    yield Select[int]([], id="lmc-round", compact=True, allow_blank=True, prompt="–")
                    yield Static("", id="lmc-note")
                with Horizontal(id="lmc-plots"):
                    yield PlotView(id="lmc-interp-plot")
                    with Vertical(id="lmc-side"):
                        yield PlotView(id="lmc-rewind-plot")
                        yield PlotView(id="lmc-barrier-plot")
                        yield SuccessivePlots(id="lmc-successive")
            with TabPane("8 Overlap", id="tab-overlap"):
                yield Static("", id="overlap-title", classes="view-title")
                yield DataTable(id="overlap-table", zebra_stripes=True, cursor_type="row")
                yield Static(Text("Jaccard |A∩B| / |A∪B| of the kept weights, all prunable layers pooled. chance: the "
                                  "overlap of random masks of the same densities, pq / (p + q − pq). IMP masks of "
                                  "consecutive rounds are nested, so their overlap is the density ratio.", style="dim"),
                             id="overlap-help")
        yield LthFooter()

    def on_mount(self) -> None:
        self.set_interval(0.1, self._flush)
        self._draw_empty()
        if self._pending is not None:
            self.call_after_refresh(self.show_run, self._pending)

    def on_resize(self, event: Any) -> None:
        self.set_class(event.size.width >= 140, "wide")
        self.call_after_refresh(self._draw_analysis)  # plot titles are fitted to the plots' widths

    # -- which runs --------------------------------------------------------------------------

    def show_run(self, run_dir: Path) -> None:
        """Shows a run from scratch: the follower replays its whole store into a new model."""
        if not self.is_mounted:
            self._pending = Path(run_dir)
            return
        self._pending = None
        self._token += 1
        self.model = RunModel(Path(run_dir), token=self._token)
        self.overlay = None  # an overlay or control belongs to the run it was chosen for
        self._train_pick = None
        self._layer_cols = ()
        self._train_mean = None
        self._reset_analysis()
        self.query_one("#run-log", RichLog).clear()
        self.query_one(MasksTab).reset(self.model)
        self._dirty = {"progress", "curve", "layers", "masks", "train", "log", "analysis"}
        self.app.set_followed(self.followed(), tokens=self.tokens())
        self.refresh_bindings()

    def set_overlay(self, run_dir: Path | None) -> None:
        if run_dir is None:
            self.overlay = None
        else:
            self._token += 1
            self.overlay = RunModel(Path(run_dir), token=self._token)
        self._dirty |= {"curve", "analysis"}
        self.app.set_followed(self.followed(), tokens=self.tokens())

    def clear_run(self, run_dir: Path) -> None:
        """Forget a run that was deleted."""
        if self.overlay is not None and self.overlay.run_dir == run_dir:
            self.set_overlay(None)
        if self.model is not None and self.model.run_dir == run_dir:
            self.model = None
            self.app.set_followed(self.followed(), tokens=self.tokens())
            self._draw_empty()
            self.query_one("#layer-table", DataTable).clear(columns=True)
            self._layer_cols = ()
            self.query_one(MasksTab).reset(None)
            self.query_one("#run-log", RichLog).clear()
            self._reset_analysis()
            self.sub_title = ""
            self.refresh_bindings()

    def followed(self) -> list[Path]:
        return [m.run_dir for m in (self.model, self.overlay) if m is not None]

    def tokens(self) -> dict[Path, int]:
        return {m.run_dir: m.token for m in (self.model, self.overlay) if m is not None}

    def _model_for(self, run_dir: Path, token: int) -> RunModel | None:
        for m in (self.model, self.overlay):
            if m is not None and m.run_dir == run_dir and m.token == token:
                return m
        return None

    # -- messages from the followers (forwarded by the app) ----------------------------------

    def feed_opened(self, message: Any) -> None:
        model = self._model_for(message.run_dir, message.token)
        if model is None:
            return
        dirty = model.open(message.config, message.status, message.summary, message.error)
        self._mark(model, dirty)

    def feed_events(self, message: Any) -> None:
        model = self._model_for(message.run_dir, message.token)
        if model is None:
            return
        self._mark(model, model.apply(message.events))

    def feed_status(self, message: Any) -> None:
        model = self._model_for(message.run_dir, message.token)
        if model is None:
            return
        self._mark(model, model.set_status(message.status, message.alive, message.error))
        self.refresh_bindings()

    def _mark(self, model: RunModel, dirty: set[str]) -> None:
        if model is self.model:
            self._dirty |= dirty
            return
        model.log.clear()  # only the main run's log is shown
        if dirty & {"curve"}:
            self._dirty.add("curve")

    # -- drawing (at most 10 times a second) -------------------------------------------------

    def _flush(self) -> None:
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        self.redraws += 1
        if self.model is None:
            return
        if "progress" in dirty:
            self.query_one("#run-progress", Static).update(self.model.progress_text())
            bar = self.query_one("#run-bar", ProgressBar)
            bar.update(total=1.0, progress=self.model.fraction_done())
            self.sub_title = self.model.run_id
        if "curve" in dirty:
            self._draw_curves()
        if "train" in dirty:
            self._draw_training()
        if "layers" in dirty:
            self._draw_layers()
        if "masks" in dirty:
            self.query_one(MasksTab).update_controls()
        if "analysis" in dirty:
            self._analysis_stale = True
        if dirty & {"analysis", "curve"}:
            self._draw_analysis()
        self._maybe_load_analysis()
        if "log" in dirty and self.model.log:
            log = self.query_one("#run-log", RichLog)
            lines, self.model.log = self.model.log[-3000:], []
            for line in lines:
                log.write(line)

    def _draw_empty(self) -> None:
        empty = "no run open: F2 Setup to start one, F4 Runs to open one"
        for plot_id in ("#sparsity-plot", "#stop-plot", "#loss-plot", "#acc-plot", "#lmc-interp-plot", "#lmc-rewind-plot",
                        "#lmc-barrier-plot"):
            self.query_one(plot_id, PlotView).set_plot(PlotSpec(empty_message=empty))
        self.query_one("#run-progress", Static).update("No run open. Start one from Setup (F2) or open one from Runs (F4).")

    def _draw_curves(self) -> None:
        assert self.model is not None
        tab = self.query_one("#run-tabs", TabbedContent).get_tab("tab-stop")
        label = "2 Density" if self.model.mask_training else "2 Early stop"
        if tab.label_text != label:
            tab.label = label
        shown = [m for m in (self.model, self.overlay) if m is not None]
        for m, name in zip(shown, run_labels([(m.run_id, m.config) for m in shown])):
            m.shown_label = name
        if self.model.mask_training:
            self._draw_mask_curves()
            return
        live = self.model.live_point()
        for plot_id, metric, ylabel, title in (
            ("#sparsity-plot", "acc", "acc %", f"Test accuracy {accuracy_kind(self.model)} (%) vs weights remaining (%)"),
            ("#stop-plot", "es", "iteration", "Early-stop iteration vs weights remaining (%)"),
        ):
            series = []
            main = curve_series(self.model, metric, MAIN_COLOR)
            series += [s for s in (main, nonzero_series(self.model, metric, curve_series, EXTRA_COLORS[1])) if s is not None]
            if self.overlay is not None:
                other = curve_series(self.overlay, metric, OVERLAY_COLOR)
                if other is not None:
                    series.append(other)
            if live is not None and metric == "acc":
                series.append(Series(f"{self.model.label().split(' ')[0]} round {live[0]} so far", x=(live[1],),
                                     y=(live[2],), color=MAIN_COLOR, marker="●"))
            waiting = "waiting for the first round to finish" if self.model.state == "running" else "no finished round"
            self.query_one(plot_id, PlotView).set_plot(PlotSpec(
                title=title, xlabel="weights remaining %", ylabel=ylabel, series=tuple(series), xlog=True, xreverse=True,
                ylim=None, empty_message=waiting, xmax=100.0))

    def _draw_mask_curves(self) -> None:
        """Learned supermask / edge-popup: accuracy of the expected and a sampled mask, and the
        density of the expected mask, at the end of every training segment (round)."""
        assert self.model is not None
        model = self.model
        x = "end" if any(p["end"] == p["end"] for p in model.curve()) else "round"
        xlabel = "iteration (segment end)" if x == "end" else "round"
        sampled = model.experiment == "supermask"  # edge-popup's top-k mask is not sampled: the two are one
        accs = [curve_series(model, "exp", MAIN_COLOR, f"{model.label()} expected mask" if sampled else None, x=x),
                curve_series(model, "smp", EXTRA_COLORS[0], "sampled mask", x=x) if sampled else None]
        dens = [curve_series(model, "wr", MAIN_COLOR, x=x)]
        if self.overlay is not None and self.overlay.mask_training:
            accs.append(curve_series(self.overlay, "exp", OVERLAY_COLOR, f"{self.overlay.label()} expected", x=x))
            dens.append(curve_series(self.overlay, "wr", OVERLAY_COLOR, x=x))
        waiting = "waiting for the first segment to finish" if model.state == "running" else "no finished round"
        self.query_one("#sparsity-plot", PlotView).set_plot(PlotSpec(
            title=(f"{model.experiment}: test accuracy (%) of the expected and a sampled mask" if sampled
                   else f"{model.experiment}: test accuracy (%) of the learned mask"), xlabel=xlabel,
            ylabel="acc %", series=tuple(s for s in accs if s), empty_message=waiting))
        self.query_one("#stop-plot", PlotView).set_plot(PlotSpec(
            title="Weights remaining (%) in the learned (expected) mask", xlabel=xlabel, ylabel="weights %",
            series=tuple(s for s in dens if s), empty_message=waiting))

    def train_round(self) -> tuple[int, int] | None:
        assert self.model is not None
        if self._train_pick is not None and self._train_pick in self.model.evals:
            return self._train_pick
        keys = sorted(self.model.evals)
        return keys[-1] if keys else None

    def _draw_training(self) -> None:
        assert self.model is not None
        key = self.train_round()
        title = self.query_one("#train-title", Static)
        if key is None:
            title.update("training curves appear with the first evaluation")
            spec = PlotSpec(empty_message="no evaluation yet")
            self.query_one("#loss-plot", PlotView).set_plot(spec)
            self.query_one("#acc-plot", PlotView).set_plot(spec)
            return
        t, r = key
        latest = self._train_pick is None
        wr = self.model.weights.get(key)
        pooled = sorted(tt for (tt, rr) in self.model.evals if rr == r)
        mean_mode = self.train_mean() and len(pooled) > 1
        runs = [self.model.evals[(tt, r)] for tt in pooled] if mean_mode else [self.model.evals[key]]
        who = f"round {r} · mean ± std over {len(pooled)} trials" if mean_mode else f"trial {t + 1} · round {r}"
        hint = "; t: one trial" if mean_mode else ("; t: mean over trials" if len(pooled) > 1 else "")
        title.update(Text.assemble((who, "bold"), (f" · {100 * wr:.1f}% weights" if wr is not None else "", ""),
                                   (f"  ({'latest' if latest else 'picked'}; [ ] other rounds{hint})", "dim")))

        def series(name: str, label: str, color: str, scale: float = 1.0) -> Series | None:
            """Mean ± std over the shown trials at the iterations they all evaluated."""
            iterations = sorted(set.intersection(*({i for i, p in ev.items() if p.get(name) is not None} for ev in runs)))
            if not iterations:
                return None
            stats = [_mean_std([ev[i][name] for ev in runs]) for i in iterations]
            return Series(f"{label} (n={len(runs)})", x=tuple(float(i) for i in iterations),
                          y=tuple(scale * m for m, _ in stats), yerr=tuple(scale * e for _, e in stats), color=color)

        losses = tuple(s for s in (series("train_loss", "train loss", MAIN_COLOR), series("val_loss", "val loss", OVERLAY_COLOR)) if s)
        accs = tuple(s for s in (series("val_accuracy", "val acc", EXTRA_COLORS[0], 100.0),
                                 series("test_accuracy", "test acc", EXTRA_COLORS[1], 100.0),
                                 series("sampled_test_accuracy", "sampled mask", MAIN_COLOR, 100.0)) if s)
        self.query_one("#loss-plot", PlotView).set_plot(PlotSpec(title="loss", xlabel="iteration", ylabel="loss", series=losses,
                                                                 empty_message="no loss yet"))
        self.query_one("#acc-plot", PlotView).set_plot(PlotSpec(title="accuracy (%)", xlabel="iteration", ylabel="%",
                                                                series=accs, empty_message="no accuracy yet"))

    def train_mean(self) -> bool:
        """Whether the training curves pool the trials (t toggles; by default once the run stopped)."""
        if self._train_mean is not None:
            return self._train_mean
        return self.model is not None and self.model.state != "running"

    # -- analysis tabs: LMC and mask overlap -------------------------------------------------

    def _reset_analysis(self) -> None:
        self.analysis = None
        self._analysis_stale = True
        self._lmc_pick = None
        self._lmc_options = None
        self._overlap_shown = None
        self.query_one("#overlap-table", DataTable).clear(columns=True)
        with self.prevent(Select.Changed):
            self.query_one("#lmc-round", Select).set_options([])

    def _analysis_visible(self) -> bool:
        return self.query_one("#run-tabs", TabbedContent).active in ANALYSIS_TABS

    def _maybe_load_analysis(self, force: bool = False) -> None:
        """Re-reads the LMC files and masks (in a worker) when they changed and a tab shows them."""
        if self.model is None or self._analysis_loading:
            return
        if not (force or (self._analysis_stale and self._analysis_visible())):
            return
        self._analysis_stale = False
        self._analysis_loading = True
        model = self.model

        def done(result: dict[str, Any]) -> None:
            self._analysis_loading = False
            self.analysis_reads += 1
            if self.model is model:
                self.analysis = result
                self._draw_analysis()
            self._maybe_load_analysis()

        def failed(error: BaseException) -> None:
            self._analysis_loading = False

        overlay = self.overlay.run_dir if self.overlay else None
        self.app.start_worker(read_analysis, model.run_dir, overlay, name="read LMC and masks", group="analysis",
                              on_success=done, on_error=failed)

    @on(TabbedContent.TabActivated, "#run-tabs")
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.refresh_bindings()  # the footer shows the keys of the tab now shown
        if event.pane is not None and event.pane.id in ANALYSIS_TABS:
            self._maybe_load_analysis()
            self.call_after_refresh(self._draw_analysis)

    def lmc_records(self) -> list[dict[str, Any]]:
        if self.model is None or self.analysis is None or self.analysis.get("run_dir") != self.model.run_dir:
            return []
        return list(self.analysis.get("lmc") or [])

    def finished_rounds(self) -> list[int]:
        return sorted({r for (_, r) in self.model.records}) if self.model is not None else []

    def lmc_round(self) -> int | None:
        """The round the LMC tab shows: the picked one, else the latest with a result, else the latest finished."""
        records = self.lmc_records()
        options = sorted(set(lmc_rounds(records)) | set(self.finished_rounds()))
        if self._lmc_pick is not None and self._lmc_pick in options:
            return self._lmc_pick
        with_results = lmc_rounds(records)
        if with_results:
            return with_results[-1]
        return options[-1] if options else None

    def _draw_analysis(self) -> None:
        if self.model is None:
            return
        model = self.model
        records = self.lmc_records()
        weights = {p["round"]: p["weights_remaining"] for p in model.curve()}
        errors = list((self.analysis or {}).get("errors") or [])
        interp = self.query_one("#lmc-interp-plot", PlotView)
        rewind = self.query_one("#lmc-rewind-plot", PlotView)
        barrier = self.query_one("#lmc-barrier-plot", PlotView)
        note = self.query_one("#lmc-note", Static)
        if model.mask_training:
            message = f"LMC is measured on IMP runs; this is a {model.experiment} run"
            for view in (interp, rewind, barrier):
                view.set_plot(PlotSpec(title="linear mode connectivity", empty_message=message))
            note.update(Text(message, style="dim"))
        else:
            options = sorted(set(lmc_rounds(records)) | set(self.finished_rounds()))
            select = self.query_one("#lmc-round", Select)
            r = self.lmc_round()
            with self.prevent(Select.Changed):
                if options != self._lmc_options:
                    self._lmc_options = options
                    select.set_options([(str(o), o) for o in options])
                if r is not None and select.value != r:
                    select.value = r
            interp.set_plot(fit_spec(interpolation_plot(records, r), interp.content_size.width))
            rewind.set_plot(fit_spec(rewind_plot(records, r, model.config, model.iterations), rewind.content_size.width))
            barrier.set_plot(fit_spec(barrier_plot(records, weights), barrier.content_size.width))
            overlay = (self.overlay.label(), OVERLAY_COLOR) if self.overlay else ()
            self.query_one(SuccessivePlots).show(self.analysis, model.run_dir, *overlay)
            text = Text()
            if self.lmc_busy:
                text.append(f" computing {self.lmc_busy}…", style="bold yellow")
            elif self.analysis is None and self._analysis_loading:
                text.append(" reading LMC results…", style="dim")
            else:
                text.append(f" {len(records)} result(s)" if records else " no result yet", style="dim")
                text.append(" · l: compute (rewind k) · [ ] round", style="dim")
            note.update(text)
        self._draw_overlap(weights, errors)

    def _draw_overlap(self, weights: dict[int, float], errors: list[str]) -> None:
        assert self.model is not None
        overlap = (self.analysis or {}).get("overlap") if self.analysis and self.analysis.get("run_dir") == self.model.run_dir else None
        columns, rows = overlap_table(overlap, weights)
        title = self.query_one("#overlap-title", Static)
        trials = len((overlap or {}).get("consecutive") or {})
        if errors:
            title.update(Text("; ".join(errors), style="red"))
        elif overlap is None:
            title.update(Text("reading masks…" if self._analysis_loading or self._analysis_stale else "no masks stored",
                              style="dim"))
        else:
            pairs = trials * (trials - 1) // 2
            what = ("t1" if trials == 1 else "t1…" if trials > 4 else " ".join(f"t{t + 1}" for t in range(trials)))
            title.update(Text.assemble(("Mask overlap ", "bold"), (f"{what}: vs the previous round", ""),
                                       (f" · across: mean of {pairs} trial pair{'s' if pairs != 1 else ''}"
                                        if trials > 1 else "", "")))
        shown = (tuple(columns), tuple(tuple(str(c) for c in row) for row in rows))
        if shown == self._overlap_shown:
            return
        self._overlap_shown = shown
        table = self.query_one("#overlap-table", DataTable)
        cursor = table.cursor_row
        table.clear(columns=True)
        for label, key in columns:
            table.add_column(label, key=key)
        for row in rows:
            table.add_row(*row, key=str(row[0]))
        if rows and cursor is not None and 0 < cursor < len(rows):
            table.move_cursor(row=cursor, animate=False)

    @on(Select.Changed, "#lmc-round")
    def _lmc_select(self, event: Select.Changed) -> None:
        event.stop()
        if isinstance(event.value, int):
            self._lmc_pick = event.value
            self._draw_analysis()

    def _draw_layers(self) -> None:
        assert self.model is not None
        table = self.query_one("#layer-table", DataTable)
        rounds = sorted({r for (_, r) in self.model.layers})
        names = list(self.model.layer_names)
        shape = (tuple(rounds), tuple(names))
        if shape != self._layer_cols:
            table.clear(columns=True)
            table.add_column("layer", key="layer")
            for r in rounds:
                table.add_column(f"r{r} %", key=f"r{r}")
            for name in names + ["all weights"]:
                table.add_row(name, *([""] * len(rounds)), key=name)
            self._layer_cols = shape
        for r in rounds:
            for name in names:
                values = [v[name] for (t, rr), v in self.model.layers.items() if rr == r and name in v]
                table.update_cell(name, f"r{r}", layer_cell(self.model, r, name, _mean_std(values)[0]))
            overall = [w for (t, rr), w in self.model.weights.items() if rr == r]
            table.update_cell("all weights", f"r{r}", layer_cell(self.model, r, None, _mean_std(overall)[0]))

    # -- actions -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        model = self.model
        if action in ("mask", "tab"):  # not while a list is open: its keys are its own
            if type(self.focused).__name__ == "SelectOverlay":
                return False
            return action == "tab" or self.query_one("#run-tabs", TabbedContent).active == "tab-masks"
        if action in ("cancel_run",):
            return model is not None and (model.alive or model.state == "lost")
        if action == "resume_run":
            return model is not None and not model.alive and model.state in ("cancelled", "interrupted", "failed", "lost")
        if action == "control":
            return (model is not None and model.config is not None and not model.mask_training
                    and getattr(model.config.prune, "mask1", "") != "random_reinit")
        if action in ("export", "overlay", "round"):
            return model is not None
        if action == "lmc":
            return model is not None and not model.mask_training and bool(model.records)
        if action == "trials":
            return model is not None and model.trials > 1
        return True

    def action_mask(self, action: str, dx: int = 0, dy: int = 0) -> None:
        self.query_one(MasksTab).key(action, dx, dy)

    def action_tab(self, index: int) -> None:
        tabs = self.query_one("#run-tabs", TabbedContent)
        if self.focused is not None and tabs.active_pane is not None and tabs.active_pane in self.focused.ancestors:
            self.set_focus(None)  # a focused widget in the old pane would pull the tabs back to it
        tabs.active = TABS[index]

    def action_round(self, step: int) -> None:
        if self.model is None:
            return
        tabs = self.query_one("#run-tabs", TabbedContent)
        if tabs.active == "tab-lmc":
            options = self._lmc_options or []
            current = self.lmc_round()
            if options and current in options:
                i = max(0, min(len(options) - 1, options.index(current) + step))
                self._lmc_pick = options[i]
                self._draw_analysis()
            return
        if not self.model.evals:
            return
        keys = sorted(self.model.evals)
        current = self.train_round()
        i = keys.index(current) if current in keys else len(keys) - 1
        i = max(0, min(len(keys) - 1, i + step))
        self._train_pick = None if i == len(keys) - 1 else keys[i]
        self._dirty.add("train")
        tabs = self.query_one("#run-tabs", TabbedContent)
        if tabs.active != "tab-training":
            tabs.active = "tab-training"

    def action_trials(self) -> None:
        self._train_mean = not self.train_mean()
        self._dirty.add("train")
        tabs = self.query_one("#run-tabs", TabbedContent)
        if tabs.active != "tab-training":
            tabs.active = "tab-training"

    def action_lmc(self) -> None:
        """Asks for a rewind point k, then measures LMC of the LMC tab's round in a worker."""
        model = self.model
        if model is None:
            return
        if model.mask_training:
            self.app.notify(f"LMC is measured on IMP runs; this is a {model.experiment} run", severity="warning")
            return
        if self.lmc_busy:
            self.app.notify(f"already computing {self.lmc_busy}", title="LMC", severity="warning")
            return
        r = self.lmc_round()
        trials = sorted(t for (t, rr) in model.records if rr == r)
        if r is None or not trials:
            self.app.notify("no finished round to measure yet", title="LMC", severity="warning")
            return
        from lth_tui.screens.dialogs import LmcDialog

        own = start_rewind_point(model.config, 1, model.iterations) if model.config is not None else None
        iterations = model.iterations or 10**9  # the engine checks k against the schedule too

        def chosen(answer: tuple[int, int | None] | None) -> None:
            if answer is not None:
                self.start_lmc(model.run_dir, r, *answer)

        self.app.push_screen(LmcDialog(model.run_id, r, trials, iterations, own), chosen)

    def start_lmc(self, run_dir: Path, round_: int, trial: int, k: int | None) -> None:
        """run_lmc in a worker (group "lmc"); the views re-read the run store when it is done."""
        what = f"round {round_} trial {trial + 1} from {'its start' if k is None else f'k={k}'}"
        self.lmc_busy = what
        self._lmc_pick = round_
        self.query_one("#run-tabs", TabbedContent).active = "tab-lmc"
        self._draw_analysis()

        def compute() -> dict[str, Any]:
            from engine.lmc import run_lmc

            worker = get_current_worker()
            return run_lmc(run_dir, round_, rewind_iteration=k, trial=trial, should_stop=lambda: worker.is_cancelled)

        def finished() -> None:
            self.lmc_busy = ""
            self._analysis_stale = True
            if self.model is not None and self.model.run_dir == run_dir:
                self._draw_analysis()
                self._maybe_load_analysis(force=True)

        def done(record: dict[str, Any]) -> None:
            verdict = "stable" if record.get("stable") else "unstable"
            self.app.notify(f"{what}: barrier {100 * record['barrier']:.2f}% ({verdict})", title="LMC done")
            finished()

        self.app.start_worker(compute, name=f"LMC {what}", group="lmc", on_success=done,
                              on_error=lambda error: finished())

    def action_cancel_run(self) -> None:
        if self.model is not None:
            self.app.confirm_cancel(self.model.run_dir)

    def action_resume_run(self) -> None:
        if self.model is not None:
            self.app.resume_run(self.model.run_dir)

    def action_export(self) -> None:
        if self.model is not None:
            self.app.export_dialog([self.model.run_dir])

    def action_overlay(self) -> None:
        if self.model is None:
            return
        exclude = self.model.run_dir

        def picked(choice: Any) -> None:
            if choice is None or self.model is None or self.model.run_dir != exclude:
                return  # cancelled, or another run was opened meanwhile: the overlay was for this one
            self.set_overlay(choice or None)

        self.app.pick_run("Overlay a run on the curves", exclude, picked)

    def action_control(self) -> None:
        if self.model is not None:
            self.app.start_control(self.model.run_dir)
