"""Setup: a preset picker and one panel per config section; every key of the config editable.

The panels are built from the engine's own key list (`all_keys()`) and its registries
(`choices()`), so a new criterion, model or config key shows up here without touching the app.
The whole config is validated through `from_dict` on every change; the ConfigError is shown
under the field it names and Start stays disabled until the config is valid again.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import typing
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Header, Input, Label, OptionList, Select, Static

from engine.config import (SECTIONS, ConfigError, ExperimentConfig, all_keys, choices, from_dict, parse_value,
                           resolve_schedule, to_toml)
from engine.steps import Step, as_config_value
from lth_tui.components.footer import LthFooter
from lth_tui.setup_checks import ConfigChecks

# Panel titles and the order of known keys in them; keys the engine adds later land in a panel
# named after their section (or "Run" for top-level keys), so nothing is ever left out.
PANELS: dict[str, list[str]] = {
    "Data": ["data.name", "data.val_size", "data.augment", "data.dir", "data.download"],
    "Model": ["model.name", "model.hidden", "model.init"],
    "Training": ["train.optimizer", "train.lr", "train.momentum", "train.weight_decay", "train.batch_size",
                 "train.iterations", "train.schedule", "train.milestones", "train.gamma", "train.warmup_iterations",
                 "train.eval_every"],
    "Pruning": ["prune.criterion", "prune.mask1", "prune.mask0", "prune.scope", "prune.count", "prune.strategy",
                "prune.rate.conv", "prune.rate.fc", "prune.rate.output", "prune.rounds", "prune.rewind_iteration"],
    "Run": ["name", "description", "experiment", "trials", "seed", "device", "threads"],
}
SECTION_PANELS = {"data": "Data", "model": "Model", "train": "Training", "prune": "Pruning"}
LABELS = {
    "data.name": "dataset", "data.val_size": "val size", "data.dir": "data dir", "model.name": "model",
    "model.hidden": "hidden widths", "train.weight_decay": "weight decay", "train.batch_size": "batch size",
    "train.warmup_iterations": "warm-up", "train.eval_every": "eval every", "prune.mask1": "mask-1 action",
    "prune.mask0": "mask-0 action", "prune.rate.conv": "rate conv", "prune.rate.fc": "rate fc",
    "prune.rate.output": "rate output", "prune.rewind_iteration": "rewind to", "prune.count": "count rule", "train.lr": "learning rate",
    "train.lr_scaling": "lr scaling", "train.lr_reference_batch": "lr reference batch",
}
PLACEHOLDERS = {
    "model.hidden": "e.g. 300, 100 (mlp only)", "train.milestones": "e.g. 80ep, 120ep", "device": "auto | cpu | cuda | cuda:N",
    "threads": "auto = from model size and free cores; or N",
    "train.iterations": "500, 500it or 2ep", "train.eval_every": "100, 100it or 1ep", "train.warmup_iterations": "0 or 1ep",
    "prune.rewind_iteration": "0 = θ0; k = late rewinding", "data.dir": "default data dir",
}
HIDDEN_KEYS = {"prune.rate"}  # edited through prune.rate.<kind>
CHECKBOX_LABELS = {
    "data.augment": "random crop + flip", "data.download": "fetch missing torchvision data",
    "supermask.rescale": "rescale kept weights", "analysis.lmc": "measure linear mode connectivity",
    "analysis.successive": "successive-round barrier and distances",
}
# Fields with a one-line description under them (from the engine's registries).
HINT_KEYS = ("data.name", "model.name", "prune.criterion", "prune.mask1", "prune.mask0")
# Panels that only matter for some experiments (shown anyway while one of their fields is invalid).
PANEL_EXPERIMENTS = {"Supermask": ("supermask", "edge-popup")}


def field_id(key: str) -> str:
    return "f-" + key.replace(".", "-").replace("_", "-")


@functools.cache
def field_type(key: str) -> Any:
    """The declared type of a dotted config key (float for prune.rate.<kind>)."""
    parts = key.split(".")
    if len(parts) == 3 and parts[:2] == ["prune", "rate"]:
        return float
    if len(parts) == 1:
        return typing.get_type_hints(ExperimentConfig)[key]
    return typing.get_type_hints(SECTIONS[parts[0]])[parts[1]]


def panel_layout() -> list[tuple[str, list[str]]]:
    """(panel title, keys) covering every key of all_keys()."""
    keys = [k for k in all_keys() if k not in HIDDEN_KEYS]
    known = {k for ks in PANELS.values() for k in ks}
    panels = {title: [k for k in ks if k in keys] for title, ks in PANELS.items()}
    for key in keys:
        if key in known:
            continue
        section = key.split(".")[0] if "." in key else ""
        title = SECTION_PANELS.get(section) or (section.capitalize() if section else "Run")
        panels.setdefault(title, []).append(key)
    order = ["Data", "Model", "Training", "Pruning", "Run"] + [t for t in panels if t not in PANELS]
    return [(title, panels[title]) for title in order if panels.get(title)]


def value_text(value: Any) -> str:
    """A config value as the text of an Input."""
    if isinstance(value, Step):
        return str(as_config_value(value))
    if isinstance(value, list):
        return ", ".join(value_text(v) for v in value)
    if isinstance(value, dict):  # a table the panels do not know yet: TOML inline-table syntax
        return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items()) + " }"
    if isinstance(value, float):
        return f"{value:g}" if abs(value) >= 1e-4 or value == 0 else repr(value)
    return str(value)


def _scalar(text: str, tp: Any) -> Any:
    text = text.strip()
    if tp is int:
        try:
            return int(text)
        except ValueError:
            return text
    if tp is float:
        try:
            number = float(text)
        except ValueError:
            return text
        return number if math.isfinite(number) else text
    if tp is Step:
        return int(text) if text.isdigit() else text
    return text


def parse_text(key: str, text: str) -> Any:
    """Input text to the raw value from_dict expects; what cannot be parsed stays text (and fails there)."""
    tp = field_type(key)
    if tp not in (int, float, str, bool, Step) and typing.get_origin(tp) is not list:
        return parse_value(text)  # any other type: TOML value syntax, as `--set` takes it
    if typing.get_origin(tp) is list:
        (item,) = typing.get_args(tp)
        inner = text.strip().removeprefix("[").removesuffix("]")
        parts = [p for p in inner.replace(";", ",").replace(" ", ",").split(",") if p.strip()]
        return [_scalar(p, item) for p in parts]
    return _scalar(text, tp)


def set_nested(raw: dict[str, Any], key: str, value: Any) -> None:
    node = raw
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def error_field(error: ConfigError, keys: list[str]) -> str | None:
    """The field a ConfigError is about: its key, stripped of list indices, or the first field under it."""
    key = (error.key or "").split("[")[0]
    if key in keys:
        return key
    under = [k for k in keys if k.startswith(key + ".")] if key else []
    return under[0] if under else None


def check_lengths(config: ExperimentConfig) -> None:
    """The length checks that need the epoch size; done here when every length is in iterations."""
    steps = [config.train.iterations, config.train.warmup_iterations, config.prune.rewind_iteration]
    if all(s.unit == "it" for s in steps):
        resolve_schedule(config, config.train.batch_size, "setup")


def registry_description(key: str, value: Any) -> str:
    """The one-line description of a dataset or model (the registries' torch-free index)."""
    from engine.catalog import DATASETS, MODELS

    try:
        if key.startswith("prune."):
            from engine.config import choice_help

            return choice_help(key, value)
        if key == "data.name":
            return DATASETS[value].description
        if key == "model.name":
            return MODELS[value].description
    except (KeyError, AttributeError, ImportError):
        return ""
    return ""


class SetupScreen(Screen):
    """Pick a preset, edit any field, start the run."""

    BINDINGS = [
        Binding("ctrl+r", "start", "Start run", id="setup.start",
                tooltip="Start run: create the run dir and launch the runner in the background (disabled while invalid)"),
        Binding("ctrl+s", "save_preset", "Save preset", id="setup.save_preset",
                tooltip="Save preset: write this config as a preset file (asks for a name; never overwrites silently)"),
        Binding("ctrl+o", "focus_presets", "Presets", id="setup.presets", tooltip="Presets: open the preset picker"),
        Binding("ctrl+z", "reload_preset", "Revert", id="setup.revert", tooltip="Revert: reload the preset, dropping edits"),
    ]

    def __init__(self) -> None:
        super().__init__(id="setup")
        self.choices = choices()
        self.layout_ = panel_layout()
        self.keys = [k for _, ks in self.layout_ for k in ks]
        self.config: ExperimentConfig | None = None
        self.error: ConfigError | None = None
        self.preset_name: str = ""
        self.preset_infos: list[Any] = []
        self.launching = False
        self._loaded_dict: dict[str, Any] | None = None
        self._filling = 0
        self._shown_error: tuple[str | None, str] = (None, "")
        self._static_cache: dict[str, str] = {}
        self._error_widget: Static | None = None
        self.checks = ConfigChecks(lambda *a, **k: self.app.start_worker(*a, **k), lambda: self._show_validation())
        self._highlighted: dict[str, str] = {}  # a choice list's highlighted option, while it is open
        self.built = False  # the panels are mounted (just after the first paint)
        self._building = False
        self._pending_fill: tuple[ExperimentConfig, str] | None = None

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

    def _top_widgets(self) -> list[Widget]:
        picker = Select[str]([], prompt="choose a preset…", id="preset-select", compact=True, allow_blank=True)
        return [Horizontal(Label("preset", classes="field-label"), picker, classes="field-row", id="preset-row"),
                Static("", id="preset-description", classes="hint")]

    def _buttons(self) -> list[Widget]:
        return [Button("Start ^r", id="start-button", variant="success", compact=True, disabled=True),
                Button("Save preset ^s", id="save-button", compact=True)]

    def _panel_grid(self) -> Vertical:
        panels = []
        for title, keys in self.layout_:
            panel = Vertical(*[w for key in keys for w in self._field(key)], classes="panel", id="panel-" + title.lower())
            panel.border_title = title
            panels.append(panel)
        return Vertical(*panels, id="panel-grid")

    def _field(self, key: str) -> list[Widget]:
        tp = field_type(key)
        label = LABELS.get(key, key.rpartition(".")[2].replace("_", " "))
        control: Widget
        if key in self.choices:
            control = Select[str]([(name, name) for name in self.choices[key]], id=field_id(key), compact=True,
                                  allow_blank=False, value=self.choices[key][0])
        elif tp is bool:
            control = Checkbox(CHECKBOX_LABELS.get(key, "on"), id=field_id(key), compact=True)
        else:
            control = Input("", id=field_id(key), compact=True, placeholder=PLACEHOLDERS.get(key, ""))
        widgets: list[Widget] = [Horizontal(Label(label, classes="field-label"), control, classes="field-row",
                                            id="row-" + field_id(key)[2:])]
        if key in HINT_KEYS:
            one_line = " one-line" if key.startswith("prune.") else ""
            widgets.append(Static("", id="hint-" + field_id(key)[2:], classes="hint" + one_line))
        elif key == "experiment":
            widgets.append(Static("", id="hint-" + field_id(key)[2:], classes="hint"))
        return widgets

    def on_mount(self) -> None:
        self._layout_for(self.app.size.width)
        if getattr(self.app, "first_frame_shown", False):  # mounted later than the app's first frame
            self.call_after_refresh(self.build_panels)

    async def build_panels(self) -> None:
        """Mounts the panels once the app's first frame is out (the app calls this on Ready),
        then fills them: the defaults, then the preset list and the preferred preset."""
        if self._building:
            return
        self._building = True
        holder = self.query_one("#setup-panels", VerticalScroll)
        if not holder.is_attached:  # the app quit before its first frame was out
            return
        await self.query_one("#setup-top", Vertical).mount_all(self._top_widgets())
        await self.query_one("#setup-bottom", Horizontal).mount_all(self._buttons())
        await holder.mount(self._panel_grid())
        await self.query_one("#setup-loading", Static).remove()
        self._watch_choice_lists()
        self.built = True
        pending, self._pending_fill = self._pending_fill, None
        self.fill(*(pending or (ExperimentConfig(), "")))
        self.app.load_preset_list(self._presets_listed)

    def on_resize(self, event: Any) -> None:
        self._layout_for(event.size.width)

    def _layout_for(self, width: int) -> None:
        self.set_class(width >= 110, "wide")

    # -- presets -----------------------------------------------------------------------------

    def _presets_listed(self, infos: list[Any]) -> None:
        self.preset_infos = infos
        select = self.query_one("#preset-select", Select)
        options = []
        for info in infos:
            prompt = Text(info.name)
            note = info.error or info.description
            if note:
                prompt.append("  " + note, style="dim")
            options.append((prompt, info.name))
        current = self.preset_name
        with self.prevent(Select.Changed):
            select.set_options(options)
            if current and any(i.name == current for i in infos):
                select.value = current
        if not current and infos and self.config is not None and not self._user_edited():
            preferred = next((i.name for i in infos if i.name == "digits-quick"), infos[0].name)
            self.load_preset(preferred)

    def _user_edited(self) -> bool:
        return self._loaded_dict is not None and self.config is not None and self.config.to_dict() != self._loaded_dict

    @on(Select.Changed, "#preset-select")
    def _preset_chosen(self, event: Select.Changed) -> None:
        event.stop()
        if event.value is Select.NULL or event.value == self.preset_name:
            return
        self.load_preset(str(event.value))

    def load_preset(self, name: str) -> None:
        """Loads a preset in a worker and fills every field from it."""
        self.app.load_preset(name, lambda result: self.fill(result[0], result[1]))

    def fill(self, config: ExperimentConfig, preset_name: str) -> None:
        """Puts a config into the fields (and remembers it as the unedited state)."""
        if not self.built:  # a preset chosen (palette) before the panels exist: filled once they do
            self._pending_fill = (config, preset_name)
            return
        self.preset_name = preset_name
        self._filling += 1
        try:
            for key in self.keys:
                widget = self.query_one("#" + field_id(key))
                value = config.get(key)
                with self.prevent(Select.Changed, Input.Changed, Checkbox.Changed):
                    if isinstance(widget, Select):
                        widget.value = value
                    elif isinstance(widget, Checkbox):
                        widget.value = bool(value)
                    else:
                        widget.value = value_text(value)
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
        raw: dict[str, Any] = {}
        for key in self.keys:
            widget = self.query_one("#" + field_id(key))
            if isinstance(widget, Select):
                value = None if widget.value is Select.NULL else widget.value
            elif isinstance(widget, Checkbox):
                value = widget.value
            else:
                value = widget.value if field_type(key) is str else parse_text(key, widget.value)
            set_nested(raw, key, value)
        return raw

    def validate(self) -> ExperimentConfig | None:
        """from_dict over every field; shows the error under its field and sets Start."""
        if not self.built:
            return None
        try:
            config = from_dict(self.raw_config(), "setup")
            check_lengths(config)
        except ConfigError as exc:
            self.config, self.error = None, exc
        else:
            self.config, self.error = config, None
        self._show_validation()
        return self.config

    def _show_validation(self) -> None:
        """Updates only what changed: class and layout changes are what cost time in Textual."""
        bad = error_field(self.error, self.keys) if self.error else None
        message = (f"✗ {self.error.allowed}" + (f" (got {self.error.value!r})" if self.error.key else "")) if bad else ""
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
            self._update_static("#setup-status", Text("… checking the data files and building the model", style="yellow"))
        elif self.config is not None:
            self._update_static("#setup-status", self._summary_line(self.config))
            if "experiment" in self.keys:  # which optimizer recipe trains this run (engine/recipes.py)
                from engine.recipes import recipe_text

                self._update_static("#hint-experiment", Text(recipe_text(self.config)))
        self._show_hints()
        info = next((i for i in self.preset_infos if i.name == self.preset_name), None)
        text = Text()
        if info is not None:
            text.append(info.description or info.error, style="italic")
            text.append(f"  [{info.source}]", style="dim")
        if self._user_edited():
            text.append("  (edited)", style="bold yellow")
        self._update_static("#preset-description", text)
        experiment = self.query_one("#" + field_id("experiment"), Select).value if "experiment" in self.keys else "imp"
        for title, experiments in PANEL_EXPERIMENTS.items():
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

    def _check(self, config: ExperimentConfig) -> str | None:
        """"" when the data and model checks pass, the problem, or None while they run."""
        return self.checks.result(config)

    def _show_hints(self) -> None:
        for key in HINT_KEYS:
            widget = self.query_one("#" + field_id(key), Select)
            name = self._highlighted.get(key) or widget.value
            text = registry_description(key, name)
            size, problem = self.checks.model_line(), self.checks.problem(key)
            if key == "model.name" and size and name == widget.value:
                text = f"{text}\n{size}"
            if problem:
                text = f"{text}\n✗ {problem}"
            hint = self.query_one("#hint-" + field_id(key)[2:], Static)
            hint.set_class(bool(problem), "problem")
            self._update_static("#hint-" + field_id(key)[2:], text)

    def _watch_choice_lists(self) -> None:
        """While a choice list is open, the hint under it describes the highlighted option
        (the list stops its own highlight messages, so its state is watched)."""
        for key in HINT_KEYS:
            select = self.query_one("#" + field_id(key), Select)
            overlay = select.query_one(OptionList)

            def moved(_: Any = None, key: str = key, select: Select = select, overlay: OptionList = overlay) -> None:
                index = overlay.highlighted
                if select.expanded and index is not None and index < overlay.option_count:
                    self._highlighted[key] = str(overlay.get_option_at_index(index).prompt)
                else:
                    self._highlighted.pop(key, None)
                self._show_hints()

            self.watch(overlay, "highlighted", moved, init=False)
            self.watch(select, "expanded", moved, init=False)

    def _update_static(self, selector: str, content: Text | str) -> None:
        plain = content.markup if isinstance(content, Text) else content
        if self._static_cache.get(selector) != plain:
            self._static_cache[selector] = plain
            self.query_one(selector, Static).update(content)

    def _summary_line(self, config: ExperimentConfig) -> Text:
        from engine.config import total_rounds

        t, p = config.train, config.prune
        iterations = value_text(t.iterations)
        if config.experiment == "imp":
            what = f"{total_rounds(config)}×{iterations}{'' if iterations.endswith('ep') else ' it'} · {p.criterion}/{p.mask1}/{p.mask0}"
        else:
            what = f"{config.experiment} · {iterations} it"
        trials = f"{config.trials} trial{'s' if config.trials != 1 else ''}"
        return Text(f"✓ ready: {config.data.name} · {config.model.name} · {what} · {trials}", style="green")

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    def _field_changed(self, event: Any) -> None:
        if getattr(event, "control", None) is not None and event.control.id == "preset-select":
            return
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

    @on(Button.Pressed, "#start-button")
    def _start_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_start()

    @on(Button.Pressed, "#save-button")
    def _save_pressed(self, event: Button.Pressed) -> None:
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
        self.app.launch_run(config, self.preset_name or config.name, done=self._launch_finished)

    def _launch_finished(self, ok: bool) -> None:
        self.launching = False
        self._show_validation()

    def action_focus_presets(self) -> None:
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
        suggestion = config.name if config.name not in ("custom", self.preset_name) else f"{self.preset_name or 'my'}-edited"

        def chosen(text: str | None) -> None:
            if text:
                self.save_preset_as(text)

        self.app.push_screen(TextPrompt("Save as preset", f"A preset name (saved in {user_dir()}) or a path to a .toml file:",
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
        name = target.stem
        if target.exists() and not overwrite:
            def answer(yes: bool | None) -> None:
                if yes:
                    self.save_preset_as(str(target), overwrite=True)
                else:
                    self.app.notify(f"{target} exists; not overwritten", severity="warning")

            self.app.push_screen(ConfirmDialog("Preset exists", f"{target} already exists.\nOverwrite it?", yes="Overwrite"),
                                 answer)
            return
        saved = dataclasses.replace(config, name=name)

        def written(result: Any) -> None:
            self.app.notify(f"saved preset {name!r} to {target}", title="preset saved")
            self.preset_name = name
            self._loaded_dict = saved.to_dict()
            self.app.load_preset_list(self._presets_listed)
            self.fill(saved, name)

        self.app.save_preset(target, to_toml(saved), written)
