"""Tab 7, LMC: linear mode connectivity of the IMP rounds. The interpolation curve of one round
(picked here or with [ ]), the barrier against rewind point k and against weights remaining,
and the successive-round plots. Its worker (group "analysis") reads the LMC and successive
files when they changed and the tab shows; `l` measures a round in a second worker (group
"lmc", engine.lmc.run_lmc) and the views re-read the run store when it is done.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Label, Select, Static
from textual.worker import get_current_worker

from lth_tui.components.plot import PlotSpec, PlotView
from lth_tui.components.successive import SuccessivePlots
from lth_tui.screens.analysis import (
    barrier_plot,
    fit_spec,
    interpolation_plot,
    lmc_rounds,
    rewind_plot,
    start_rewind_point,
)
from lth_tui.screens.run_tabs.base import AnalysisTab
from lth_tui.viewmodel import OVERLAY_COLOR, Shown

__all__ = ["LmcTab", "read_lmc_views"]


def read_lmc_views(run_dir: Path, overlay_dir: Path | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                                      list[dict[str, Any]], list[str]]:
    """(LMC records, successive records, the overlaid run's successive records, errors) of a run;
    a damaged LMC file is an error to show, not an exception."""
    from engine.store import read_lmc
    from lth_tui.stability import read_successive

    errors, records = [], []
    try:
        records = read_lmc(run_dir)
    except Exception as exc:  # noqa: BLE001 - shown in the view, never a crash
        errors.append(f"LMC files: {type(exc).__name__}: {exc}")
    return records, read_successive(run_dir), read_successive(overlay_dir) if overlay_dir else [], errors


class LmcTab(AnalysisTab):
    tab_id = "tab-lmc"
    title = "LMC"
    key = "7"
    help = "LMC tab: interpolation curve of a round, barrier vs rewind k and vs weights remaining"
    command = ("Show LMC", "interpolation curve, barrier vs rewind k and vs weights remaining")

    @dataclass
    class Loaded(Message):
        """The LMC and successive-round files of run `key` (run dir, model token), read."""

        key: tuple[Path, int]
        records: list[dict[str, Any]]
        successive: list[dict[str, Any]]
        overlay_successive: list[dict[str, Any]]
        errors: list[str]

    @dataclass
    class Failed(Message):
        """A read or an LMC measurement went wrong; `what` names it for the message."""

        key: tuple[Path, int] | None
        what: str
        error: str

    @dataclass
    class Measured(Message):
        """run_lmc finished: `record` is the round's new LMC result."""

        run_dir: Path
        what: str
        record: dict[str, Any]

    def __init__(self) -> None:
        super().__init__()
        self.records: list[dict[str, Any]] | None = None  # None: not read yet for this run
        self.successive: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
        self.errors: list[str] = []
        self.pick: int | None = None  # None: the latest round with an LMC result
        self.options: list[int] | None = None
        self.busy = ""  # what the LMC worker is computing, "" when idle

    def compose(self) -> ComposeResult:
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

    # -- state ---------------------------------------------------------------------------------

    def reset(self, shown: Shown) -> None:
        super().reset(shown)
        self.records, self.successive, self.errors = None, ([], []), []
        self.pick, self.options = None, None
        with self.prevent(Select.Changed):
            self.query_one("#lmc-round", Select).set_options([])

    def resized(self) -> None:
        self.call_after_refresh(self.draw)  # plot titles are fitted to the plots' widths

    # -- reading the files ---------------------------------------------------------------------

    def read(self, key: tuple[Path, int]) -> None:
        """Reads the LMC and successive files of the run, and the overlaid run's successive ones."""
        self.read_files(key, self.shown.overlay.run_dir if self.shown.overlay else None)

    @work(thread=True, group="analysis", exit_on_error=False)
    def read_files(self, key: tuple[Path, int], overlay: Path | None) -> None:
        try:
            records, successive, overlay_successive, errors = read_lmc_views(key[0], overlay)
        except Exception as exc:  # noqa: BLE001 - told, never a crash
            self.post_message(self.Failed(key, "read LMC results", str(exc) or type(exc).__name__))
        else:
            self.post_message(self.Loaded(key, records, successive, overlay_successive, errors))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        message.stop()
        if self.read_done(message.key):
            self.records, self.errors = message.records, message.errors
            self.successive = (message.successive, message.overlay_successive)
            self.draw()
        self.load()

    @on(Failed)
    def _failed(self, message: Failed) -> None:
        message.stop()
        self.app.notify(message.error, title=f"{message.what} failed", severity="error")
        if message.key is not None:
            self.loading = False
        else:
            self._measured_or_not()

    # -- drawing -------------------------------------------------------------------------------

    def lmc_records(self) -> list[dict[str, Any]]:
        return list(self.records or [])

    def finished_rounds(self) -> list[int]:
        model = self.shown.model
        return sorted({r for (_, r) in model.records}) if model is not None else []

    def lmc_round(self) -> int | None:
        """The round shown: the picked one, else the latest with a result, else the latest finished."""
        records = self.lmc_records()
        options = sorted(set(lmc_rounds(records)) | set(self.finished_rounds()))
        if self.pick is not None and self.pick in options:
            return self.pick
        with_results = lmc_rounds(records)
        if with_results:
            return with_results[-1]
        return options[-1] if options else None

    def draw(self) -> None:
        model = self.shown.model
        if model is None:
            return
        records = self.lmc_records()
        interp = self.query_one("#lmc-interp-plot", PlotView)
        rewind = self.query_one("#lmc-rewind-plot", PlotView)
        barrier = self.query_one("#lmc-barrier-plot", PlotView)
        note = self.query_one("#lmc-note", Static)
        if model.mask_training:
            message = f"LMC is measured on IMP runs; this is a {model.experiment} run"
            for view in (interp, rewind, barrier):
                view.set_plot(PlotSpec(title="linear mode connectivity", empty_message=message))
            note.update(Text(message, style="dim"))
            return
        weights = {p["round"]: p["weights_remaining"] for p in model.curve()}
        options = sorted(set(lmc_rounds(records)) | set(self.finished_rounds()))
        select = self.query_one("#lmc-round", Select)
        r = self.lmc_round()
        with self.prevent(Select.Changed):
            if options != self.options:
                self.options = options
                select.set_options([(str(o), o) for o in options])
            if r is not None and select.value != r:
                select.value = r
        interp.set_plot(fit_spec(interpolation_plot(records, r), interp.content_size.width))
        rewind.set_plot(fit_spec(rewind_plot(records, r, model.config, model.iterations), rewind.content_size.width))
        barrier.set_plot(fit_spec(barrier_plot(records, weights), barrier.content_size.width))
        overlay = (self.shown.overlay.label(), OVERLAY_COLOR) if self.shown.overlay else ()
        self.query_one(SuccessivePlots).show(*self.successive, *overlay)
        text = Text()
        if self.busy:
            text.append(f" computing {self.busy}…", style="bold yellow")
        elif self.records is None and self.loading:
            text.append(" reading LMC results…", style="dim")
        else:
            text.append(f" {len(records)} result(s)" if records else " no result yet", style="dim")
            text.append(" · l: compute (rewind k) · [ ] round", style="dim")
        if self.errors:
            text.append(" · " + "; ".join(self.errors), style="red")
        note.update(text)

    @on(Select.Changed, "#lmc-round")
    def _select(self, event: Select.Changed) -> None:
        event.stop()
        if isinstance(event.value, int):
            self.pick = event.value
            self.draw()

    def round_step(self, step: int) -> bool:
        options = self.options or []
        current = self.lmc_round()
        if options and current in options:
            i = max(0, min(len(options) - 1, options.index(current) + step))
            self.pick = options[i]
            self.draw()
        return True

    # -- measuring -----------------------------------------------------------------------------

    def ask(self) -> None:
        """Asks for a rewind point k, then measures LMC of the shown round in a worker."""
        model = self.shown.model
        if model is None:
            return
        if model.mask_training:
            self.app.notify(f"LMC is measured on IMP runs; this is a {model.experiment} run", severity="warning")
            return
        if self.busy:
            self.app.notify(f"already computing {self.busy}", title="LMC", severity="warning")
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
                self.start(model.run_dir, r, *answer)

        self.app.push_screen(LmcDialog(model.run_id, r, trials, iterations, own), chosen)

    def start(self, run_dir: Path, round_: int, trial: int, k: int | None) -> None:
        """Measures LMC of one round in the "lmc" worker; the tab shows it."""
        what = f"round {round_} trial {trial + 1} from {'its start' if k is None else f'k={k}'}"
        self.busy, self.pick = what, round_
        self.screen.query_one("#run-tabs").active = self.tab_id
        self.draw()
        self.measure(run_dir, round_, trial, k, what)

    @work(thread=True, group="lmc", exit_on_error=False)
    def measure(self, run_dir: Path, round_: int, trial: int, k: int | None, what: str) -> None:
        from engine.lmc import run_lmc

        worker = get_current_worker()
        try:
            record = run_lmc(run_dir, round_, rewind_iteration=k, trial=trial, should_stop=lambda: worker.is_cancelled)
        except Exception as exc:  # noqa: BLE001 - told, never a crash
            self.post_message(self.Failed(None, f"LMC {what}", str(exc) or type(exc).__name__))
        else:
            self.post_message(self.Measured(run_dir, what, record))

    @on(Measured)
    def _measured(self, message: Measured) -> None:
        message.stop()
        record = message.record
        verdict = "stable" if record.get("stable") else "unstable"
        self.app.notify(f"{message.what}: barrier {100 * record['barrier']:.2f}% ({verdict})", title="LMC done")
        self._measured_or_not(message.run_dir)

    def _measured_or_not(self, run_dir: Path | None = None) -> None:
        self.busy = ""
        self.stale = True
        model = self.shown.model
        if model is not None and (run_dir is None or model.run_dir == run_dir):
            self.draw()
            self.load(force=True)
