"""The Run screen's view-model: everything shown about one run, rebuilt from the run store's
messages (config, status, summary.json, then events.jsonl from the start), with no widgets.

A finished run opened later and a live one started anywhere feed the same RunModel, so they
look the same. Its curve is summary.json's (engine.records.curve_points, one mean ± std over
trials) with the few view figures the plots need beside it; the tabs
(lth_tui/screens/run_tabs/) draw from it and never read files for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.text import Text

from engine.process import shown_state
from engine.records import MeanStd, curve_points, mean_std
from engine.run_index import headline_accuracy
from lth_tui.completion import Completion
from lth_tui.components.plot import Series
from lth_tui.run_labels import run_labels
from lth_tui.screens.analysis import n_label

__all__ = ["EXTRA_COLORS", "MAIN_COLOR", "OVERLAY_COLOR", "RunModel", "Shown", "curve_series", "figure", "fmt_seconds",
           "pct"]

MAIN_COLOR = "#56b4e9"
OVERLAY_COLOR = "#e69f00"
EXTRA_COLORS = ("#009e73", "#cc79a7")


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
                done_before = f", {ev.get('rounds_done')} round(s) already done" if ev.get("rounds_done") else ""
                self.log.append(Text(f"{'resumed' if ev.get('resumed') else 'started'} on {self.device}: "
                                     f"{self.trials} trial(s) × {self.rounds} round(s) × {self.iterations} it"
                                     + done_before, style="bold"))
                dirty |= {"progress"}
            elif kind == "round_start" and t is not None and r is not None:
                self._layers(t, r, ev.get("layers") or {})
                if ev.get("weights_remaining") is not None:
                    self.weights[(t, r)] = ev["weights_remaining"]
                self.position = (t, r, 0)
                self.log.append(Text(f"trial {t + 1} round {r}: {100 * ev.get('weights_remaining', 1):.2f}% of weights "
                                     "remain", style="cyan"))
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
                smp = f" (sampled mask {100 * sampled:.2f}%)" if sampled is not None else ""
                self.log.append(Text(f"  t{t + 1} r{r} it {it}: " + ("" if loss is None else f"val loss {loss:.4f}  ")
                                     + f"test acc {100 * acc:.2f}%" + smp
                                     if acc is not None else f"  t{t + 1} r{r} it {it}", style="dim"))
                dirty |= {"progress", "train", "curve"}  # curve: the live point of the round in progress
            elif kind == "round_end" and t is not None:
                self._record(t, ev)
                acc = ev.get("test_accuracy_at_early_stop")
                extra = f", LMC barrier {100 * ev['lmc_barrier']:.2f}%" if ev.get("lmc_barrier") is not None else ""
                if ev.get("batched_trials"):
                    extra += (f" (its share of {fmt_seconds(ev.get('batched_seconds'))} for {ev['batched_trials']} "
                              "trials together)")
                if ev.get("expected_mask_accuracy") is not None or ev.get("sampled_mask_accuracy") is not None:
                    figures = (f"expected-mask acc {pct(ev.get('expected_mask_accuracy'))}, sampled-mask acc "
                               f"{pct(ev.get('sampled_mask_accuracy'))}")
                else:
                    final = ev.get("test_accuracy_final")
                    figures = (f"test acc {pct(acc)} at early stop (it {ev.get('early_stop_iteration')})"
                               if acc is not None else f"final test acc {pct(final)} (no hold-out)")
                self.log.append(Text(f"trial {t + 1} round {ev.get('round')} done: {figures}, "
                                     f"{100 * ev.get('weights_remaining', 1):.2f}% weights, "
                                     f"{fmt_seconds(ev.get('seconds'))}{extra}", style="green"))
                dirty |= {"progress", "curve", "layers", "masks", "analysis"}
            elif kind == "run_end":
                self._set_state(ev.get("state", self.state), ev.get("error"))
                style = "bold green" if self.state == "done" else "bold yellow"
                why = f": {ev.get('error')}" if ev.get("error") else ""
                self.log.append(Text(f"run {self.state}" + why, style=style))
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
                fields = ", ".join(f"{k}={v}" for k, v in ev.items() if k not in ("event", "time"))
                self.log.append(Text(f"{kind}: " + fields, style="dim"))
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
        """summary.json's curve of the rounds seen so far (engine.records.curve_points), each point
        with the spread of weights remaining over trials and, for mask training, the iteration its
        segment ends at (`segment_end`, None when not recorded)."""
        records = [rec for rec in self.records.values() if isinstance(rec.get("weights_remaining"), (int, float))]
        points = curve_points(records)
        for point in points:
            recs = [rec for rec in records if rec["round"] == point["round"]]
            point["weights_remaining_std"] = mean_std(rec["weights_remaining"] for rec in recs).std
            ends = [rec["iterations"][1] for rec in recs
                    if isinstance(rec.get("iterations"), list) and len(rec["iterations"]) == 2]
            point["segment_end"] = mean_std(ends).mean
        return points

    def best(self) -> dict[str, Any] | None:
        """The curve point of the best headline accuracy (fewer weights first among equals)."""
        points = [p for p in self.curve() if headline_accuracy(p) is not None]
        return max(points, key=lambda p: (headline_accuracy(p), -p["weights_remaining"])) if points else None

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
            each = f" ({self.trials} trials × {self.rounds} each)" if self.trials > 1 else ""
            text.append(f"{self.rounds_done()} of {self.trials * self.rounds} rounds{each}")
        if self.state == "running" and self.alive:
            text.append(f" · ETA {fmt_seconds(self.eta())}", style="bold")
        best = self.best()
        if best is not None:
            what = "best expected-mask" if self.mask_training else "best"
            acc = figure(best, "headline")
            spread = f" ± {100 * acc.std:.2f}" if best["n"] > 1 else ""
            text.append(f" · {what} {100 * acc.mean:.2f}{spread}% at {100 * best['weights_remaining']:.1f}%",
                        style="cyan")
            if self.mask_training and best.get("sampled_mask_accuracy_n"):
                text.append(f" (sampled {100 * best['sampled_mask_accuracy_mean']:.2f}%)", style="cyan")
        if self.error and self.state in ("failed", "interrupted", "damaged", "lost"):
            text.append(f"\n{self.error}", style="red")
        return text

    def fraction_done(self) -> float:
        if self.state == "done":
            return 1.0
        if self.position is None or not self.count.total:
            return self.rounds_done() / max(self.trials * self.rounds, 1)
        return self.count.fraction


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}%"


def figure(point: dict[str, Any], name: str) -> MeanStd:
    """(mean, std, n) of one figure of a curve point, in summary.json's vocabulary: `headline`
    (accuracy at early stop, else final when nothing was held out: engine.run_index.headline_accuracy),
    `weights_remaining`, or any `<name>_mean`/`_std`/`_n` of engine.records.curve_points."""
    if name == "headline":
        held_out = point.get("test_accuracy_mean") is not None
        std = point.get("test_accuracy_std") if held_out else point.get("test_accuracy_final_std")
        return MeanStd(headline_accuracy(point), std, point["n"])
    if name == "weights_remaining":
        return MeanStd(point["weights_remaining"], point.get("weights_remaining_std"), point["n"])
    return MeanStd(point.get(f"{name}_mean"), point.get(f"{name}_std"), point.get(f"{name}_n", point["n"]))


X_PERCENT = ("weights_remaining", "weights_nonzero")


def curve_series(model: RunModel, name: str, color: str | None, label: str | None = None,
                 x: str = "weights_remaining") -> Series | None:
    """One run's curve of figure `name` (see `figure`) as a plot series, mean ± std over trials
    with n in the label; in % except the early-stop iteration.

    x: "weights_remaining" or "weights_nonzero" (in %, the sparsity curve), "round", or
    "segment_end" (the iteration a mask-training segment ends at)."""
    points = [(p, figure(p, name)) for p in model.curve()]
    points = [(p, f) for p, f in points if f.mean is not None and p.get(x) is not None]
    if not points:
        return None
    scale = 1.0 if name == "early_stop_iteration" else 100.0
    xscale = 100.0 if x in X_PERCENT else 1.0
    return Series(f"{label or model.label()} ({n_label(f.n for _, f in points)})",
                  x=tuple(xscale * p[x] for p, _ in points), y=tuple(scale * f.mean for _, f in points),
                  yerr=tuple(scale * (f.std or 0.0) for _, f in points),
                  color=color)


@dataclass
class Shown:
    """What the Run screen shows, handed to every tab's update: the run and an optional overlay."""

    model: RunModel | None = None
    overlay: RunModel | None = None

    def models(self) -> list[RunModel]:
        return [m for m in (self.model, self.overlay) if m is not None]
