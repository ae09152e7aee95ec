"""Mask heatmap: the density of kept weights of one layer, drawn with half blocks.

Each character row shows two image rows with "▀" (foreground = upper, background = lower).
Every image cell is the mean of the block of weights it covers (block averaging, never
nearest-neighbour: a block with half its weights kept reads as 50%), so a fine pruning
pattern averages to its true density instead of aliasing to 0/1 stripes.
"""

from __future__ import annotations

import math

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.events import MouseDown, MouseMove, MouseScrollDown, MouseScrollUp, MouseUp, Resize
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

__all__ = ["MaskHeatmap", "RAMP", "block_average", "density_index", "input_pixel_density"]

# Viridis sampled at 17 points: perceptually uniform, dark (0%) to bright (100%).
RAMP: tuple[tuple[int, int, int], ...] = (
    (68, 1, 84),
    (72, 24, 106),
    (71, 45, 123),
    (66, 64, 134),
    (59, 82, 139),
    (51, 99, 141),
    (44, 114, 142),
    (38, 130, 142),
    (33, 145, 140),
    (31, 160, 136),
    (40, 174, 128),
    (63, 188, 115),
    (94, 201, 98),
    (132, 212, 75),
    (173, 220, 48),
    (216, 226, 25),
    (253, 231, 37),
)
_STEPS = len(RAMP)


def block_average(matrix: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Downsample a 2-D array to (rows, cols) by averaging the block each output cell covers.

    Output row i covers input rows [floor(i*R/rows), floor((i+1)*R/rows)), likewise for
    columns. When the sizes divide these are equal blocks and the result is the exact block
    mean; otherwise the blocks differ in size by at most one row/column. Either way the blocks
    tile the input, so every element is counted exactly once. Requires 1 <= rows <= R and
    1 <= cols <= C (this never upsamples).
    """
    data = np.asarray(matrix)
    if data.ndim != 2:
        raise ValueError(f"block_average needs a 2-D array, got shape {data.shape}")
    n_rows, n_cols = data.shape
    if not (1 <= rows <= n_rows and 1 <= cols <= n_cols):
        raise ValueError(f"cannot average {data.shape} into ({rows}, {cols})")
    return _block_means(data, _starts(0, rows, rows, n_rows), n_rows, _starts(0, cols, cols, n_cols), n_cols)


def _starts(first: int, stop: int, cells: int, size: int) -> np.ndarray:
    """Input index where each of output cells first..stop-1 begins: floor(i*size/cells)."""
    return (np.arange(first, stop, dtype=np.int64) * size) // cells


def _block_means(
    data: np.ndarray, row_starts: np.ndarray, row_stop: int, col_starts: np.ndarray, col_stop: int
) -> np.ndarray:
    """Mean of each block given its start indices; the last block ends at row_stop/col_stop."""
    r0, c0 = int(row_starts[0]), int(col_starts[0])
    window = data[r0:row_stop, c0:col_stop]
    sums = np.add.reduceat(window, row_starts - r0, axis=0, dtype=np.float64)
    sums = np.add.reduceat(sums, col_starts - c0, axis=1)
    row_sizes = np.diff(np.append(row_starts, row_stop))
    col_sizes = np.diff(np.append(col_starts, col_stop))
    return sums / np.outer(row_sizes, col_sizes)


def input_pixel_density(first_layer_mask: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
    """Fraction of kept first-layer weights per input pixel, as an image.

    For a dense first layer [out, H*W] this is the mean over the out dimension, reshaped to
    `image_shape` — it shows which pixels the ticket still reads. A conv mask [out, in, kh, kw]
    has no per-pixel weights, so it is refused.
    """
    mask = np.asarray(first_layer_mask)
    if mask.ndim != 2:
        raise ValueError(
            f"input pixel density needs a dense first layer [out, in]; got shape {mask.shape}"
            " (a conv kernel is shared over all pixels, so it has no per-pixel density)"
        )
    height, width = image_shape
    if mask.shape[1] != height * width:
        raise ValueError(f"first layer has {mask.shape[1]} inputs, image {image_shape} has {height * width}")
    return mask.astype(np.float64).mean(axis=0).reshape(height, width)


def density_index(density: np.ndarray, top: float = 1.0) -> np.ndarray:
    """Ramp index per cell: 0 only for exactly 0%, the top colour only from `top` up.

    Keeping the ends exclusive makes fully pruned rows (dead units) and untouched blocks
    stand out from merely sparse or dense ones; the 15 inner steps are linear in density
    over [0, top). `top` < 1 is the stretched scale of a very sparse layer.
    """
    d = np.nan_to_num(np.asarray(density, dtype=np.float64), nan=0.0)
    inner = 1 + np.floor(np.clip(d / top, 0.0, 1.0) * (_STEPS - 2)).astype(np.int64)
    index = np.clip(inner, 1, _STEPS - 2)
    index[d <= 0.0] = 0
    index[d >= top] = _STEPS - 1
    return index


def stretch_top(density: float) -> float:
    """The upper end of the stretched scale: a round percentage about 4× the layer's density.

    On the linear 0–100% scale a layer with 2% of its weights left reads as one dark field;
    stretched to 0–10% its rows and columns of surviving weights show. A round, per-layer
    value (not the visible window's maximum) keeps colours fixed while panning and zooming.
    """
    for top in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5):
        if 4 * density <= top:
            return top
    return 1.0


def _rgb(color: tuple[int, int, int]) -> str:
    return "rgb({},{},{})".format(*color)


# Every (upper, lower) pair of ramp colours as a half-block style, built once.
_PAIR_STYLES: list[list[Style]] = [
    [Style(color=_rgb(upper), bgcolor=_rgb(lower)) for lower in RAMP] for upper in RAMP
]
_UPPER_ONLY = [Style(color=_rgb(upper)) for upper in RAMP]


class MaskHeatmap(Widget, can_focus=True):
    """Density of kept weights of one layer: half-block cells (▀, fg = upper row, bg = lower
    row), block-averaged.

    Rows: a title (layer, overall density, shape), the image, and a legend (colour ramp,
    scale, and the visible weight range when zoomed). Zoom 0 fits the whole matrix into the
    widget; each step in doubles the magnification until one image cell (half a character)
    is one weight. Panning moves the viewport in screen cells and clamps at the edges.
    """

    DEFAULT_CSS = """
    MaskHeatmap {
        width: 1fr;
        height: 1fr;
        min-height: 6;
    }
    """

    BINDINGS = [
        Binding("plus,equals_sign", "zoom_in", "Zoom in", key_display="+", id="heatmap.zoom_in"),
        Binding("minus", "zoom_out", "Zoom out", key_display="-", id="heatmap.zoom_out"),
        Binding("0", "fit", "Fit", id="heatmap.fit"),
        Binding("s", "toggle_stretch", "Stretch", id="heatmap.stretch",
                tooltip="Colour scale 0–100%, or stretched to the layer's density (sparse layers)"),
        Binding("left,h", "pan_step(-1, 0)", "Pan", key_display="←↑↓→", id="heatmap.pan_left"),
        Binding("right,l", "pan_step(1, 0)", "Pan right", show=False, id="heatmap.pan_right"),
        Binding("up,k", "pan_step(0, -1)", "Pan up", show=False, id="heatmap.pan_up"),
        Binding("down,j", "pan_step(0, 1)", "Pan down", show=False, id="heatmap.pan_down"),
    ]

    zoom: reactive[int] = reactive(0)
    stretch: reactive[bool] = reactive(False)

    def __init__(
        self,
        matrix: np.ndarray | None = None,
        title: str = "",
        *,
        empty_message: str = "no mask to show",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self.empty_message = empty_message
        self._matrix: np.ndarray | None = None
        self._source: object = None  # the array last passed to set_matrix
        self._title = ""
        self._density = 0.0
        self._generation = 0  # bumped per set_matrix: the "matrix identity" in cache keys
        # Viewport centre as a fraction of the matrix, so zooming keeps the same spot in view.
        self._center = (0.5, 0.5)
        self._window_key: tuple[int, ...] | None = None
        self._window: np.ndarray = np.zeros((0, 0), dtype=np.int64)
        self._strips_key: tuple[object, ...] | None = None
        self._strips: dict[int, Strip] = {}
        self._drag: tuple[int, int] | None = None
        if matrix is not None:
            self.set_matrix(matrix, title)

    # ---- public API -------------------------------------------------------------------

    def set_matrix(self, matrix: np.ndarray, title: str = "") -> None:
        """Show a 2-D matrix of kept weights (bool or density in [0, 1]).

        Keeps zoom and position when the shape is unchanged (the next IMP level of the same
        layer), otherwise goes back to fit. Passing the same array object again only updates
        the title, so callers may re-send on every update; do not mutate a shown array.
        """
        if matrix is self._source and self._matrix is not None:
            if title != self._title:
                self._title = title
                self.refresh()
            return
        data = np.asarray(matrix)
        if data.ndim != 2:
            raise ValueError(f"MaskHeatmap needs a 2-D matrix, got shape {data.shape}")
        self._source = matrix
        same_shape = self._matrix is not None and self._matrix.shape == data.shape
        if data.size == 0:
            self._matrix = None
        else:
            # One float copy up front; every zoom level averages from it.
            self._matrix = np.clip(np.nan_to_num(data.astype(np.float32), nan=0.0), 0.0, 1.0)
            self._density = float(self._matrix.mean(dtype=np.float64))
        self._title = title
        self._generation += 1
        if not same_shape:
            self._center = (0.5, 0.5)
            self.zoom = 0
        self.refresh()

    def clear(self) -> None:
        """Show the empty hint instead of a matrix."""
        self._matrix = self._source = None
        self._generation += 1
        self.zoom = 0
        self.refresh()

    @property
    def matrix(self) -> np.ndarray | None:
        return self._matrix

    @property
    def max_zoom(self) -> int:
        """Zoom at which one image cell is one weight on both axes (0 if it already fits)."""
        if self._matrix is None:
            return 0
        area_rows, area_cols = self._area()
        n_rows, n_cols = self._matrix.shape
        ratio = max(n_rows / max(area_rows, 1), n_cols / max(area_cols, 1))
        return max(0, math.ceil(math.log2(ratio))) if ratio > 1 else 0

    @property
    def scale(self) -> tuple[float, float]:
        """Weights per image cell (rows, cols) at the current zoom; below 1 means magnified."""
        if self._matrix is None:
            return (1.0, 1.0)
        image_rows, image_cols = self._image_shape()
        n_rows, n_cols = self._matrix.shape
        return (n_rows / image_rows, n_cols / image_cols)

    @property
    def viewport(self) -> tuple[int, int, int, int]:
        """Visible weights as (row_start, col_start, row_stop, col_stop), stops exclusive."""
        if self._matrix is None:
            return (0, 0, 0, 0)
        image_rows, image_cols = self._image_shape()
        top, left = self._offset((image_rows, image_cols))
        area_rows, area_cols = self._area()
        n_rows, n_cols = self._matrix.shape
        bottom = min(top + area_rows, image_rows)
        right = min(left + area_cols, image_cols)

        def to_weights(cell: int, cells: int, size: int, stop: bool) -> int:
            if cells <= size:  # block i starts at floor(i*size/cells), as in block_average
                return (cell * size) // cells
            factor = cells // size  # magnified by a whole factor
            return -(-cell // factor) if stop else cell // factor

        return (
            to_weights(top, image_rows, n_rows, stop=False),
            to_weights(left, image_cols, n_cols, stop=False),
            to_weights(bottom, image_rows, n_rows, stop=True),
            to_weights(right, image_cols, n_cols, stop=True),
        )

    def zoom_in(self) -> None:
        self.zoom = self.zoom + 1

    def zoom_out(self) -> None:
        self.zoom = self.zoom - 1

    def pan(self, dx: int, dy: int) -> None:
        """Move the viewport by dx columns and dy character rows (two image rows each)."""
        if self._matrix is None:
            return
        image_rows, image_cols = self._image_shape()
        top, left = self._offset((image_rows, image_cols))
        area_rows, area_cols = self._area()
        top = self._clamp(top + 2 * dy, image_rows, area_rows)
        left = self._clamp(left + dx, image_cols, area_cols)
        self._center = (
            (top + min(area_rows, image_rows) / 2) / image_rows,
            (left + min(area_cols, image_cols) / 2) / image_cols,
        )
        self.refresh()

    # ---- actions, reactives, events ---------------------------------------------------

    def action_zoom_in(self) -> None:
        self.zoom_in()

    def action_zoom_out(self) -> None:
        self.zoom_out()

    def action_toggle_stretch(self) -> None:
        self.stretch = not self.stretch

    @property
    def scale_top(self) -> float:
        """Density shown in the brightest colour: 100%, or the stretched scale's top."""
        return stretch_top(self._density) if self.stretch and self._matrix is not None else 1.0

    def watch_stretch(self) -> None:
        self._window_key = None  # the ramp indices depend on the scale
        self.refresh()

    def action_fit(self) -> None:
        self.zoom = 0
        self._center = (0.5, 0.5)
        self.refresh()

    def action_pan_step(self, dx: int, dy: int) -> None:
        """Arrow keys move an eighth of the viewport (at least one cell)."""
        area_rows, area_cols = self._area()
        self.pan(dx * max(1, area_cols // 8), dy * max(1, area_rows // 2 // 8))

    def validate_zoom(self, zoom: int) -> int:
        return max(0, min(int(zoom), self.max_zoom))

    def watch_zoom(self) -> None:
        self.refresh()

    def on_resize(self, event: Resize) -> None:
        # A smaller widget may need fewer zoom steps to reach 1:1.
        self.zoom = self.zoom

    def on_mouse_scroll_up(self, event: MouseScrollUp) -> None:
        event.stop()
        self.zoom_in()

    def on_mouse_scroll_down(self, event: MouseScrollDown) -> None:
        event.stop()
        self.zoom_out()

    def on_mouse_down(self, event: MouseDown) -> None:
        self._drag = (event.screen_x, event.screen_y)
        self.capture_mouse()

    def on_mouse_move(self, event: MouseMove) -> None:
        if self._drag is None:
            return
        x, y = self._drag
        dx, dy = x - event.screen_x, y - event.screen_y  # drag the image: move the view opposite
        if dx or dy:
            self.pan(dx, dy)
            self._drag = (event.screen_x, event.screen_y)

    def on_mouse_up(self, event: MouseUp) -> None:
        self._drag = None
        self.release_mouse()

    # ---- geometry and image -----------------------------------------------------------

    def _area(self) -> tuple[int, int]:
        """Image area in image cells: (half-rows, columns); one title and one legend row."""
        width, height = self.content_size
        return (max(height - 2, 0) * 2, max(width, 0))

    def _magnification(self) -> int:
        """Whole factor (same on both axes) a matrix that fits at 1:1 is blown up by, else 1.

        Equal factors keep an image such as the 28×28 input-pixel map in shape.
        """
        assert self._matrix is not None
        area_rows, area_cols = self._area()
        n_rows, n_cols = self._matrix.shape
        return max(1, min(area_rows // n_rows, area_cols // n_cols))

    def _image_shape(self) -> tuple[int, int]:
        """Size in cells of the whole matrix drawn at the current zoom."""
        assert self._matrix is not None
        area_rows, area_cols = self._area()
        area_rows, area_cols = max(area_rows, 1), max(area_cols, 1)
        n_rows, n_cols = self._matrix.shape
        factor = self._magnification()
        if factor > 1:
            return (n_rows * factor, n_cols * factor)
        zoom = self.validate_zoom(self.zoom)
        return (min(n_rows, area_rows << zoom), min(n_cols, area_cols << zoom))

    def _visible_image(self) -> tuple[np.ndarray, int, int]:
        """Ramp indices of the visible window only (never the whole zoomed image), and its
        top-left cell; cached per matrix, zoom, size and position."""
        assert self._matrix is not None
        image_rows, image_cols = self._image_shape()
        top, left = self._offset((image_rows, image_cols))
        area_rows, area_cols = self._area()
        rows = max(0, min(area_rows, image_rows - top))
        cols = max(0, min(area_cols, image_cols - left))
        key = (self._generation, image_rows, image_cols, top, left, rows, cols, self.scale_top)
        if key != self._window_key:
            n_rows, n_cols = self._matrix.shape
            if rows == 0 or cols == 0:
                density = np.zeros((rows, cols))
            elif image_rows > n_rows:  # magnified: each weight repeated factor×factor
                factor = image_rows // n_rows
                row_index = np.arange(top, top + rows) // factor
                col_index = np.arange(left, left + cols) // factor
                density = self._matrix[np.ix_(row_index, col_index)]
            else:
                density = _block_means(
                    self._matrix,
                    _starts(top, top + rows, image_rows, n_rows),
                    ((top + rows) * n_rows) // image_rows,
                    _starts(left, left + cols, image_cols, n_cols),
                    ((left + cols) * n_cols) // image_cols,
                )
            self._window = density_index(density, self.scale_top)
            self._window_key = key
        return self._window, top, left

    @staticmethod
    def _clamp(start: int, size: int, view: int) -> int:
        return max(0, min(start, size - view)) if size > view else 0

    def _offset(self, shape: tuple[int, int]) -> tuple[int, int]:
        """Top-left image cell of the viewport for the stored centre, clamped to the image."""
        area_rows, area_cols = self._area()
        top = self._clamp(round(self._center[0] * shape[0] - area_rows / 2), shape[0], area_rows)
        left = self._clamp(round(self._center[1] * shape[1] - area_cols / 2), shape[1], area_cols)
        return top, left

    # ---- rendering --------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width, height = self.content_size
        base = self.rich_style
        if self._matrix is None:
            text = self.empty_message if y == height // 2 else ""
            return self._text_strip([(text.center(width), Style(dim=True))], width, base)
        if y == 0:
            return self._title_strip(width, base)
        if y == height - 1 and height >= 3:
            return self._legend_strip(width, base)
        return self._image_strip(y - 1, width, base)

    def _text_strip(self, parts: list[tuple[str, Style]], width: int, base: Style) -> Strip:
        segments = [Segment(text, base + style) for text, style in parts if text]
        return Strip(segments).crop_extend(0, width, base)

    def _title_strip(self, width: int, base: Style) -> Strip:
        """Title, density, visible range and size; the least needed parts go first when narrow."""
        n_rows, n_cols = self._matrix.shape  # type: ignore[union-attr]
        title = (self._title or "mask", Style(bold=True, underline=self.has_focus))
        kept = [(f"  {100 * self._density:.1f}% kept", Style(bold=True)),
                (f" {100 * self._density:.1f}%", Style(bold=True))]
        extra: list[tuple[str, Style]] = []
        if self.validate_zoom(self.zoom) > 0:
            r0, c0, r1, c1 = self.viewport
            extra.append((f"  rows {r0}–{r1 - 1} cols {c0}–{c1 - 1}", Style()))
        extra.append((f"  of {n_rows}×{n_cols}", Style(dim=True)))
        candidates = [[title, kept[0], *extra], [title, kept[0], *extra[:-1]], [title, kept[0]], [title, kept[1]]]
        parts = next((c for c in candidates if sum(len(t) for t, _ in c) <= width), candidates[-1])
        return self._text_strip(parts, width, base)

    def _legend_strip(self, width: int, base: Style) -> Strip:
        # The "50%" label stands where the middle colour would be.
        ramp = RAMP if width >= 48 else RAMP[::2]
        half = len(ramp) // 2
        top = self.scale_top
        parts: list[tuple[str, Style]] = [("0% ", Style(dim=True))]
        parts += [("█", Style(color=_rgb(c))) for c in ramp[:half]]
        parts.append((f" {100 * top / 2:g}% ", Style(dim=True)))
        parts += [("█", Style(color=_rgb(c))) for c in ramp[half + 1 :]]
        parts.append((f" {100 * top:g}%" + ("+" if top < 1 else ""),
                      Style(bold=top < 1) if top < 1 else Style(dim=True)))
        used = sum(len(text) for text, _ in parts)
        scale = self._scale_text(short=False)
        if used + 2 + len(scale) > width:
            scale = self._scale_text(short=True)
        parts.append(("  " + scale, Style()))
        return self._text_strip(parts, width, base)

    def _scale_text(self, short: bool) -> str:
        """How many weights one half-character cell stands for."""
        rows, cols = self.scale
        if rows < 1 and cols < 1:  # magnified by a whole factor, the same on both axes
            factor = round(1 / rows)
            return f"×{factor}" if short else f"1 weight = {factor}×{factor} cells"
        if rows == 1 and cols == 1:
            return "1:1" if short else "1 cell = 1 weight"
        sign = "=" if rows == int(rows) and cols == int(cols) else "≈"
        if short:
            return f"{sign}{rows:.3g}×{cols:.3g}/cell"
        return f"1 cell {sign} {rows:.3g}×{cols:.3g} weights"

    def _image_strip(self, row: int, width: int, base: Style) -> Strip:
        window, _, _ = self._visible_image()
        cache_key = (self._window_key, width, base)
        if cache_key != self._strips_key:
            self._strips_key, self._strips = cache_key, {}
        strip = self._strips.get(row)
        if strip is None:
            strip = self._strips[row] = self._build_image_strip(window, row, width, base)
        return strip

    @staticmethod
    def _build_image_strip(window: np.ndarray, row: int, width: int, base: Style) -> Strip:
        upper_row = 2 * row
        if upper_row >= window.shape[0]:
            return Strip.blank(width, base)
        pad = max(0, (width - window.shape[1]) // 2)  # centre an image narrower than us
        upper = window[upper_row]
        has_lower = upper_row + 1 < window.shape[0]
        lower = window[upper_row + 1] if has_lower else np.zeros_like(upper)
        # One segment per run of equal (upper, lower) colour pairs.
        pairs = upper * _STEPS + lower
        starts = np.flatnonzero(np.r_[True, pairs[1:] != pairs[:-1]])
        stops = np.r_[starts[1:], len(pairs)]
        segments: list[Segment] = [Segment(" " * pad, base)] if pad else []
        for start, stop in zip(starts.tolist(), stops.tolist()):
            top, bottom = int(upper[start]), int(lower[start])
            style = _PAIR_STYLES[top][bottom] if has_lower else _UPPER_ONLY[top]
            segments.append(Segment("▀" * (stop - start), base + style))
        return Strip(segments).crop_extend(0, width, base)
