"""The Setup screen's fields: which panel holds which config key, how a value becomes an
Input's text and back, and the widgets of the preset picker, the panels and the buttons.

Imported when the panels are built (just after the app's first frame), never at start: it
needs Textual's form widgets and the engine's config module, which the first frame does not.
"""

from __future__ import annotations

import functools
import json
import math
import typing
from typing import Any

from rich.text import Text
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Label, OptionList, Select, Static

from engine.steps import Step, as_config_value
from lth_tui.screens.field_ids import field_id

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
    "prune.rate.output": "rate output", "prune.rewind_iteration": "rewind to", "prune.count": "count rule",
    "train.lr": "learning rate", "train.lr_scaling": "lr scaling", "train.lr_reference_batch": "lr reference batch",
}
PLACEHOLDERS = {
    "model.hidden": "e.g. 300, 100 (mlp only)", "train.milestones": "e.g. 80ep, 120ep",
    "device": "auto | cpu | cuda | cuda:N",
    "threads": "auto = from model size and free cores; or N",
    "train.iterations": "500, 500it or 2ep", "train.eval_every": "100, 100it or 1ep",
    "train.warmup_iterations": "0 or 1ep",
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



@functools.cache
def field_type(key: str) -> Any:
    """The declared type of a dotted config key (float for prune.rate.<kind>)."""
    from engine.config import SECTIONS, ExperimentConfig

    parts = key.split(".")
    if len(parts) == 3 and parts[:2] == ["prune", "rate"]:
        return float
    if len(parts) == 1:
        return typing.get_type_hints(ExperimentConfig)[key]
    return typing.get_type_hints(SECTIONS[parts[0]])[parts[1]]


def panel_layout() -> list[tuple[str, list[str]]]:
    """(panel title, keys) covering every key of all_keys()."""
    from engine.config import all_keys

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
        from engine.config import parse_value

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


def error_field(error: Any, keys: list[str]) -> str | None:
    """The field a ConfigError is about: its key, stripped of list indices, or the first field under it."""
    key = (error.key or "").split("[")[0]
    if key in keys:
        return key
    under = [k for k in keys if k.startswith(key + ".")] if key else []
    return under[0] if under else None


def check_lengths(config: Any) -> None:
    """The length checks that need the epoch size; done here when every length is in iterations."""
    from engine.config import resolve_schedule

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


def top_widgets() -> list[Widget]:
    """The preset picker and the preset's description line."""
    picker = Select[str]([], prompt="choose a preset…", id="preset-select", compact=True, allow_blank=True)
    return [Horizontal(Label("preset", classes="field-label"), picker, classes="field-row", id="preset-row"),
            Static("", id="preset-description", classes="hint")]


def buttons() -> list[Widget]:
    return [Button("Start ^r", id="start-button", variant="success", compact=True, disabled=True),
            Button("Save preset ^s", id="save-button", compact=True)]


def panel_grid(layout: list[tuple[str, list[str]]], choices: dict[str, list[str]]) -> Vertical:
    """One bordered panel per section, a row per key."""
    panels = []
    for title, keys in layout:
        panel = Vertical(*[w for key in keys for w in field_widgets(key, choices)], classes="panel",
                         id="panel-" + title.lower())
        panel.border_title = title
        panels.append(panel)
    return Vertical(*panels, id="panel-grid")


def field_widgets(key: str, choices: dict[str, list[str]]) -> list[Widget]:
    """A key's row (label and control: a choice list, a checkbox or an input) and its hint line."""
    tp = field_type(key)
    label = LABELS.get(key, key.rpartition(".")[2].replace("_", " "))
    control: Widget
    if key in choices:
        control = Select[str]([(name, name) for name in choices[key]], id=field_id(key), compact=True,
                              allow_blank=False, value=choices[key][0])
    elif tp is bool:
        control = Checkbox(CHECKBOX_LABELS.get(key, "on"), id=field_id(key), compact=True)
    else:
        control = Input("", id=field_id(key), compact=True, placeholder=PLACEHOLDERS.get(key, ""))
    widgets: list[Widget] = [Horizontal(Label(label, classes="field-label"), control, classes="field-row",
                                        id="row-" + field_id(key)[2:])]
    if key in HINT_KEYS or key == "experiment":
        one_line = " one-line" if key.startswith("prune.") else ""
        widgets.append(Static("", id="hint-" + field_id(key)[2:], classes="hint" + one_line))
    return widgets


def widget_value(widget: Widget, key: str) -> Any:
    """A control's value as from_dict takes it."""
    if isinstance(widget, Select):
        return None if widget.value is Select.NULL else widget.value
    if isinstance(widget, Checkbox):
        return widget.value
    return widget.value if field_type(key) is str else parse_text(key, widget.value)  # type: ignore[attr-defined]


def set_widget_value(widget: Widget, value: Any) -> None:
    if isinstance(widget, Select):
        widget.value = value
    elif isinstance(widget, Checkbox):
        widget.value = bool(value)
    else:
        widget.value = value_text(value)  # type: ignore[attr-defined]


def summary_line(config: Any) -> Text:
    """The status line of a valid config: what will train."""
    from engine.config import total_rounds

    t, p = config.train, config.prune
    iterations = value_text(t.iterations)
    if config.experiment == "imp":
        unit = "" if iterations.endswith("ep") else " it"
        what = f"{total_rounds(config)}×{iterations}{unit} · {p.criterion}/{p.mask1}/{p.mask0}"
    else:
        what = f"{config.experiment} · {iterations} it"
    trials = f"{config.trials} trial{'s' if config.trials != 1 else ''}"
    return Text(f"✓ ready: {config.data.name} · {config.model.name} · {what} · {trials}", style="green")


def preset_description(info: Any, edited: bool) -> Text:
    """The line under the preset picker: the preset's description (or why it does not load), its
    source, and whether the panels were edited since it was loaded."""
    text = Text()
    if info is not None:
        text.append(info.description or info.error, style="italic")
        text.append(f"  [{info.source}]", style="dim")
    if edited:
        text.append("  (edited)", style="bold yellow")
    return text


def preset_options(infos: list[Any]) -> list[tuple[Text, str]]:
    """The preset picker's options: each name with its description (or its error) dimmed."""
    options = []
    for info in infos:
        prompt = Text(info.name)
        note = info.error or info.description
        if note:
            prompt.append("  " + note, style="dim")
        options.append((prompt, info.name))
    return options


def watch_choice_lists(screen: Any) -> None:
    """While a choice list is open, the hint under it describes the highlighted option (the list
    stops its own highlight messages, so its state is watched): `screen.highlighted_options`."""
    for key in HINT_KEYS:
        select = screen.query_one("#" + field_id(key), Select)
        overlay = select.query_one(OptionList)

        def moved(_: Any = None, key: str = key, select: Select = select, overlay: OptionList = overlay) -> None:
            index = overlay.highlighted
            if select.expanded and index is not None and index < overlay.option_count:
                screen.highlighted_options[key] = str(overlay.get_option_at_index(index).prompt)
            else:
                screen.highlighted_options.pop(key, None)
            screen.show_hints()

        screen.watch(overlay, "highlighted", moved, init=False)
        screen.watch(select, "expanded", moved, init=False)
