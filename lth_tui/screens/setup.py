"""Setup: a preset picker and one panel per config section; every key of the config editable.

The panels are built from the engine's own key list (`all_keys()`) and its registries
(`choices()`), so a new criterion, model or config key shows up here without touching the app.
The whole config is validated through `from_dict` on every change; the ConfigError is shown
under the field it names and Start stays disabled until the config is valid again.

The screen owns its work: presets are listed, loaded and saved, the data and model checked and
the run dir created in its workers, whose results and failures come back as the messages below.
This module imports only what the first frame needs; the form widgets and the engine's config
come with the panels (setup_fields), right after that frame.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Header, Static

from lth_tui.components.footer import LthFooter
from lth_tui.screens.field_ids import field_id


def _fields() -> ModuleType:
    """setup_fields, imported on first use (after the first frame)."""
    from lth_tui.screens import setup_fields

    return setup_fields


class SetupScreen(Screen):
    """Pick a preset, edit any field, start the run."""

    BINDINGS = [
        Binding("ctrl+r", "start", "Start run", id="setup.start",
                tooltip="Start run: create the run dir and launch the runner in the background "
                        "(disabled while invalid)"),
        Binding("ctrl+s", "save_preset", "Save preset", id="setup.save_preset",
                tooltip="Save preset: write this config as a preset file (asks for a name; never overwrites silently)"),
        Binding("ctrl+o", "focus_presets", "Presets", id="setup.presets", tooltip="Presets: open the preset picker"),
        Binding("ctrl+z", "reload_preset", "Revert", id="setup.revert",
                tooltip="Revert: reload the preset, dropping edits"),
    ]

    @dataclass
    class PresetsListed(Message):
        infos: list[Any]

    @dataclass
    class PresetLoaded(Message):
        config: Any
        name: str

    @dataclass
    class PresetSaved(Message):
        target: Path
        config: Any

    @dataclass
    class TwinTraining(Message):
        """A run of this very config is already training: asked about before a second starts."""

        config: Any
        preset: str
        twin: str

    @dataclass
    class RunCreated(Message):
        run_dir: Path

    @dataclass
    class CheckDone(Message):
        done: Callable[[Any], None]
        result: Any

    @dataclass
    class Failed(Message):
        """A worker of this screen failed: told, and the screen stays usable."""

        what: str
        error: BaseException

    def __init__(self) -> None:
        super().__init__(id="setup")
        self.config: Any = None
        self.error: Any = None
        self.preset_name: str = ""
        self.preset_infos: list[Any] = []
        self.launching = False
        self._loaded_dict: dict[str, Any] | None = None
        self._filling = 0
        self._shown_error: tuple[str | None, str] = (None, "")
        self._static_cache: dict[str, str] = {}
        self._error_widget: Static | None = None
        self._checks: Any = None
        self.highlighted_options: dict[str, str] = {}  # a choice list's highlighted option, while it is open
        self.built = False  # the panels are mounted (just after the first paint)
        self._building = False
        self._pending_fill: tuple[Any, str] | None = None

    # The engine's registries and key list: read when the panels (or the palette) first need them.
    @functools.cached_property
    def choices(self) -> dict[str, list[str]]:
        from engine.config import choices

        return choices()

    @functools.cached_property
    def layout_(self) -> list[tuple[str, list[str]]]:
        return _fields().panel_layout()

    @functools.cached_property
    def keys(self) -> list[str]:
        return [k for _, ks in self.layout_ for k in ks]

    @property
    def checks(self) -> Any:
        if self._checks is None:
            from lth_tui.setup_checks import ConfigChecks

            self._checks = ConfigChecks(self._start_check, self._show_validation)
        return self._checks

    # -- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        """The screen's frame only: the preset picker, the panels' ~200 fields and the buttons
        are mounted once the app's first frame is out (`build_panels`), so `lth-tui` paints its
        Setup screen as soon as Textual itself is up, even on a busy machine."""
        yield Header()
        yield Vertical(id="setup-top")
        with VerticalScroll(id="setup-panels"):
            yield Static("building the panels…", id="setup-loading", classes="hint")
        with Horizontal(id="setup-bottom"):
            yield Static("", id="setup-status")
        yield LthFooter()

    def on_mount(self) -> None:
        self._layout_for(self.app.size.width)
        if getattr(self.app, "first_frame_shown", False):  # mounted later than the app's first frame
            self.call_after_refresh(self.build_panels)

    def _quitting(self) -> bool:
        """The app is quitting (exit called) or this screen is gone: a build in progress stops."""
        return not self.is_attached

    async def build_panels(self) -> None:
        """Mounts the panels once the app's first frame is out (the app calls this on Ready),
        then fills them: the defaults, then the preset list and the preferred preset. Quitting
        meanwhile stops it between steps (nothing is mounted into a closing app)."""
        if self._building:
            return
        self._building = True
        if self._quitting():  # the app quit before its first frame was out
            return
        from textual.css.query import NoMatches
        from textual.widget import MountError

        F = _fields()
        steps = (("#setup-top", F.top_widgets), ("#setup-bottom", F.buttons),
                 ("#setup-panels", lambda: [F.panel_grid(self.layout_, self.choices)]))
        for selector, make in steps:
            if self._quitting():
                return
            widgets = make()
            if self._quitting():
                return
            try:
                await self.query_one(selector).mount_all(widgets)
            except (MountError, NoMatches):
                if self._quitting():  # the app closed during the mount
                    return
                raise
        if self._quitting():
            return
        await self.query_one("#setup-loading", Static).remove()
        F.watch_choice_lists(self)
        self.built = True
        from engine.config import ExperimentConfig

        pending, self._pending_fill = self._pending_fill, None
        self.fill(*(pending or (ExperimentConfig(), "")))
        self._list_presets()

    def on_resize(self, event: Any) -> None:
        self._layout_for(event.size.width)

    def _layout_for(self, width: int) -> None:
        self.set_class(width >= 110, "wide")

    # -- workers (their results come back as this screen's messages) ---------------------------

    @work(thread=True, group="presets", exit_on_error=False)
    def _list_presets(self) -> None:
        from lth_tui.presets import list_presets

        try:
            self.post_message(self.PresetsListed(list_presets()))
        except Exception as exc:  # noqa: BLE001 - told; the screen stays usable
            self.post_message(self.Failed("list presets", exc))

    @work(thread=True, group="preset-load", exclusive=True, exit_on_error=False)
    def _load_preset(self, name: str) -> None:
        from lth_tui.presets import load_preset

        try:
            self.post_message(self.PresetLoaded(*load_preset(name)))
        except Exception as exc:  # noqa: BLE001
            self.post_message(self.Failed(f"load preset {name}", exc))

    @work(thread=True, group="preset-save", exit_on_error=False)
    def _save_preset(self, target: Path, config: Any) -> None:
        from engine.config import to_toml
        from lth_tui.store_tasks import write_preset

        try:
            self.post_message(self.PresetSaved(write_preset(target, to_toml(config)), config))
        except Exception as exc:  # noqa: BLE001
            self.post_message(self.Failed("save preset", exc))

    @work(thread=True, group="launch", exit_on_error=False)
    def _prepare_run(self, config: Any, preset: str, confirmed: bool) -> None:
        """The twin check (unless confirmed), the model and data checks, then the run dir."""
        from lth_tui.store_tasks import create_checked_run, read_run_infos, training_twins

        runs_dir = self.app.runs_dir
        try:
            twins = [] if confirmed else training_twins(read_run_infos(runs_dir), config)
            if twins:
                self.post_message(self.TwinTraining(config, preset, twins[0].run_id))
                return
            self.post_message(self.RunCreated(create_checked_run(config, runs_dir, preset)))
        except Exception as exc:  # noqa: BLE001
            self.post_message(self.Failed("start run", exc))

    def _start_check(self, fn: Callable[..., Any], *args: Any, name: str, group: str, exclusive: bool = False,
                     on_success: Callable[[Any], None]) -> None:
        """The data and model checks (setup_checks.ConfigChecks) in this screen's workers."""
        def check() -> None:
            try:
                self.post_message(self.CheckDone(on_success, fn(*args)))
            except Exception as exc:  # noqa: BLE001
                self.post_message(self.Failed(name, exc))

        self.run_worker(check, name=name, group=group, exclusive=exclusive, thread=True, exit_on_error=False)

    @on(PresetsListed)
    def _presets_listed(self, message: PresetsListed) -> None:
        from textual.widgets import Select

        infos = message.infos
        self.preset_infos = self.app.preset_infos = infos
        select = self.query_one("#preset-select", Select)
        current = self.preset_name
        with self.prevent(Select.Changed):
            select.set_options(_fields().preset_options(infos))
            if current and any(i.name == current for i in infos):
                select.value = current
        if not current and infos and self.config is not None and not self._user_edited():
            preferred = next((i.name for i in infos if i.name == "digits-quick"), infos[0].name)
            self.load_preset(preferred)

    @on(PresetLoaded)
    def _preset_loaded(self, message: PresetLoaded) -> None:
        self.fill(message.config, message.name)

    @on(PresetSaved)
    def _preset_saved(self, message: PresetSaved) -> None:
        name = message.target.stem
        self.notify(f"saved preset {name!r} to {message.target}", title="preset saved")
        self.preset_name = name
        self._loaded_dict = message.config.to_dict()
        self._list_presets()
        self.fill(message.config, name)

    @on(TwinTraining)
    def _twin_training(self, message: TwinTraining) -> None:
        from lth_tui.screens.dialogs import ConfirmDialog

        def answer(yes: bool | None) -> None:
            if yes:
                self._prepare_run(message.config, message.preset, True)
            else:
                self._launch_finished()

        self.app.push_screen(ConfirmDialog("The same run is training",
                                           f"{message.twin} is already training this very config (same seed: a second "
                                           "copy repeats its numbers).\n\nStart another copy?",
                                           yes="Start another"), answer)

    @on(RunCreated)
    def _run_created(self, message: RunCreated) -> None:
        self._launch_finished()
        self.app.spawn_run(message.run_dir)

    @on(CheckDone)
    def _check_done(self, message: CheckDone) -> None:
        message.done(message.result)

    @on(Failed)
    def _failed(self, message: Failed) -> None:
        from lth_tui.screens.export_flow import tell_failure

        tell_failure(self.app, message.what, message.error)
        if message.what == "start run":
            self._launch_finished()

    # -- presets -----------------------------------------------------------------------------

    def _user_edited(self) -> bool:
        return self._loaded_dict is not None and self.config is not None and self.config.to_dict() != self._loaded_dict

    def load_preset(self, name: str) -> None:
        """Loads a preset in a worker and fills every field from it."""
        self._load_preset(name)

    def fill(self, config: Any, preset_name: str) -> None:
        """Puts a config into the fields (and remembers it as the unedited state)."""
        from textual.widgets import Checkbox, Input, Select

        if not self.built:  # a preset chosen (palette) before the panels exist: filled once they do
            self._pending_fill = (config, preset_name)
            return
        F = _fields()
        self.preset_name = preset_name
        self._filling += 1
        try:
            for key in self.keys:
                with self.prevent(Select.Changed, Input.Changed, Checkbox.Changed):
                    F.set_widget_value(self.query_one("#" + field_id(key)), config.get(key))
        finally:
            self._filling -= 1
        select = self.query_one("#preset-select", Select)
        if preset_name and any(i.name == preset_name for i in self.preset_infos):
            with self.prevent(Select.Changed):
                select.value = preset_name
        self._loaded_dict = config.to_dict()
        self.validate()

    # -- validation --------------------------------------------------------------------------

    def raw_config(self) -> dict[str, Any]:
        F = _fields()
        raw: dict[str, Any] = {}
        for key in self.keys:
            F.set_nested(raw, key, F.widget_value(self.query_one("#" + field_id(key)), key))
        return raw

    def validate(self) -> Any:
        """from_dict over every field; shows the error under its field and sets Start."""
        if not self.built:
            return None
        from engine.config import ConfigError, from_dict

        try:
            config = from_dict(self.raw_config(), "setup")
            _fields().check_lengths(config)
        except ConfigError as exc:
            self.config, self.error = None, exc
        else:
            self.config, self.error = config, None
        self._show_validation()
        return self.config

    def _show_validation(self) -> None:
        """Updates only what changed: class and layout changes are what cost time in Textual."""
        from textual.widgets import Button, Select

        F = _fields()
        bad = F.error_field(self.error, self.keys) if self.error else None
        got = f" (got {self.error.value!r})" if self.error and self.error.key else ""
        message = f"✗ {self.error.allowed}{got}" if bad else ""
        if (bad, message) != self._shown_error:
            # One error line, mounted under the offending field (and removed when it is fixed).
            old_bad = self._shown_error[0]
            if old_bad is not None and old_bad != bad:
                if self._error_widget is not None:
                    self._error_widget.remove()
                    self._error_widget = None
                self.query_one("#row-" + field_id(old_bad)[2:]).remove_class("invalid")
            if bad is not None and self._error_widget is not None:
                self._error_widget.update(message)
            elif bad is not None:
                row = self.query_one("#row-" + field_id(bad)[2:])
                row.add_class("invalid")
                anchor = next(iter(self.query("#hint-" + field_id(bad)[2:]).results()), row)
                self._error_widget = Static(message, classes=f"field-error shown err-{field_id(bad)[2:]}")
                row.parent.mount(self._error_widget, after=anchor)
            self._shown_error = (bad, message)
        problem = self._check(self.config) if self.config is not None else None
        if self.error is not None:
            self._update_static("#setup-status", Text(f"✗ {self.error}", style="bold red"))
        elif problem:  # in full under the dataset (or the model); the status line stays one line
            where = "Data" if self.checks.problem("data.name") else "Model"
            self._update_static("#setup-status", Text(f"✗ cannot start: see the {where} panel · {problem}",
                                                      style="bold red"))
        elif problem is None:
            self._update_static("#setup-status",
                                Text("… checking the data files and building the model", style="yellow"))
        elif self.config is not None:
            self._update_static("#setup-status", F.summary_line(self.config))
            if "experiment" in self.keys:  # which optimizer recipe trains this run (engine/recipes.py)
                from engine.recipes import recipe_text

                self._update_static("#hint-experiment", Text(recipe_text(self.config)))
        self.show_hints()
        info = next((i for i in self.preset_infos if i.name == self.preset_name), None)
        self._update_static("#preset-description", F.preset_description(info, self._user_edited()))
        experiment = self.query_one("#" + field_id("experiment"), Select).value if "experiment" in self.keys else "imp"
        for title, experiments in F.PANEL_EXPERIMENTS.items():
            keys = dict(self.layout_).get(title, [])
            show = experiment in experiments or bad in keys
            for panel in self.query("#panel-" + title.lower()):
                if panel.display != show:
                    panel.display = show
        startable = self.ready()
        button = self.query_one("#start-button", Button)
        if button.disabled == startable:
            button.disabled = not startable
            self.refresh_bindings()

    def ready(self) -> bool:
        """Valid, its data there (or to be downloaded), its model buildable, and not launching."""
        return self.config is not None and not self.launching and self._check(self.config) == ""

    def _check(self, config: Any) -> str | None:
        """"" when the data and model checks pass, the problem, or None while they run."""
        return self.checks.result(config)

    def show_hints(self) -> None:
        from textual.widgets import Select

        F = _fields()
        for key in F.HINT_KEYS:
            widget = self.query_one("#" + field_id(key), Select)
            name = self.highlighted_options.get(key) or widget.value
            text = F.registry_description(key, name)
            size, problem = self.checks.model_line(), self.checks.problem(key)
            if key == "model.name" and size and name == widget.value:
                text = f"{text}\n{size}"
            if problem:
                text = f"{text}\n✗ {problem}"
            hint = self.query_one("#hint-" + field_id(key)[2:], Static)
            hint.set_class(bool(problem), "problem")
            self._update_static("#hint-" + field_id(key)[2:], text)

    def _update_static(self, selector: str, content: Text | str) -> None:
        plain = content.markup if isinstance(content, Text) else content
        if self._static_cache.get(selector) != plain:
            self._static_cache[selector] = plain
            self.query_one(selector, Static).update(content)

    # Handlers by name: naming Input, Select, Checkbox or Button in @on would import them at start.
    def on_input_changed(self, event: Any) -> None:
        self._field_changed(event)

    def on_checkbox_changed(self, event: Any) -> None:
        self._field_changed(event)

    def on_select_changed(self, event: Any) -> None:
        if event.control.id == "preset-select":
            event.stop()
            if event.value is event.control.NULL or event.value == self.preset_name:
                return
            self.load_preset(str(event.value))
            return
        self._field_changed(event)

    def _field_changed(self, event: Any) -> None:
        if self._filling:
            return
        self.validate()

    def on_descendant_focus(self, event: Any) -> None:
        """The header names the focused field's config key (what a preset file or --set calls it)."""
        widget = event.widget
        while widget is not None and widget is not self:
            if widget.id and widget.id.startswith("row-"):
                key = next((k for k in self.keys if "row-" + field_id(k)[2:] == widget.id), "")
                allowed = self.choices.get(key)
                self.sub_title = f"{key}" + (f"  ({len(allowed)} choices)" if allowed else "")
                return
            widget = widget.parent
        self.sub_title = "setup"

    def focus_field(self, key: str) -> None:
        """Moves the focus to a field (and opens its list if it is a choice)."""
        if not self.built:
            self.call_after_refresh(self.focus_field, key)
            return
        from textual.widgets import Select

        widget = self.query_one("#" + field_id(key))
        widget.focus()
        widget.scroll_visible()
        if isinstance(widget, Select):
            widget.action_show_overlay()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "start":
            return True if self.ready() else None
        if action == "reload_preset":
            return True if self.preset_name else None
        return True

    # -- actions -----------------------------------------------------------------------------

    # -- actions -----------------------------------------------------------------------------

    def on_button_pressed(self, event: Any) -> None:
        if event.button.id == "start-button":
            event.stop()
            self.action_start()
        elif event.button.id == "save-button":
            event.stop()
            self.action_save_preset()

    def action_start(self) -> None:
        config = self.validate()
        if config is None or not self.ready():
            problem = self.error if config is None else (self._check(config) or "still checking the data and model")
            self.app.notify(str(problem), title="cannot start", severity="error")
            return
        self.launching = True
        self._show_validation()
        self._prepare_run(config, self.preset_name or config.name, False)

    def _launch_finished(self) -> None:
        self.launching = False
        if self.built:
            self._show_validation()

    def action_focus_presets(self) -> None:
        from textual.widgets import Select

        select = self.query_one("#preset-select", Select)
        select.focus()
        select.action_show_overlay()

    def action_reload_preset(self) -> None:
        if self.preset_name:
            self.load_preset(self.preset_name)

    def action_save_preset(self) -> None:
        from lth_tui.presets import user_dir
        from lth_tui.screens.dialogs import TextPrompt

        config = self.validate()
        if config is None:
            self.app.notify(f"fix the config first: {self.error}", title="cannot save", severity="error")
            return
        edited = f"{self.preset_name or 'my'}-edited"
        suggestion = config.name if config.name not in ("custom", self.preset_name) else edited

        def chosen(text: str | None) -> None:
            if text:
                self.save_preset_as(text)

        self.app.push_screen(TextPrompt("Save as preset",
                                        f"A preset name (saved in {user_dir()}) or a path to a .toml file:",
                                        suggestion), chosen)

    def save_preset_as(self, text: str, overwrite: bool = False) -> None:
        """Writes the edited config as a preset; an existing file is only replaced after asking."""
        from lth_tui.presets import user_dir
        from lth_tui.screens.dialogs import ConfirmDialog

        config = self.validate()
        if config is None:
            return
        target = Path(text).expanduser()
        if not (text.endswith(".toml") or "/" in text):
            target = user_dir() / f"{text}.toml"
        if target.exists() and not overwrite:
            def answer(yes: bool | None) -> None:
                if yes:
                    self.save_preset_as(str(target), overwrite=True)
                else:
                    self.app.notify(f"{target} exists; not overwritten", severity="warning")

            self.app.push_screen(ConfirmDialog("Preset exists", f"{target} already exists.\nOverwrite it?",
                                               yes="Overwrite"),
                                 answer)
            return
        self._save_preset(target, dataclasses.replace(config, name=target.stem))
