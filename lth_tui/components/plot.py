"""Line plots drawn with plotext 6 into our own Textual widget.

textual-plotext does not support plotext 6, and plotext's own log axis mutates its state on
every build (tick positions are re-logged, explicit ticks skip the log of the limits), so a
log x axis is done here: x is plotted as log10(x) on a linear axis with explicit ticks that
read the real values. The legend is our own line under the plot, because plotext's boxed
legend sits on top of the data and grows two rows per series.
"""

from __future__ import annotations

import math
import textwrap
import threading
from dataclasses import dataclass
from time import monotonic
from typing import Any

import plotext as plt
from rich.style import Style
from rich.text import Text
from textual.timer import Timer
from textual.widget import Widget

__all__ = ["PlotSpec", "PlotView", "Series", "build_plot"]


@dataclass(frozen=True)
class Series:
    """One curve; `yerr` (same length as y) is drawn as a ±yerr band around the line."""

    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    yerr: tuple[float, ...] | None = None
    color: str | None = None  # plotext colour name ("red", "blue+", "orange") or "#rrggbb"
    marker: str | None = None  # points only, drawn with this character (a live point: "●")


@dataclass(frozen=True)
class PlotSpec:
    """Everything a PlotView shows; immutable so that "did it change" is a plain ==."""

    title: str = ""
    xlabel: str = ""
    ylabel: str = ""
    series: tuple[Series, ...] = ()
    xlog: bool = False  # log10 x axis (weights remaining %, 100 → 0.1)
    xreverse: bool = False  # sparsity curves read right-to-left: 100% on the left
    ylim: tuple[float, float] | None = None
    empty_message: str = "no data yet"
    xmax: float | None = None  # the axis never extends past it (100 for % weights remaining)


# Okabe-Ito colours without black and the dark blue: distinct for colour-blind readers and
# legible on dark backgrounds.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (86, 180, 233),
    (230, 159, 0),
    (0, 158, 115),
    (204, 121, 167),
    (240, 228, 66),
    (213, 94, 0),
    (170, 170, 170),
)

# Below this plotext has no room for a canvas; show a one-line summary instead.
MIN_PLOT_WIDTH = 16
MIN_PLOT_HEIGHT = 4

_LOCK = threading.Lock()
_FIGURE = None  # a private plotext figure, so nothing else using plotext shares our state


def _figure() -> Any:
    """Our own plotext terminal and master figure, not limited to the real terminal size."""
    global _FIGURE
    if _FIGURE is None:
        terminal = type(plt.terminal)()
        terminal.limit(False, False)
        _FIGURE = terminal._master
    return _FIGURE


def _color(series: Series, index: int) -> str | tuple[int, int, int]:
    color = series.color
    if color is None:
        return PALETTE[index % len(PALETTE)]
    if color.startswith("#") and len(color) == 7:
        return tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
    return color


def _clean(series: Series, xlog: bool) -> tuple[list[float], list[float], list[float] | None]:
    """Finite points only (and x > 0 on a log axis), x already transformed for the log axis."""
    xs: list[float] = []
    ys: list[float] = []
    errs: list[float] | None = [] if series.yerr is not None else None
    yerr = series.yerr or ()
    for i, (x, y) in enumerate(zip(series.x, series.y)):
        x, y = float(x), float(y)
        if not (math.isfinite(x) and math.isfinite(y)) or (xlog and x <= 0):
            continue
        xs.append(math.log10(x) if xlog else x)
        ys.append(y)
        if errs is not None:
            e = float(yerr[i]) if i < len(yerr) else 0.0
            errs.append(abs(e) if math.isfinite(e) else 0.0)
    return xs, ys, errs


def _format_tick(value: float) -> str:
    text = f"{value:.3g}"
    return text[:-2] if text.endswith(".0") else text


def log_ticks(lo: float, hi: float, canvas_width: int) -> tuple[list[float], list[str]]:
    """Tick positions (in log10 units) and labels for a log axis spanning 10**lo .. 10**hi.

    Picks the densest of 1-2-5, 1-3, decades and every other decade whose labels do not
    collide at this canvas width.
    """
    span = max(hi - lo, 1e-9)
    candidates = ((1, 2, 5), (1, 3), (1,))
    choices: list[list[float]] = []
    for mantissas in candidates:
        choices.append(
            [
                math.log10(m) + k
                for k in range(math.floor(lo) - 1, math.ceil(hi) + 1)
                for m in mantissas
                if lo - 1e-9 <= math.log10(m) + k <= hi + 1e-9
            ]
        )
    decades = choices[-1]
    choices.append(decades[::2] if len(decades) > 2 else decades)
    for positions in choices:
        labels = [_format_tick(10**p) for p in positions]
        cells = [(p - lo) / span * canvas_width for p in positions]
        fits = all(
            cells[i + 1] - cells[i] >= max(len(labels[i]), len(labels[i + 1])) + 1
            for i in range(len(cells) - 1)
        )
        if fits and len(positions) >= 2:
            return positions, labels
    # Less than a decade and too narrow for 1-2-5: the two ends are always readable.
    return [lo, hi], [_format_tick(10**lo), _format_tick(10**hi)]


def data_log_ticks(xs: list[float], lo: float, hi: float, canvas_width: int) -> tuple[list[float], list[str]]:
    """Ticks at the data's own x values (log10 units): the rounds' weights remaining.

    From the first round (100%) on, a value is labelled when its label clears the previous
    one; the last (sparsest) round is always labelled, displacing a neighbour that collides."""
    span = max(hi - lo, 1e-9)
    kept: list[tuple[float, str, float]] = []

    def clears(a: tuple[float, str, float], b: tuple[float, str, float]) -> bool:
        return abs(b[2] - a[2]) >= (len(a[1]) + len(b[1])) / 2 + 1

    values = sorted(set(round(x, 9) for x in xs), reverse=True)
    points = [(x, _format_tick(10**x), (x - lo) / span * canvas_width) for x in values]
    for point in points:
        if not kept or clears(kept[-1], point):
            kept.append(point)
    if points and kept[-1] is not points[-1]:
        while kept and not clears(kept[-1], points[-1]):
            kept.pop()
        kept.append(points[-1])
    return [p[0] for p in kept], [p[1] for p in kept]


def nice_ticks(lo: float, hi: float, canvas_width: int) -> tuple[list[float], list[str]] | None:
    """Linear ticks at round numbers (1, 2 or 5 × 10^k apart) whose labels fit the width."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi - lo <= 0:
        return None
    for count in (10, 8, 6, 5, 4, 3, 2):
        raw = (hi - lo) / count
        base = 10 ** math.floor(math.log10(raw))
        step = next(m * base for m in (1, 2, 2.5, 5, 10) if m * base >= raw)
        first = math.ceil(lo / step - 1e-9) * step
        positions = [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]
        labels = [_format_tick(round(p, 12)) if abs(p) >= 1e-12 else "0" for p in positions]
        if len(positions) < 2:
            continue
        cell = canvas_width / (hi - lo) * step
        if cell >= max(len(label) for label in labels) + 2:
            return positions, labels
    return None


def _legend(spec: PlotSpec, width: int, max_lines: int) -> Text | None:
    """Coloured "━━ label" entries, wrapped to the width; None when nothing is labelled."""
    entries: list[Text] = []
    for index, series in enumerate(spec.series):
        if not series.label:
            continue
        swatch = series.marker or ("━━" if series.yerr is None else "━┅")  # ┅ hints at the ±err band
        pixel = plt.pixel(foreground=_color(series, index))
        entry = Text.from_ansi(plt.colorize(swatch).fill(pixel).string())
        entry.append(" " + series.label)
        entries.append(entry)
    if not entries or max_lines <= 0:
        return None
    lines: list[Text] = [Text()]
    for entry in entries:
        line = lines[-1]
        gap = 3 if line.cell_len else 0
        if line.cell_len and line.cell_len + gap + entry.cell_len > width:
            lines.append(Text())
            line, gap = lines[-1], 0
        line.append(" " * gap)
        line.append_text(entry)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1].append(" …")
    for line in lines:
        line.truncate(width, overflow="ellipsis")
    return Text("\n").join(lines)


def _message(spec: PlotSpec, width: int, height: int) -> Text:
    """Title on top, the empty message centred in the rest."""
    lines = [Text(" " * width) for _ in range(max(height, 1))]
    if spec.title and height >= 3:
        lines[0] = Text(spec.title.center(width)[:width], style=Style(bold=True))
    # a narrow plot (the LMC tab's side plots at 80 columns) wraps the message instead of cutting it
    wrapped = textwrap.wrap(spec.empty_message, max(width, 1)) or [""]
    first = max(1 if spec.title and height >= 3 else 0, len(lines) // 2 - len(wrapped) // 2)
    for i, line in enumerate(wrapped[: max(len(lines) - first, 1)]):
        if first + i < len(lines):
            lines[first + i] = Text(line.center(width)[:width], style=Style(dim=True))
    return Text("\n", no_wrap=True, overflow="crop").join(lines)


def _has_data(spec: PlotSpec) -> bool:
    return any(_clean(series, spec.xlog)[0] for series in spec.series)


def build_plot(spec: PlotSpec, width: int, height: int) -> Text:
    """Render a spec into a Text of `width`×`height` cells (pure apart from plotext's lock).

    Must run on the thread that owns the widgets; it is cheap (~10 ms at 100×25).
    """
    width, height = max(width, 0), max(height, 0)
    if width == 0 or height == 0:
        return Text()
    if not _has_data(spec):
        return _message(spec, width, height)
    if width < MIN_PLOT_WIDTH or height < MIN_PLOT_HEIGHT:
        summary = f"{spec.title or 'plot'}: too small"
        return Text(summary[:width], no_wrap=True, overflow="crop")

    legend = _legend(spec, width, max_lines=1 if height < 14 else 3)
    legend_lines = 0 if legend is None else len(legend.split())
    if height - legend_lines < MIN_PLOT_HEIGHT + 2:
        legend, legend_lines = None, 0
    plot_height = height - legend_lines

    with _LOCK:
        fig = _figure()
        fig.clear()
        fig.plot_size(width, plot_height)
        fig.theme("simple")  # frame in the widget's own colours, no canvas background
        xs_all: list[float] = []
        for index, series in enumerate(spec.series):
            xs, ys, errs = _clean(series, spec.xlog)
            if not xs:
                continue
            xs_all.extend(xs)
            pixel = plt.pixel(foreground=_color(series, index))
            if series.marker:
                fig.draw(fig.signal(xs, ys, marker=plt.marker(series.marker, pixel=pixel)))
                continue
            if errs is not None and any(errs):
                # Thin braille edges first, so the bold half-block mean line stays on top.
                for sign in (1, -1):
                    band = [y + sign * e for y, e in zip(ys, errs)]
                    edge = fig.signal(xs, band, marker=plt.marker("braille", pixel=pixel))
                    fig.draw(edge.lines())
            line = fig.signal(xs, ys, marker=plt.marker("hd", pixel=pixel))
            fig.draw(line.lines())

        xruler = fig.ruler("x")
        if spec.xreverse:
            xruler.direction(-1)
        top = None if spec.xmax is None else (math.log10(spec.xmax) if spec.xlog else spec.xmax)
        if spec.xlog:
            lo, hi = min(xs_all), max(xs_all)
            if hi - lo < 1e-9:
                lo, hi = lo - 0.5, hi + 0.5
            if top is not None and hi > top:
                hi = max(top, max(xs_all))
            xruler.lim(lo, hi)
            canvas = max(width - 8, 1)
            positions, labels = data_log_ticks(xs_all, lo, hi, canvas)
            if len(positions) < 2 and len(set(xs_all)) > 1:
                positions, labels = log_ticks(lo, hi, canvas_width=canvas)
            xruler.ticks(positions, labels)
        elif xs_all and max(xs_all) - min(xs_all) < 1e-9:
            # One x value (an LMC barrier at a single rewind k): one tick at it, not a made-up
            # ±1 range with fractional ticks on either side.
            x = xs_all[0]
            xruler.lim(x - 1, x + 1)
            xruler.ticks([x], [f"{x:g}"])
        elif xs_all:
            # round numbers of iterations (500 1000 1500), not plotext's thirds (83.3 166.7 250)
            ticks = nice_ticks(min(xs_all), max(xs_all), canvas_width=max(width - 8, 1))
            if ticks is not None:
                xruler.ticks(*ticks)
        if spec.ylim is not None:
            fig.ruler("y").lim(*spec.ylim)
        # plotext puts both axis labels on the bottom row; when they would run into each other
        # the y label moves up into the title instead.
        labels_fit = len(spec.xlabel) + len(spec.ylabel) + 12 <= width
        title = spec.title
        if spec.ylabel and not labels_fit:
            title = f"{title} — {spec.ylabel}" if title else spec.ylabel
        if title:
            fig.title(title)
        if plot_height >= 10:  # the label row costs a canvas row on small plots
            if spec.xlabel:
                fig.label(spec.xlabel, "x")
            if spec.ylabel and labels_fit:
                fig.label(spec.ylabel, "y")
        ansi = fig.build().string()

    text = Text.from_ansi(ansi.rstrip("\n"), no_wrap=True, overflow="crop", end="")
    if legend is not None:
        text.append("\n")
        text.append_text(legend)
    text.no_wrap, text.overflow = True, "crop"
    return text


class PlotView(Widget):
    """Renders a PlotSpec with plotext at the widget's current size.

    `set_plot` is cheap to call on every engine message: it only records the spec, and the
    widget repaints at most 10× a second, and only when the spec or the size changed. Call it
    from the app's thread (a message handler), never from a reader thread.
    """

    DEFAULT_CSS = """
    PlotView {
        width: 1fr;
        height: 1fr;
        min-height: 8;
    }
    """

    REDRAW_INTERVAL = 0.1

    def __init__(
        self,
        spec: PlotSpec | None = None,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self._shown = spec or PlotSpec()
        self._pending = self._shown
        self._timer: Timer | None = None
        self._last_commit = -math.inf
        self._cache_key: tuple[PlotSpec, int, int] | None = None
        self._cache = Text()
        self.builds = 0  # how many times plotext ran; lets tests check the throttle

    @property
    def spec(self) -> PlotSpec:
        """The latest spec handed to set_plot (possibly not painted yet)."""
        return self._pending

    def set_plot(self, spec: PlotSpec) -> None:
        """Show `spec`; repaints within REDRAW_INTERVAL, coalescing calls in between."""
        self._pending = spec
        if not self.is_mounted:
            self._shown = spec
            return
        if self._timer is not None or spec == self._shown:
            return
        delay = self._last_commit + self.REDRAW_INTERVAL - monotonic()
        if delay <= 0:
            self._commit()
        else:
            self._timer = self.set_timer(delay, self._commit)

    def _commit(self) -> None:
        self._timer = None
        self._last_commit = monotonic()
        if self._pending != self._shown:
            self._shown = self._pending
            self.refresh()

    def render(self) -> Text:
        width, height = self.content_size
        key = (self._shown, width, height)
        if key != self._cache_key:
            self.builds += 1
            try:
                self._cache = build_plot(self._shown, width, height)
            except Exception as error:  # a plotting bug must not take the app down
                self.log.error("plot failed", error)
                self._cache = Text(f"plot failed: {error}", style="red", no_wrap=True)
            self._cache_key = key
        return self._cache
