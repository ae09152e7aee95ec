"""Run: one run live or finished — progress, then the tabs (lth_tui/screens/run_tabs/: sparsity
curve, early stop, training curves, per-layer weights remaining, mask heatmap, the event log,
linear mode connectivity and mask overlap).

Mask-training runs (experiment = "supermask" | "edge-popup") write the same store; for them
the sparsity tab shows the expected- and sampled-mask accuracy per round and the second tab
the density of the learned mask, since they have no early stopping.

The screen holds a RunModel (lth_tui/viewmodel.py) per shown run, the main one and an optional
overlay, fed by the follower threads' messages (forwarded by the app). Messages only mark parts
of the view-model dirty; a 10 Hz timer draws the progress and hands the dirty parts to every tab,
which redraws what depends on them and reads any files it needs in its own workers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Header, ProgressBar, Static, TabbedContent, TabPane

from lth_tui.components.footer import LthFooter
from lth_tui.guards import RESUMABLE
from lth_tui.run_labels import run_labels
from lth_tui.screens.run_tabs import TABS, RunTab, tab_bindings, tab_class
from lth_tui.screens.run_tabs.lmc import LmcTab
from lth_tui.screens.run_tabs.training import TrainingTab
from lth_tui.viewmodel import RunModel, Shown

__all__ = ["RunScreen"]

NO_RUN = "No run open. Start one from Setup (F2) or open one from Runs (F4)."
ALL_PARTS = {"progress", "curve", "layers", "masks", "train", "log", "analysis"}


class RunScreen(Screen):
    """One run: progress and the tabs of the registry."""

    BINDINGS = [
        Binding("x", "cancel_run", "Cancel run", id="run.cancel",
                tooltip="Cancel run: stop the live run after asking; it checkpoints and stays resumable"),
        Binding("r", "resume_run", "Resume", id="run.resume", tooltip="Resume a cancelled or interrupted run"),
        Binding("o", "overlay", "Overlay run", id="run.overlay",
                tooltip="Overlay run: draw another run's curves beside this one (pick from a list)"),
        Binding("c", "control", "Reinit control", id="run.control",
                tooltip="Reinit control: start this config with mask-1 = random_reinit and overlay it"),
        Binding("e", "export", "Export", id="run.export",
                tooltip="Export: md, json, csv or png (into the run dir by default)"),
        Binding("l", "lmc", "LMC", id="run.lmc",
                tooltip="LMC: train two copies of the selected round from a rewind point k (asked) and measure the "
                        "error barrier between them; the LMC tab shows it"),
        Binding("left_square_bracket", "round(-1)", "Previous round (training curves; on the LMC tab its round)",
                key_display="[", show=False, id="run.prev_round"),
        Binding("right_square_bracket", "round(1)", "Next round (training curves; on the LMC tab its round)",
                key_display="]", show=False, id="run.next_round"),
        Binding("t", "trials", "Trials", show=False, id="run.trials",
                tooltip="Training curves: one trial, or mean ± std over the trials of the round"),
        *tab_bindings(),
    ]

    def __init__(self) -> None:
        super().__init__(id="run")
        self.model: RunModel | None = None
        self.overlay: RunModel | None = None
        self._token = 0
        self._dirty: set[str] = set()
        self.redraws = 0
        self._pending: Path | None = None  # a run asked for before the screen was mounted
        # the priority keys of a tab work only while it shows: action name -> the tab's id
        self._tab_actions = {b.action.split("(")[0]: cls.tab_id for cls in TABS for b in cls.screen_bindings}

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="run-head"):
            yield Static(NO_RUN, id="run-progress")
            yield ProgressBar(total=1.0, show_eta=False, show_percentage=True, id="run-bar")
        with TabbedContent(id="run-tabs", initial=TABS[0].tab_id):
            for cls in TABS:
                with TabPane(cls.label(), id=cls.tab_id):
                    yield cls()
        yield LthFooter()

    def on_mount(self) -> None:
        self.set_interval(0.1, self._flush)
        self._reset_tabs()
        if self._pending is not None:
            self.call_after_refresh(self.show_run, self._pending)

    def on_resize(self, event: Any) -> None:
        self.set_class(event.size.width >= 140, "wide")
        for tab in self.tabs():
            tab.resized()

    # -- the tabs ------------------------------------------------------------------------------

    def tabs(self) -> list[RunTab]:
        return list(self.query(RunTab))

    def tab(self, cls: type[RunTab]) -> Any:
        """The mounted widget of a registered tab class."""
        return self.query_one(cls)

    def shown(self) -> Shown:
        return Shown(self.model, self.overlay)

    def _reset_tabs(self) -> None:
        shown = self.shown()
        for tab in self.tabs():
            tab.reset(shown)
        if self.model is None:
            self.query_one("#run-progress", Static).update(NO_RUN)

    def active_tab(self) -> str:
        return str(self.query_one("#run-tabs", TabbedContent).active)

    def show_tab(self, tab_id: str) -> None:
        tab_class(tab_id)  # a KeyError for an id no tab has
        tabs = self.query_one("#run-tabs", TabbedContent)
        if tabs.active != tab_id:
            tabs.active = tab_id

    @on(TabbedContent.TabActivated, "#run-tabs")
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.refresh_bindings()  # the footer shows the keys of the tab now shown
        if event.pane is not None:
            for tab in event.pane.query(RunTab):
                tab.activated()

    # -- which runs ----------------------------------------------------------------------------

    def show_run(self, run_dir: Path) -> None:
        """Shows a run from scratch: the follower replays its whole store into a new model."""
        if not self.is_mounted:
            self._pending = Path(run_dir)
            return
        self._pending = None
        self._token += 1
        self.model = RunModel(Path(run_dir), token=self._token)
        self.overlay = None  # an overlay or control belongs to the run it was chosen for
        self._reset_tabs()
        self._dirty = set(ALL_PARTS)
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
            self._reset_tabs()
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

    # -- messages from the followers (forwarded by the app) ------------------------------------

    def feed_opened(self, message: Any) -> None:
        model = self._model_for(message.run_dir, message.token)
        if model is None:
            return
        self._mark(model, model.open(message.config, message.status, message.summary, message.error))

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

    # -- drawing (at most 10 times a second) ---------------------------------------------------

    def _flush(self) -> None:
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        self.redraws += 1
        if self.model is None:
            return
        if "progress" in dirty:
            self.query_one("#run-progress", Static).update(self.model.progress_text())
            self.query_one("#run-bar", ProgressBar).update(total=1.0, progress=self.model.fraction_done())
            self.sub_title = self.model.run_id
        shown = self.shown()
        if "curve" in dirty:  # the legend names among the runs shown together
            models = shown.models()
            for m, name in zip(models, run_labels([(m.run_id, m.config) for m in models])):
                m.shown_label = name
        for tab in self.tabs():
            tab.update(shown, dirty)

    # -- actions -------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        model = self.model
        if action == "tab" or action in self._tab_actions:  # not while a list is open: its keys are its own
            if type(self.focused).__name__ == "SelectOverlay":
                return False
            return action == "tab" or self.active_tab() == self._tab_actions[action]
        if action in ("cancel_run",):
            return model is not None and (model.alive or model.state == "lost")
        if action == "resume_run":
            return (model is not None and not model.alive
                    and model.state in RESUMABLE)
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
        """The masks tab's keys (its screen_bindings), wherever the focus is."""
        self.query_one("#" + self.active_tab(), TabPane).query_one(RunTab).tab_action(action, dx, dy)

    def action_tab(self, tab_id: str) -> None:
        tabs = self.query_one("#run-tabs", TabbedContent)
        if self.focused is not None and tabs.active_pane is not None and tabs.active_pane in self.focused.ancestors:
            self.set_focus(None)  # a focused widget in the old pane would pull the tabs back to it
        self.show_tab(tab_id)

    def action_round(self, step: int) -> None:
        if self.model is None:
            return
        active = self.query_one("#" + self.active_tab(), TabPane).query_one(RunTab)
        if active.round_step(step):
            return
        self.tab(TrainingTab).step(step)
        self.show_tab(TrainingTab.tab_id)

    def action_trials(self) -> None:
        self.tab(TrainingTab).toggle_mean()
        self.show_tab(TrainingTab.tab_id)

    def action_lmc(self) -> None:
        self.tab(LmcTab).ask()

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
