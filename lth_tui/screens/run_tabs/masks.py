"""Tab 5, Masks: layer / round / trial selectors, the mask heatmap and, for the first layer of
an image model, the density per input pixel. The mask is read in this tab's worker (group
"tensors"), its result or failure coming back as a message of this class.

Its keys (+, -, 0, s, arrows) are bound on the Run screen with priority while this tab is
shown (MASK_BINDINGS), so they work wherever the focus is, the tab bar included: otherwise
Right would switch tabs and the keys would need four Tabs into the heatmap first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Label, Select

from engine.layout import RunLayout
from lth_tui.components.heatmap import MaskHeatmap
from lth_tui.screens.run_tabs.base import RunTab
from lth_tui.viewmodel import Shown

__all__ = ["MASK_BINDINGS", "MasksTab", "input_image_shape", "mask_matrix"]

MASK_BINDINGS = [
    Binding("plus,equals_sign", "mask('zoom_in')", "Zoom", key_display="+/-", priority=True, id="run.mask_zoom_in"),
    Binding("minus", "mask('zoom_out')", "Zoom out", show=False, priority=True, id="run.mask_zoom_out"),
    Binding("0", "mask('fit')", "Fit", show=False, priority=True, id="run.mask_fit"),
    Binding("s", "mask('toggle_stretch')", "Stretch", priority=True, id="run.mask_stretch",
            tooltip="Colour scale 0–100%, or stretched to the layer's density (sparse layers)"),
    Binding("left", "mask('pan_step', -1, 0)", "Pan", key_display="←↑↓→", priority=True, id="run.mask_pan_left"),
    Binding("right", "mask('pan_step', 1, 0)", "Pan right", show=False, priority=True, id="run.mask_pan_right"),
    Binding("up", "mask('pan_step', 0, -1)", "Pan up", show=False, priority=True, id="run.mask_pan_up"),
    Binding("down", "mask('pan_step', 0, 1)", "Pan down", show=False, priority=True, id="run.mask_pan_down"),
]


class MasksTab(RunTab):
    """Picks what mask to show (the user's choice, else the first layer of the latest round)
    and reads it in a worker."""

    tab_id = "tab-masks"
    title = "Masks"
    key = "5"
    help = "Masks"
    screen_bindings = MASK_BINDINGS

    @dataclass
    class Loaded(Message):
        """A mask read by the worker: `result` is mask_matrix's."""

        key: tuple[Any, ...]
        result: dict[str, Any]

    @dataclass
    class Failed(Message):
        """The mask could not be read (a damaged or missing file)."""

        key: tuple[Any, ...]
        error: str

    def __init__(self) -> None:
        super().__init__()
        self.pick: dict[str, Any] = {}  # layer / round / trial chosen by the user
        self.loaded: tuple[Any, ...] | None = None
        self.title_shown = ""
        self.model: Any = None
        self._options: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
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

    def reset(self, shown: Shown) -> None:
        """A new run (or none): forget the picks and the shown mask."""
        super().reset(shown)
        self.model = shown.model
        self.pick, self.loaded, self.title_shown = {}, None, ""
        self.query_one("#mask-heatmap", MaskHeatmap).clear()
        self.query_one("#pixel-heatmap", MaskHeatmap).add_class("hidden")

    def update(self, shown: Shown, dirty: set[str]) -> None:
        super().update(shown, dirty)
        if "masks" in dirty:
            self.update_controls()

    def tab_action(self, action: str, *args: Any) -> None:
        """A heatmap key pressed anywhere on the screen while this tab shows."""
        dx, dy = (list(args) + [0, 0])[:2]
        heat = self.query_one("#mask-heatmap", MaskHeatmap)
        if action == "pan_step":
            heat.action_pan_step(dx, dy)
        else:
            getattr(heat, f"action_{action}")()

    def update_controls(self) -> None:
        """New layers, rounds or trials: refresh the selectors, then load what to show."""
        model = self.model
        if model is None:
            return
        trials = sorted({t for (t, _) in model.layers})
        rounds = sorted({r for (_, r) in model.layers})
        wanted = {"mask-layer": [(name, name) for name in model.layer_names],
                  "mask-round": [(f"{r}", r) for r in rounds], "mask-trial": [(f"{t + 1}", t) for t in trials]}
        with self.prevent(Select.Changed):
            for select_id, options in wanted.items():
                if options != self._options.get(select_id):
                    self._options[select_id] = options
                    self.query_one("#" + select_id, Select).set_options(options)
            pick = self.choice()
            if pick is not None:
                layer, r, t = pick
                self.query_one("#mask-layer", Select).value = layer
                self.query_one("#mask-round", Select).value = r
                self.query_one("#mask-trial", Select).value = t
        self._load()

    def choice(self) -> tuple[str, int, int] | None:
        """(layer, round, trial) to show: what the user picked, else the first layer of the latest round."""
        model = self.model
        if model is None or not model.layers or not model.layer_names:
            return None
        latest_t, latest_r = max(model.layers)
        layer = self.pick.get("layer", model.layer_names[0])
        t = self.pick.get("trial", latest_t)
        r = self.pick.get("round", max((rr for (tt, rr) in model.layers if tt == t), default=latest_r))
        if (t, r) not in model.layers:
            t, r = latest_t, latest_r
        return layer, r, t

    @on(Select.Changed, "#mask-layer, #mask-round, #mask-trial")
    def _select(self, event: Select.Changed) -> None:
        event.stop()
        if event.value is Select.NULL:
            return
        name = {"mask-layer": "layer", "mask-round": "round", "mask-trial": "trial"}[event.select.id or ""]
        self.pick[name] = event.value
        self._load()

    def _load(self) -> None:
        model = self.model
        pick = self.choice()
        if model is None or pick is None:
            return
        layer, r, t = pick
        key = (model.run_dir, model.token, layer, r, t)
        if key == self.loaded:
            return
        self.loaded = key
        image_shape = None
        if model.config is not None and model.layer_names and layer == model.layer_names[0]:
            image_shape = input_image_shape(model.config)
        self.read_mask(key, model.run_dir, t, r, layer, image_shape)

    @work(thread=True, group="tensors", exclusive=True, exit_on_error=False)
    def read_mask(self, key: tuple[Any, ...], run_dir: Path, trial: int, round_: int, layer: str,
                  image_shape: tuple[int, int] | None) -> None:
        try:
            result = mask_matrix(run_dir, trial, round_, layer, image_shape)
        except Exception as exc:  # noqa: BLE001 - a damaged file is told, never a crash
            self.post_message(self.Failed(key, str(exc) or type(exc).__name__))
        else:
            self.post_message(self.Loaded(key, result))

    @on(Failed)
    def _failed(self, message: Failed) -> None:
        message.stop()
        self.app.notify(message.error, title="load mask failed", severity="error")

    @on(Loaded)
    def _ready(self, message: Loaded) -> None:
        message.stop()
        result = message.result
        if self.model is None or result["run_dir"] != self.model.run_dir:
            return
        heat = self.query_one("#mask-heatmap", MaskHeatmap)
        pixels = self.query_one("#pixel-heatmap", MaskHeatmap)
        self.title_shown = result["title"]
        heat.set_matrix(result["matrix"], result["title"])
        if result.get("density") is not None:
            pixels.set_matrix(result["density"], result["density_title"])
            pixels.remove_class("hidden")
        else:
            pixels.add_class("hidden")


def input_image_shape(config: Any) -> tuple[int, int] | None:
    """(H, W) when the model's first layer reads a single-channel image pixel by pixel (MNIST-like)."""
    from engine.catalog import DATASETS

    try:
        shape = DATASETS[config.data.name].input_shape
    except (KeyError, AttributeError, ImportError):
        return None
    if len(shape) == 3 and shape[0] == 1:
        return int(shape[1]), int(shape[2])
    if len(shape) == 1 and int(shape[0]) == 784:
        return 28, 28
    return None


def mask_matrix(run_dir: Path, trial: int, round_: int, layer: str,
                image_shape: tuple[int, int] | None) -> dict[str, Any]:
    """Reads one layer's mask (in a worker): the 2-D matrix for the heatmap and, for the first
    layer of an image model, the fraction of weights kept per input pixel."""
    import numpy as np
    import torch

    from engine.store import load_tensors
    from lth_tui.components.heatmap import input_pixel_density

    masks = load_tensors(RunLayout(run_dir).mask(trial, round_))
    if layer not in masks:
        raise KeyError(f"{layer} has no mask in trial {trial} round {round_}; masks: {', '.join(masks)}")
    tensor = masks[layer]
    mask = tensor.reshape(tensor.shape[0], -1) if tensor.dim() != 2 else tensor
    matrix = mask.to(dtype=torch.float32).numpy()
    if matrix.ndim == 1:
        matrix = matrix[np.newaxis, :]
    shape = f" [{'×'.join(str(s) for s in tensor.shape)}]" if tensor.dim() != 2 else ""
    result = {"run_dir": Path(run_dir), "matrix": matrix, "title": f"{layer} r{round_} t{trial + 1}{shape}",
              "density": None, "density_title": ""}
    if image_shape is not None and tensor.dim() == 2 and matrix.shape[1] == image_shape[0] * image_shape[1]:
        result["density"] = input_pixel_density(matrix, image_shape)
        result["density_title"] = f"per pixel ({image_shape[0]}×{image_shape[1]})"
    return result
