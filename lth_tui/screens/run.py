"""Run: one run live or finished — progress, sparsity curve, early stop, training curves,
per-layer weights remaining, mask heatmap and the event log.

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
from textual.widgets import DataTable, Footer, Header, Label, ProgressBar, RichLog, Select, Static, TabbedContent, TabPane

from lth_tui.components.heatmap import MaskHeatmap
from lth_tui.components.plot import PlotSpec, PlotView, Series

MAIN_COLOR = "#56b4e9"
OVERLAY_COLOR = "#e69f00"
EXTRA_COLORS = ("#009e73", "#cc79a7")
TABS = ("tab-sparsity", "tab-stop", "tab-training", "tab-layers", "tab-masks", "tab-log")


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
    # ETA: the first eval after the latest run_start, and the latest eval
    _rate_start: tuple[float, int] | None = None
    _last: tuple[float, int] | None = None
    _awaiting_rate_start: bool = False

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    # -- feeding -----------------------------------------------------------------------------

    def open(self, config: Any, status: dict[str, Any] | None, summary: dict[str, Any] | None, error: str) -> set[str]:
        self.opened = True
        self.config, self.status, self.error = config, status, error
        if config is not None:
            from engine.runner import total_rounds

            self.trials = config.trials
            self.rounds = total_rounds(config)
        if status:
            self.state = status.get("state", self.state)
            if status.get("error"):
                self.error = status["error"]
        if config is None or status is None:
            self.state = "damaged"
        if summary:
            for t, trial in enumerate(summary.get("trials", [])):
                for record in trial.get("rounds", []):
                    self._record(t, record)
        if error:
            self.log.append(Text(f"cannot read the whole run: {error}", style="bold red"))
        return {"progress", "curve", "layers", "masks"}

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
            self.state = status.get("state", self.state)
            if self.state == "running" and not alive:
                self.state = "interrupted"
            if status.get("error"):
                self.error = status["error"]
        elif error:
            self.error = error
        if alive != self.alive:
            self.alive = alive
        return changed

    def apply(self, events: list[dict[str, Any]]) -> set[str]:
        """Feeds events in file order; returns the parts of the screen that changed."""
        dirty: set[str] = set()
        for ev in events:
            kind = ev.get("event")
            when = ev.get("time")
            t, r = ev.get("trial"), ev.get("round")
            if kind == "run_start":
                self.trials = ev.get("trials", self.trials)
                self.rounds = ev.get("rounds", self.rounds)
                self.iterations = ev.get("iterations", self.iterations)
                self.device = ev.get("device", self.device)
                self.state = "running"
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
                dirty |= {"progress", "layers", "masks", "train"}
            elif kind == "eval" and t is not None and r is not None:
                it = int(ev.get("iteration", 0))
                self.evals.setdefault((t, r), {})[it] = ev
                self.position = (t, r, it)
                if when is not None:
                    done = self.done_iterations(t, r, it)
                    if self._awaiting_rate_start:
                        self._rate_start, self._awaiting_rate_start = (when, done), False
                    self._last = (when, done)
                acc = ev.get("test_accuracy")
                loss = ev.get("val_loss")
                self.log.append(Text(f"  t{t + 1} r{r} it {it}: val loss {loss:.4f}  test acc {100 * acc:.2f}%"
                                     if acc is not None and loss is not None else f"  t{t + 1} r{r} it {it}", style="dim"))
                dirty |= {"progress", "train"}
            elif kind == "round_end" and t is not None:
                self._record(t, ev)
                acc = ev.get("test_accuracy_at_early_stop")
                extra = f", LMC barrier {100 * ev['lmc_barrier']:.2f}%" if ev.get("lmc_barrier") is not None else ""
                self.log.append(Text(f"trial {t + 1} round {ev.get('round')} done: test acc {100 * (acc or 0):.2f}% at early stop "
                                     f"(it {ev.get('early_stop_iteration')}), {100 * ev.get('weights_remaining', 1):.2f}% weights, "
                                     f"{fmt_seconds(ev.get('seconds'))}{extra}", style="green"))
                dirty |= {"progress", "curve", "layers", "masks"}
            elif kind == "run_end":
                self.state = ev.get("state", self.state)
                if ev.get("error"):
                    self.error = ev["error"]
                style = "bold green" if self.state == "done" else "bold yellow"
                self.log.append(Text(f"run {self.state}" + (f": {ev.get('error')}" if ev.get("error") else ""), style=style))
                dirty |= {"progress"}
            elif kind == "error":
                self.state = "failed"
                self.error = ev.get("message", "error")
                self.log.append(Text(f"error: {self.error}", style="bold red"))
                for line in str(ev.get("traceback", "")).rstrip().splitlines()[-6:]:
                    self.log.append(Text("  " + line, style="red"))
                dirty |= {"progress"}
            elif kind == "lmc" and ev.get("barrier") is not None:
                where = f"trial {(t or 0) + 1} round {r}" if r is not None else "run"
                stable = "stable" if ev.get("stable") else "unstable"
                self.log.append(Text(f"{where}: linear mode connectivity barrier {100 * ev['barrier']:.2f}% ({stable})",
                                     style="magenta"))
            else:
                self.log.append(Text(f"{kind}: " + ", ".join(f"{k}={v}" for k, v in ev.items() if k not in ("event", "time")),
                                     style="dim"))
            dirty.add("log")
        return dirty

    # -- derived figures ---------------------------------------------------------------------

    def done_iterations(self, t: int, r: int, it: int) -> int:
        return (t * self.rounds + r) * self.iterations + it

    @property
    def total_iterations(self) -> int:
        return self.trials * self.rounds * self.iterations

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
            acc, acc_std = _mean_std([x.get("test_accuracy_at_early_stop") for x in recs])
            es, es_std = _mean_std([x.get("early_stop_iteration") for x in recs])
            final, final_std = _mean_std([x.get("test_accuracy_final") for x in recs])
            points.append({"round": r, "weights_remaining": wr, "acc": acc, "acc_std": acc_std, "es": es,
                           "es_std": es_std, "final": final, "final_std": final_std, "n": len(recs)})
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
        if self.config is None:
            return self.run_id
        p = self.config.prune
        return f"{self.run_id[-6:]} {p.criterion}/{p.mask1}"

    def progress_text(self) -> Text:
        text = Text()
        state = self.state
        color = {"running": "bold green", "done": "bold cyan", "failed": "bold red", "cancelled": "bold yellow",
                 "interrupted": "bold yellow"}.get(state, "bold")
        text.append(f" {state} ", style=f"reverse {color}")
        text.append(f" {self.run_id}", style="bold")
        if self.device:
            text.append(f" on {self.device}", style="dim")
        text.append("\n")
        if self.position is not None:
            t, r, it = self.position
            text.append(f"trial {t + 1}/{self.trials} · round {r}/{max(self.rounds - 1, 0)} · it {it}/{self.iterations}")
            wr = self.weights.get((t, r))
            if wr is not None:
                text.append(f" · {100 * wr:.1f}% weights")
            last = self.evals.get((t, r), {})
            if last:
                ev = last[max(last)]
                if ev.get("test_accuracy") is not None:
                    text.append(f" · acc {100 * ev['test_accuracy']:.1f}%")
        elif self.state == "running" and not self.started:
            text.append("starting: loading the data and building the model…", style="italic")
        else:
            text.append(f"{self.rounds_done()} of {self.trials * self.rounds} rounds")
        if self.state == "running" and self.alive:
            text.append(f" · ETA {fmt_seconds(self.eta())}", style="bold")
        best = self.best()
        if best is not None:
            text.append(f" · best {100 * best['acc']:.2f}% at {100 * best['weights_remaining']:.1f}%", style="cyan")
        if self.error and self.state in ("failed", "interrupted", "damaged"):
            text.append(f"\n{self.error}", style="red")
        return text

    def fraction_done(self) -> float:
        if self.state == "done":
            return 1.0
        if self.position is None or not self.total_iterations:
            return self.rounds_done() / max(self.trials * self.rounds, 1)
        return min(1.0, self.done_iterations(*self.position) / self.total_iterations)


def curve_series(model: RunModel, metric: str, color: str | None, label: str | None = None) -> Series | None:
    """One run's sparsity curve as a plot series (x: % weights remaining)."""
    points = [p for p in model.curve() if p[metric] == p[metric]]
    if not points:
        return None
    scale = 100.0 if metric in ("acc", "final") else 1.0
    return Series(label or model.label(), x=tuple(100 * p["weights_remaining"] for p in points),
                  y=tuple(scale * p[metric] for p in points), yerr=tuple(scale * p[metric + "_std"] for p in points),
                  color=color)


class RunScreen(Screen):
    """One run: progress and the six views (tabs)."""

    BINDINGS = [
        Binding("x", "cancel_run", "Cancel run", id="run.cancel",
                tooltip="Cancel run: stop the live run after asking; it checkpoints and stays resumable"),
        Binding("r", "resume_run", "Resume", id="run.resume", tooltip="Resume a cancelled or interrupted run"),
        Binding("o", "overlay", "Overlay run", id="run.overlay",
                tooltip="Overlay run: draw another run's curves beside this one (pick from a list)"),
        Binding("c", "control", "Reinit control", id="run.control",
                tooltip="Reinit control: start this config with mask-1 = random_reinit and overlay it"),
        Binding("e", "export", "Export", id="run.export", tooltip="Export: md, json, csv or png (into the run dir by default)"),
        Binding("left_square_bracket", "round(-1)", "Previous round (training curves)", key_display="[", show=False,
                id="run.prev_round"),
        Binding("right_square_bracket", "round(1)", "Next round (training curves)", key_display="]", show=False,
                id="run.next_round"),
        Binding("1", "tab(0)", "Sparsity", show=False, id="run.tab_sparsity"),
        Binding("2", "tab(1)", "Early stop", show=False, id="run.tab_stop"),
        Binding("3", "tab(2)", "Training", show=False, id="run.tab_training"),
        Binding("4", "tab(3)", "Layers", show=False, id="run.tab_layers"),
        Binding("5", "tab(4)", "Masks", show=False, id="run.tab_masks"),
        Binding("6", "tab(5)", "Log", show=False, id="run.tab_log"),
    ]

    def __init__(self) -> None:
        super().__init__(id="run")
        self.model: RunModel | None = None
        self.overlay: RunModel | None = None
        self._token = 0
        self._dirty: set[str] = set()
        self._train_pick: tuple[int, int] | None = None  # None: follow the latest round
        self._mask_pick: dict[str, Any] = {}  # layer / round / trial chosen by the user
        self._mask_loaded: tuple[Any, ...] | None = None
        self.mask_title = ""
        self._layer_cols: tuple[Any, ...] = ()
        self.redraws = 0
        self._pending: Path | None = None  # a run asked for before the screen was mounted

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
            with TabPane("3 Training", id="tab-training"):
                yield Static("", id="train-title", classes="view-title")
                with Horizontal(id="train-plots"):
                    yield PlotView(id="loss-plot")
                    yield PlotView(id="acc-plot")
            with TabPane("4 Layers", id="tab-layers"):
                yield DataTable(id="layer-table", zebra_stripes=True, cursor_type="row")
            with TabPane("5 Masks", id="tab-masks"):
                with Horizontal(id="mask-controls"):
                    yield Label("layer", classes="control-label")
                    yield Select[str]([], id="mask-layer", compact=True, allow_blank=True, prompt="–")
                    yield Label("round", classes="control-label")
                    yield Select[int]([], id="mask-round", compact=True, allow_blank=True, prompt="–")
                    yield Label("trial", classes="control-label")
                    yield Select[int]([], id="mask-trial", compact=True, allow_blank=True, prompt="–")
                with Horizontal(id="mask-views"):
                    yield MaskHeatmap(id="mask-heatmap", empty_message="no mask yet (round 0 keeps every weight)")
                    yield MaskHeatmap(id="pixel-heatmap", empty_message="", classes="hidden")
            with TabPane("6 Log", id="tab-log"):
                yield RichLog(id="run-log", max_lines=3000, wrap=True, markup=False, highlight=False)
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(0.1, self._flush)
        self._draw_empty()
        if self._pending is not None:
            self.call_after_refresh(self.show_run, self._pending)

    def on_resize(self, event: Any) -> None:
        self.set_class(event.size.width >= 140, "wide")

    # -- which runs --------------------------------------------------------------------------

    def show_run(self, run_dir: Path) -> None:
        """Shows a run from scratch: the follower replays its whole store into a new model."""
        if not self.is_mounted:
            self._pending = Path(run_dir)
            return
        self._pending = None
        self._token += 1
        self.model = RunModel(Path(run_dir), token=self._token)
        if self.overlay is not None and self.overlay.run_dir == Path(run_dir):
            self.overlay = None
        self._train_pick = None
        self._mask_pick = {}
        self._mask_loaded = None
        self._layer_cols = ()
        self.query_one("#run-log", RichLog).clear()
        self.query_one("#mask-heatmap", MaskHeatmap).clear()
        self.query_one("#pixel-heatmap", MaskHeatmap).add_class("hidden")
        self._dirty = {"progress", "curve", "layers", "masks", "train", "log"}
        self.app.set_followed(self.followed(), tokens=self.tokens())
        self.refresh_bindings()

    def set_overlay(self, run_dir: Path | None) -> None:
        if run_dir is None:
            self.overlay = None
        else:
            self._token += 1
            self.overlay = RunModel(Path(run_dir), token=self._token)
        self._dirty |= {"curve"}
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
            self.query_one("#mask-heatmap", MaskHeatmap).clear()
            self.query_one("#pixel-heatmap", MaskHeatmap).add_class("hidden")
            self.query_one("#run-log", RichLog).clear()
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
            self._update_mask_controls()
        if "log" in dirty and self.model.log:
            log = self.query_one("#run-log", RichLog)
            lines, self.model.log = self.model.log[-3000:], []
            for line in lines:
                log.write(line)

    def _draw_empty(self) -> None:
        empty = "no run open: F2 Setup to start one, F4 Runs to open one"
        for plot_id in ("#sparsity-plot", "#stop-plot", "#loss-plot", "#acc-plot"):
            self.query_one(plot_id, PlotView).set_plot(PlotSpec(empty_message=empty))
        self.query_one("#run-progress", Static).update("No run open. Start one from Setup (F2) or open one from Runs (F4).")

    def _draw_curves(self) -> None:
        assert self.model is not None
        for plot_id, metric, ylabel, title in (
            ("#sparsity-plot", "acc", "acc %", "Test accuracy at early stop (%) vs weights remaining (%)"),
            ("#stop-plot", "es", "iteration", "Early-stop iteration vs weights remaining (%)"),
        ):
            series = []
            main = curve_series(self.model, metric, MAIN_COLOR)
            if main is not None:
                series.append(main)
            if self.overlay is not None:
                other = curve_series(self.overlay, metric, OVERLAY_COLOR)
                if other is not None:
                    series.append(other)
            waiting = "waiting for the first round to finish" if self.model.state == "running" else "no finished round"
            self.query_one(plot_id, PlotView).set_plot(PlotSpec(
                title=title, xlabel="weights remaining %", ylabel=ylabel, series=tuple(series), xlog=True, xreverse=True,
                ylim=None, empty_message=waiting))

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
        points = [self.model.evals[key][i] for i in sorted(self.model.evals[key])]
        latest = self._train_pick is None
        wr = self.model.weights.get(key)
        title.update(Text.assemble((f"trial {t + 1} · round {r}", "bold"),
                                   (f" · {100 * wr:.1f}% weights" if wr is not None else "", ""),
                                   (f"  ({'latest' if latest else 'picked'}; [ ] other rounds)", "dim")))

        def series(name: str, label: str, color: str, scale: float = 1.0) -> Series | None:
            pts = [(p["iteration"], p[name]) for p in points if p.get(name) is not None]
            if not pts:
                return None
            return Series(label, x=tuple(float(x) for x, _ in pts), y=tuple(scale * y for _, y in pts), color=color)

        losses = tuple(s for s in (series("train_loss", "train loss", MAIN_COLOR), series("val_loss", "val loss", OVERLAY_COLOR)) if s)
        accs = tuple(s for s in (series("val_accuracy", "val acc", EXTRA_COLORS[0], 100.0),
                                 series("test_accuracy", "test acc", EXTRA_COLORS[1], 100.0)) if s)
        self.query_one("#loss-plot", PlotView).set_plot(PlotSpec(title="loss", xlabel="iteration", ylabel="loss", series=losses,
                                                                 empty_message="no loss yet"))
        self.query_one("#acc-plot", PlotView).set_plot(PlotSpec(title="accuracy (%)", xlabel="iteration", ylabel="%",
                                                                series=accs, empty_message="no accuracy yet"))

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
                mean, _ = _mean_std(values)
                table.update_cell(name, f"r{r}", "" if mean != mean else f"{100 * mean:.1f}")
            overall = [w for (t, rr), w in self.model.weights.items() if rr == r]
            mean, _ = _mean_std(overall)
            table.update_cell("all weights", f"r{r}", "" if mean != mean else Text(f"{100 * mean:.1f}", style="bold"))

    # -- masks -------------------------------------------------------------------------------

    def _update_mask_controls(self) -> None:
        assert self.model is not None
        model = self.model
        layer_sel = self.query_one("#mask-layer", Select)
        round_sel = self.query_one("#mask-round", Select)
        trial_sel = self.query_one("#mask-trial", Select)
        trials = sorted({t for (t, _) in model.layers})
        rounds = sorted({r for (_, r) in model.layers})
        with self.prevent(Select.Changed):
            if [o for o in model.layer_names] != getattr(self, "_layer_opts", None):
                self._layer_opts = list(model.layer_names)
                layer_sel.set_options([(name, name) for name in model.layer_names])
            if rounds != getattr(self, "_round_opts", None):
                self._round_opts = rounds
                round_sel.set_options([(f"{r}", r) for r in rounds])
            if trials != getattr(self, "_trial_opts", None):
                self._trial_opts = trials
                trial_sel.set_options([(f"{t + 1}", t) for t in trials])
            pick = self.mask_choice()
            if pick is not None:
                layer, r, t = pick
                layer_sel.value, round_sel.value, trial_sel.value = layer, r, t
        self._load_mask()

    def mask_choice(self) -> tuple[str, int, int] | None:
        """(layer, round, trial) to show: what the user picked, else the first layer of the latest round."""
        assert self.model is not None
        model = self.model
        if not model.layers or not model.layer_names:
            return None
        latest_t, latest_r = max(model.layers)
        layer = self._mask_pick.get("layer", model.layer_names[0])
        t = self._mask_pick.get("trial", latest_t)
        r = self._mask_pick.get("round", max((rr for (tt, rr) in model.layers if tt == t), default=latest_r))
        if (t, r) not in model.layers:
            t, r = latest_t, latest_r
        return layer, r, t

    @on(Select.Changed, "#mask-layer, #mask-round, #mask-trial")
    def _mask_select(self, event: Select.Changed) -> None:
        event.stop()
        if event.value is Select.NULL:
            return
        name = {"mask-layer": "layer", "mask-round": "round", "mask-trial": "trial"}[event.select.id]
        self._mask_pick[name] = event.value
        self._load_mask()

    def _load_mask(self) -> None:
        if self.model is None:
            return
        pick = self.mask_choice()
        if pick is None:
            return
        layer, r, t = pick
        key = (self.model.run_dir, self.model.token, layer, r, t)
        if key == self._mask_loaded:
            return
        self._mask_loaded = key
        image_shape = None
        if self.model.config is not None and self.model.layer_names and layer == self.model.layer_names[0]:
            image_shape = input_image_shape(self.model.config)
        self.app.load_mask(self.model.run_dir, t, r, layer, image_shape, self._mask_ready)

    def _mask_ready(self, result: dict[str, Any]) -> None:
        if self.model is None or result["run_dir"] != self.model.run_dir:
            return
        heat = self.query_one("#mask-heatmap", MaskHeatmap)
        pixels = self.query_one("#pixel-heatmap", MaskHeatmap)
        self.mask_title = result["title"]
        heat.set_matrix(result["matrix"], result["title"])
        if result.get("density") is not None:
            pixels.set_matrix(result["density"], result["density_title"])
            pixels.remove_class("hidden")
        else:
            pixels.add_class("hidden")

    # -- actions -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        model = self.model
        if action in ("cancel_run",):
            return model is not None and model.alive
        if action == "resume_run":
            return model is not None and not model.alive and model.state in ("cancelled", "interrupted", "failed")
        if action == "control":
            return model is not None and model.config is not None and getattr(model.config.prune, "mask1", "") != "random_reinit"
        if action in ("export", "overlay", "round"):
            return model is not None
        return True

    def action_tab(self, index: int) -> None:
        self.query_one("#run-tabs", TabbedContent).active = TABS[index]

    def action_round(self, step: int) -> None:
        if self.model is None or not self.model.evals:
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
            if choice is None:
                return
            self.set_overlay(choice or None)

        self.app.pick_run("Overlay a run on the curves", exclude, picked)

    def action_control(self) -> None:
        if self.model is not None:
            self.app.start_control(self.model.run_dir)


def input_image_shape(config: Any) -> tuple[int, int] | None:
    """(H, W) when the model's first layer reads a single-channel image pixel by pixel (MNIST-like)."""
    try:
        from engine.datasets import DATASETS

        shape = DATASETS[config.data.name].input_shape
    except (KeyError, AttributeError, ImportError):
        return None
    if len(shape) == 3 and shape[0] == 1:
        return int(shape[1]), int(shape[2])
    if len(shape) == 1 and int(shape[0]) == 784:
        return 28, 28
    return None


def mask_matrix(run_dir: Path, trial: int, round_: int, layer: str, image_shape: tuple[int, int] | None) -> dict[str, Any]:
    """Reads one layer's mask (in a worker): the 2-D matrix for the heatmap and, for the first
    layer of an image model, the fraction of weights kept per input pixel."""
    import numpy as np
    import torch

    from engine.store import load_tensors
    from lth_tui.components.heatmap import input_pixel_density

    masks = load_tensors(Path(run_dir) / f"trial-{trial}" / f"round-{round_}" / "mask.safetensors")
    if layer not in masks:
        raise KeyError(f"{layer} has no mask in trial {trial} round {round_}; masks: {', '.join(masks)}")
    tensor = masks[layer]
    mask = tensor.reshape(tensor.shape[0], -1) if tensor.dim() != 2 else tensor
    matrix = mask.to(dtype=torch.float32).numpy()
    if matrix.ndim == 1:
        matrix = matrix[np.newaxis, :]
    shape = f" [{'×'.join(str(s) for s in tensor.shape)} as rows × fan-in]" if tensor.dim() != 2 else ""
    result = {"run_dir": Path(run_dir), "matrix": matrix, "title": f"{layer} r{round_} t{trial + 1}{shape}",
              "density": None, "density_title": ""}
    if image_shape is not None and tensor.dim() == 2 and matrix.shape[1] == image_shape[0] * image_shape[1]:
        result["density"] = input_pixel_density(matrix, image_shape)
        result["density_title"] = f"per input pixel ({image_shape[0]}×{image_shape[1]})"
    return result
