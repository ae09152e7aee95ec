"""The lth-tui Textual app: Setup, Run and Runs screens over the engine's run store.

Layout of the package (Harlequin-style): this module holds the app — modes, the runner
processes it spawns, resumes and stops (through lth_tui.guards, as the CLI does), the follower
threads (one per followed run) and the quit flow. Each screen runs its own blocking work
(presets, the runs list, summaries, deleting, exporting) in workers of its own whose results
come back as typed messages nested in it; screens/ holds the screens, components/ the plot and
heatmap widgets, messages.py the followers' messages, commands.py the command palette,
app.tcss the one stylesheet.

Runs are never executed here: `engine.runner.spawn` starts a detached child, so a run keeps
going when the app quits or the SSH link drops, and the app follows the run dir's files.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.app import App
from textual.binding import Binding
from textual.worker import Worker, WorkerState

from lth_tui.commands import LthCommands
from lth_tui.screens.export_flow import ExportFlow, tell_failure
from lth_tui.screens.setup import SetupScreen

if TYPE_CHECKING:
    from lth_tui.follower import RunFollower
    from lth_tui.messages import RunEvents, RunOpened, RunStatus
    from lth_tui.screens.run import RunScreen
    from lth_tui.screens.runs import RunsScreen


class LthApp(ExportFlow, App[int]):
    """Set up, launch, watch, compare and export lottery-ticket runs."""

    CSS_PATH = "app.tcss"
    TITLE = "lth-tui"
    SUB_TITLE = "lottery-ticket workbench"
    COMMANDS = App.COMMANDS | {LthCommands}
    NOTIFICATION_TIMEOUT = 5  # a toast covers the view: gone after 5 s (the Log tab keeps a run's messages)
    BINDINGS = [
        Binding("f1", "help", "Help", id="app.help"),
        Binding("f2", "switch_mode('setup')", "Setup", id="app.setup"),
        Binding("f3", "switch_mode('run')", "Run", id="app.run"),
        Binding("f4", "switch_mode('runs')", "Runs", id="app.runs"),
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),
    ]

    def __init__(self, runs_dir: Path | str | None = None) -> None:
        super().__init__()
        self._runs_dir_given = Path(runs_dir).expanduser() if runs_dir else None
        self.processes: dict[Path, Any] = {}  # runner children this app spawned
        self.followers: dict[Path, RunFollower] = {}
        self.alive: dict[Path, bool] = {}  # from the followers' status reads
        self.preset_infos: list[Any] = []  # the latest lists the screens read (for the command palette)
        self.run_infos: list[Any] = []
        self._on_success: dict[Worker, Callable[[Any], None]] = {}
        self._on_error: dict[Worker, Callable[[BaseException], None]] = {}
        self._clashes_told: set[str] = set()
        self._theme_timer: Any = None
        self.setup_screen = SetupScreen()
        self.first_frame_shown = False  # set on Ready; the Setup screen waits for it to build its panels
        self.add_mode("setup", lambda: self.setup_screen)
        self.add_mode("run", lambda: self.run_screen)
        self.add_mode("runs", lambda: self.runs_screen)
        self.keymap: dict[str, str] = {}  # binding id -> keys from settings.toml (F1 shows them)
        self._apply_settings()

    def _apply_settings(self) -> None:
        """Theme and keymap from ~/.config/lth-tui/settings.toml; a bad file gives the defaults (told on mount)."""
        from lth_tui.settings import load_settings

        settings, problem = load_settings(self.available_themes)
        self.settings_problem: str | None = problem
        if settings.theme:
            self.theme = settings.theme
        if settings.keymap:
            self.set_keymap(settings.keymap)
            self.keymap = dict(settings.keymap)

    def _theme_changed(self, theme: Any) -> None:
        """Remembers a theme picked in the app (ctrl+p "Change theme"), unless the settings file has errors.

        Saved a second after the last change: the theme picker previews each theme it passes over.
        """
        if self.settings_problem is not None:
            return
        from lth_tui.settings import save_theme

        if self._theme_timer is not None:
            self._theme_timer.stop()
        self._theme_timer = self.set_timer(1.0, lambda: self.start_worker(save_theme, self.theme, name="save theme",
                                                                          group="settings", exclusive=True))

    def handle_bindings_clash(self, clashed_bindings: set[Binding], node: Any) -> None:
        """A keymap that gives one key to two bindings: say so once, by binding id."""
        ids = ", ".join(sorted(b.id or b.action for b in clashed_bindings))
        if ids not in self._clashes_told:
            self._clashes_told.add(ids)
            self.notify(f"{ids} share a key: check [keymap] in settings.toml", title="keymap clash",
                        severity="warning", timeout=10)

    @functools.cached_property
    def runs_dir(self) -> Path:
        """The run store: given, or engine.store's default (read after the first frame: the
        store module brings the engine's config module along)."""
        if self._runs_dir_given is not None:
            return self._runs_dir_given
        from engine.store import default_runs_dir

        return default_runs_dir()

    # The Run and Runs screens (plotext, numpy, the heatmap) are imported and built when first
    # used, so the app's first frame waits for nothing but Textual and the Setup screen.
    @functools.cached_property
    def run_screen(self) -> RunScreen:
        from lth_tui.screens.run import RunScreen

        return RunScreen()

    @functools.cached_property
    def runs_screen(self) -> RunsScreen:
        from lth_tui.screens.runs import RunsScreen

        return RunsScreen()

    def on_ready(self) -> None:
        """The first frame is on the terminal: now the Setup panels and the run store's reading
        may start (before it, they would only delay that frame)."""
        self.first_frame_shown = True
        if self.setup_screen.is_mounted:
            self.setup_screen.call_after_refresh(self.setup_screen.build_panels)
        self.list_runs(self._reattach)

    def on_mount(self) -> None:
        if self.settings_problem:
            self.notify(self.settings_problem, title="settings", severity="warning", timeout=20)
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        self.switch_mode("setup")
        self.set_interval(1.0, self._reap)

    def on_unmount(self) -> None:
        for follower in self.followers.values():
            follower.stop()

    def _reattach(self, infos: list[Any]) -> None:
        """Opens on the newest run still training (the Run screen follows it); F4 lists the others.
        A user who already went elsewhere (F3, F4) while the store was read is not pulled back."""
        live = sorted((i for i in infos if i.state == "running"), key=lambda i: (i.created, i.run_id), reverse=True)
        if not live or self.run_screen.model is not None or self.current_mode != "setup":
            return
        self.open_run(live[0].path)
        others = f"; {len(live) - 1} more training: F4" if len(live) > 1 else ""
        self.notify(f"following {live[0].run_id}{others}", title="run still training")

    # -- the app's own workers (processes, its runs list) and the Run screen's ---------------

    def start_worker(self, fn: Callable[..., Any], *args: Any, name: str, group: str, exclusive: bool = False,
                     on_success: Callable[[Any], None] | None = None,
                     on_error: Callable[[BaseException], None] | None = None) -> Worker:
        """A thread worker in a named group; its result goes to on_success on the UI thread."""
        worker = self.run_worker(lambda: fn(*args), name=name, group=group, exclusive=exclusive, exit_on_error=False,
                                 thread=True)
        if on_success is not None:
            self._on_success[worker] = on_success
        if on_error is not None:
            self._on_error[worker] = on_error
        return worker

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Where start_worker's results and failures land. The screens' own workers post their
        failures as messages; one that raises anyway is told here too, never a crash."""
        worker = event.worker
        if event.state == WorkerState.SUCCESS:
            self._on_error.pop(worker, None)
            callback = self._on_success.pop(worker, None)
            if callback is not None:
                callback(worker.result)
        elif event.state == WorkerState.ERROR:
            self._on_success.pop(worker, None)
            error = worker.error
            tell_failure(self, worker.name, error if error is not None else RuntimeError(worker.name))
            callback = self._on_error.pop(worker, None)
            if callback is not None and error is not None:
                callback(error)
        elif event.state == WorkerState.CANCELLED:
            self._on_success.pop(worker, None)
            self._on_error.pop(worker, None)

    def list_runs(self, done: Callable[[list[Any]], None]) -> None:
        """The runs list for the app's own uses (reattach, the run picker)."""
        from lth_tui.store_tasks import read_run_infos

        def listed(infos: list[Any]) -> None:
            self.run_infos = infos
            done(infos)

        self.start_worker(read_run_infos, self.runs_dir, name="list runs", group="runs-list", exclusive=True,
                          on_success=listed)

    # starting, resuming, stopping, deleting

    def spawn_run(self, run_dir: Path) -> None:
        """Starts the runner child of a run dir the Setup screen created, then follows it."""
        from engine.launch import spawn

        def launched(process: Any) -> None:
            self.processes[run_dir] = process
            self.notify(f"{run_dir.name} started (pid {process.pid})", title="run started")
            self.open_run(run_dir)

        self.start_worker(spawn, run_dir, name="start run", group="launch", on_success=launched)

    def resume_run(self, run_dir: Path) -> None:
        """Respawns a stopped run's runner, under the same rules as `lth-tui resume` (lth_tui.guards)."""
        def resume() -> tuple[Path, Any]:
            from engine.launch import spawn
            from lth_tui.guards import check_resume

            check_resume(run_dir, name=run_dir.name)
            return run_dir, spawn(run_dir)

        def resumed(result: tuple[Path, Any]) -> None:
            path, process = result
            self.processes[path] = process
            self.notify(f"{path.name} resumed (pid {process.pid})", title="run resumed")
            self.open_run(path)

        self.start_worker(resume, name="resume run", group="launch", on_success=resumed)

    def start_control(self, run_dir: Path) -> None:
        """The random-reinit control of a run: its config with mask1 = random_reinit, overlaid."""
        runs_dir = self.runs_dir

        def launch() -> tuple[Path, Any]:
            from engine.launch import spawn
            from engine.store import create_run, read_config, read_status

            config = read_config(run_dir)
            if config.prune.mask1 == "random_reinit":
                raise RuntimeError(f"{run_dir.name} already re-initialises randomly; it is a control itself")
            preset = str(read_status(run_dir).get("preset") or config.name)
            control = dataclasses.replace(config, prune=dataclasses.replace(config.prune, mask1="random_reinit"))
            new_dir = create_run(control, runs_dir, preset=f"{preset}-reinit")
            return new_dir, spawn(new_dir)

        def launched(result: tuple[Path, Any]) -> None:
            new_dir, process = result
            self.processes[new_dir] = process
            self.notify(f"{new_dir.name} started and overlaid", title="random-reinit control")
            if self.run_screen.model is not None and self.run_screen.model.run_dir == run_dir:
                self.run_screen.set_overlay(new_dir)

        self.start_worker(launch, name="start control", group="launch", on_success=launched)

    def confirm_cancel(self, run_dir: Path) -> None:
        from lth_tui.screens.dialogs import ConfirmDialog

        def answer(yes: bool | None) -> None:
            if not yes:
                return

            from lth_tui.guards import cancel_run

            self.start_worker(cancel_run, run_dir, name="cancel run", group="cancel",
                              on_success=lambda detail: self.notify(f"{run_dir.name}: {detail}; it checkpoints and "
                                                                    "can be resumed (r)", title="cancelling"))

        self.push_screen(ConfirmDialog("Cancel run", f"Stop {run_dir.name}?\n\nThe runner checkpoints and the run "
                                       "stays resumable (r on the Run or Runs screen).", yes="Stop run",
                                       no="Keep running"),
                         answer)

    def pick_run(self, title: str, exclude: Path | None, done: Callable[[Any], None]) -> None:
        from lth_tui.screens.dialogs import RunPicker

        def listed(infos: list[Any]) -> None:
            choices = [i for i in infos if i.path != exclude and i.state != "damaged"]
            self.push_screen(RunPicker(title, choices), done)

        self.list_runs(listed)

    # -- following runs ---------------------------------------------------------------------

    def open_run(self, run_dir: Path) -> None:
        """Shows a run on the Run screen (following it live if it is still running)."""
        self.run_screen.show_run(Path(run_dir))
        self.switch_mode("run")

    def set_followed(self, run_dirs: list[Path], tokens: dict[Path, int]) -> None:
        """One reader thread per followed run: starts the missing ones, stops the rest."""
        for path, follower in list(self.followers.items()):
            if path not in run_dirs or follower.token != tokens.get(path):
                follower.stop()
                del self.followers[path]
        from lth_tui.follower import RunFollower

        for path in run_dirs:
            if path not in self.followers:
                follower = RunFollower(path, self, token=tokens.get(path, 0))
                self.followers[path] = follower
                follower.start()

    def on_run_opened(self, message: RunOpened) -> None:
        self.run_screen.feed_opened(message)

    def on_run_events(self, message: RunEvents) -> None:
        self.run_screen.feed_events(message)
        if message.run_dir in self.processes:
            for event in message.events:
                if event.get("event") == "run_end" and event.get("state") == "done":
                    self.notify(f"{message.run_dir.name} finished", title="run done")
                elif event.get("event") == "error":
                    self.notify(str(event.get("message")), title=f"{message.run_dir.name} failed", severity="error")

    def on_run_status(self, message: RunStatus) -> None:
        follower = self.followers.get(message.run_dir)
        if follower is not None and follower.token == message.token:
            self.alive[message.run_dir] = message.alive
        self.run_screen.feed_status(message)

    def _reap(self) -> None:
        """Collects finished runner children (so a crashed one does not linger as a zombie)."""
        for path, process in list(self.processes.items()):
            if process.poll() is not None:
                del self.processes[path]

    def live_runs(self) -> list[Path]:
        """Runs that would be left running on quit: spawned here, or followed and alive."""
        live = [p for p, proc in self.processes.items() if proc.poll() is None]
        live += [p for p, alive in self.alive.items() if alive and p in self.followers and p not in live]
        return live

    # -- actions (keys and command palette) -------------------------------------------------

    def action_help(self) -> None:
        from lth_tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        from lth_tui.screens.dialogs import QuitDialog

        live = self.live_runs()
        if not live:
            self.exit(0)
            return

        def chosen(choice: str | None) -> None:
            if choice == "leave":
                self.exit(0)
            elif choice == "stop":
                def stop_all() -> int:
                    from lth_tui.guards import stop_run

                    return sum(stop_run(p, by="lth-tui app").action != "not-running" for p in live)

                self.start_worker(stop_all, name="stop runs", group="cancel", on_success=lambda _: self.exit(0),
                                  on_error=lambda _: self.exit(0))

        self.push_screen(QuitDialog([p.name for p in live]), chosen)

    def action_start_run(self) -> None:
        self.switch_mode("setup")
        self.setup_screen.action_start()

    def action_save_preset(self) -> None:
        self.switch_mode("setup")
        self.setup_screen.action_save_preset()

    def action_load_preset(self, name: str) -> None:
        self.switch_mode("setup")
        self.setup_screen.load_preset(name)

    def action_edit_field(self, key: str) -> None:
        self.switch_mode("setup")
        self.call_after_refresh(self.setup_screen.focus_field, key)

    def _open_run_dir(self, hint: str = "") -> Path | None:
        """The followed run's dir, or None after telling the user there is none."""
        if self.run_screen.model is None:
            self.notify("no run is open" + hint, severity="warning")
            return None
        return self.run_screen.model.run_dir

    def action_cancel_current(self) -> None:
        if (run_dir := self._open_run_dir()) is not None:
            self.confirm_cancel(run_dir)

    def action_resume_current(self) -> None:
        if (run_dir := self._open_run_dir()) is not None:
            self.resume_run(run_dir)

    def action_export_current(self) -> None:
        if (run_dir := self._open_run_dir("; pick one on the Runs screen (F4)")) is not None:
            self.export_dialog([run_dir])

    def action_overlay(self) -> None:
        self.switch_mode("run")
        self.run_screen.action_overlay()

    def action_control(self) -> None:
        self.switch_mode("run")
        self.run_screen.action_control()

    def action_compare(self) -> None:
        self.switch_mode("runs")
        self.runs_screen.action_compare()

    def action_refresh_runs(self) -> None:
        self.runs_screen.action_refresh()


def run_app(runs_dir: Path | str | None = None) -> int:
    """Runs the app until it quits; the exit code for the shell."""
    app = LthApp(runs_dir)
    app.run()
    return int(app.return_code or 0)
