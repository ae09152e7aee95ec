"""Tests for the reusable widgets: PlotView (plotext 6) and MaskHeatmap (half-block density)."""

from __future__ import annotations

import numpy as np
import pytest
from rich.segment import Segment
from textual.app import App, ComposeResult

from lth_tui.components.heatmap import (
    RAMP,
    MaskHeatmap,
    block_average,
    density_index,
    input_pixel_density,
    stretch_top,
)
from lth_tui.components.plot import PlotSpec, PlotView, Series, build_plot, log_ticks

# ---- block_average / input_pixel_density (pure numpy) ------------------------------------


def _loop_block_average(matrix: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Independent reference: output cell (i, j) averages input rows
    [floor(i*R/rows), floor((i+1)*R/rows)) and likewise for columns."""
    n_rows, n_cols = matrix.shape
    out = np.zeros((rows, cols))
    for i in range(rows):
        r0, r1 = i * n_rows // rows, (i + 1) * n_rows // rows
        for j in range(cols):
            c0, c1 = j * n_cols // cols, (j + 1) * n_cols // cols
            total = 0.0
            for r in range(r0, r1):
                for c in range(c0, c1):
                    total += float(matrix[r, c])
            out[i, j] = total / ((r1 - r0) * (c1 - c0))
    return out


@pytest.mark.parametrize(
    ("shape", "target"),
    [((12, 20), (3, 5)), ((12, 20), (5, 7)), ((30, 78), (7, 13)), ((9, 9), (9, 9)), ((5, 11), (1, 1))],
)
def test_block_average_matches_loop(shape: tuple[int, int], target: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape) + sum(target))
    matrix = rng.random(shape)
    np.testing.assert_allclose(block_average(matrix, *target), _loop_block_average(matrix, *target))


def test_block_average_counts_every_element() -> None:
    rng = np.random.default_rng(1)
    mask = rng.random((300, 784)) < 0.2
    out = block_average(mask, 37, 91)  # nothing divides
    rows = np.diff(np.append((np.arange(37) * 300) // 37, 300))
    cols = np.diff(np.append((np.arange(91) * 784) // 91, 784))
    assert (out * np.outer(rows, cols)).sum() == pytest.approx(mask.sum())


def test_block_average_of_checkerboard_is_half_not_aliased() -> None:
    checker = (np.indices((300, 784)).sum(axis=0) % 2).astype(bool)
    even_blocks = block_average(checker, 30, 98)  # 10×8 blocks
    assert np.all(even_blocks == 0.5)
    uneven = block_average(checker, 20, 47)  # 15×16.7 blocks: odd areas, within one weight of half
    assert np.all(np.abs(uneven - 0.5) < 0.01)
    nearest = checker[::10, ::8]  # what nearest-neighbour would show: all one colour
    assert set(np.unique(nearest)) <= {0, 1}
    # Both reads of 0.5 land on the ramp's middle colour.
    assert set(np.unique(density_index(uneven))) == {len(RAMP) // 2}


def test_block_average_rejects_upsampling_and_bad_shapes() -> None:
    with pytest.raises(ValueError):
        block_average(np.ones((4, 4)), 5, 2)
    with pytest.raises(ValueError):
        block_average(np.ones((4, 4, 4)), 2, 2)


def test_density_index_ends_are_exclusive() -> None:
    index = density_index(np.array([0.0, 1e-6, 0.5, 0.999, 1.0]))
    assert index.tolist() == [0, 1, len(RAMP) // 2, len(RAMP) - 2, len(RAMP) - 1]


def test_stretched_scale_is_a_round_top_about_four_times_the_density() -> None:
    assert [stretch_top(d) for d in (0.002, 0.02, 0.03, 0.1, 0.2, 0.8)] == [0.01, 0.1, 0.2, 0.5, 1.0, 1.0]
    index = density_index(np.array([0.0, 0.004, 0.05, 0.099, 0.1, 0.7]), top=0.1)
    # linear over [0, 10%): 5% is the middle colour; 10% and above the brightest
    assert index.tolist() == [0, 1, len(RAMP) // 2, len(RAMP) - 2, len(RAMP) - 1, len(RAMP) - 1]


def test_input_pixel_density_hand_made_mask() -> None:
    # 3 hidden units over a 2×2 image: pixel 0 kept by all, pixel 1 by one, 2 by none, 3 by two.
    mask = np.array(
        [
            [1, 1, 0, 1],
            [1, 0, 0, 1],
            [1, 0, 0, 0],
        ],
        dtype=bool,
    )
    density = input_pixel_density(mask, (2, 2))
    np.testing.assert_allclose(density, [[1.0, 1 / 3], [0.0, 2 / 3]])


def test_input_pixel_density_refuses_conv_and_wrong_size() -> None:
    with pytest.raises(ValueError):
        input_pixel_density(np.ones((8, 1, 3, 3)), (28, 28))
    with pytest.raises(ValueError):
        input_pixel_density(np.ones((8, 100)), (28, 28))


# ---- PlotView ---------------------------------------------------------------------------

LEVELS = (100.0, 51.2, 26.2, 13.4, 6.9, 3.5, 1.8, 0.9)
ACC = (0.98, 0.981, 0.982, 0.98, 0.975, 0.96, 0.93, 0.85)
STD = (0.002, 0.003, 0.002, 0.004, 0.005, 0.01, 0.02, 0.03)


def sparsity_spec(**changes: object) -> PlotSpec:
    spec = PlotSpec(
        title="Sparsity",
        xlabel="weights remaining %",
        ylabel="accuracy",
        series=(
            Series("IMP", LEVELS, ACC, STD),
            Series("reinit", LEVELS, tuple(a - 0.05 for a in ACC)),
        ),
        xlog=True,
        xreverse=True,
    )
    return PlotSpec(**{**spec.__dict__, **changes})  # type: ignore[arg-type]


class PlotApp(App[None]):
    CSS = "PlotView { width: 80; height: 20; } #tiny { width: 30; height: 8; }"

    def compose(self) -> ComposeResult:
        yield PlotView(id="plot")
        yield PlotView(id="tiny")


def test_log_ticks_read_real_values_and_thin_out() -> None:
    _, labels = log_ticks(np.log10(0.9), 2.0, canvas_width=90)
    assert labels[0] == "1" and labels[-1] == "100" and "10" in labels and "50" in labels
    _, narrow = log_ticks(np.log10(0.9), 2.0, canvas_width=12)
    assert len(narrow) < len(labels)


async def test_plot_view_renders_log_axis() -> None:
    app = PlotApp()
    async with app.run_test(size=(100, 40)) as pilot:
        view = app.query_one("#plot", PlotView)
        view.set_plot(sparsity_spec())
        await pilot.pause(0.15)
        text = view.render().plain
        lines = text.split("\n")
        assert len(lines) == 20 and all(len(line) <= 80 for line in lines)
        assert "Sparsity" in lines[0]
        assert "weights remaining %" in text and "accuracy" in text
        # ticks at the rounds' own weights remaining; xreverse: 100% on the left, the sparsest on the right
        tick_row = next(line for line in lines if "100" in line and "51.2" in line)
        assert tick_row.index("100") < tick_row.index("13.4") < tick_row.index("0.9")
        assert "━┅ IMP" in lines[-1] and "━━ reinit" in lines[-1]  # band and plain legend swatches
        assert "Sparsity" in app.export_screenshot()


def test_build_plot_is_stable_over_repeated_log_redraws() -> None:
    spec = sparsity_spec()
    first = build_plot(spec, 80, 20)
    for i in range(20):
        # Interleave a linear plot: plotext state left over from it must not leak either.
        build_plot(sparsity_spec(xlog=False, xreverse=False, title=f"lin {i}"), 80, 20)
        again = build_plot(spec, 80, 20)
        assert again.plain == first.plain
        assert again.spans == first.spans


def test_build_plot_hex_colour_reaches_line_and_legend() -> None:
    spec = sparsity_spec(series=(Series("main", LEVELS, ACC, color="#e69f00"),))
    text = build_plot(spec, 60, 16)
    colours = {
        tuple(span.style.color.get_truecolor())
        for span in text.spans
        if not isinstance(span.style, str) and span.style.color is not None
    }
    assert (230, 159, 0) in colours
    legend_line = text.plain.split("\n")[-1]
    assert legend_line.startswith("━━ main")


async def test_plot_view_redraws_20_times_identically() -> None:
    app = PlotApp()
    async with app.run_test(size=(100, 40)) as pilot:
        view = app.query_one("#plot", PlotView)
        view.REDRAW_INTERVAL = 0.0
        log_spec, linear_spec = sparsity_spec(), sparsity_spec(xlog=False, title="linear")
        view.set_plot(log_spec)
        await pilot.pause()
        reference = view.render().plain
        for _ in range(20):  # set_plot commits at once with no interval; render rebuilds
            view.set_plot(linear_spec)
            assert "linear" in view.render().plain
            view.set_plot(log_spec)
            assert view.render().plain == reference
        await pilot.pause()
        assert view.render().plain == reference


async def test_plot_view_throttles_and_shows_latest() -> None:
    app = PlotApp()
    async with app.run_test(size=(100, 40)) as pilot:
        view = app.query_one("#plot", PlotView)
        await pilot.pause()
        builds = view.builds
        for i in range(50):
            view.set_plot(sparsity_spec(title=f"level {i}"))
        await pilot.pause(0.25)
        assert "level 49" in view.render().plain
        assert view.builds - builds <= 3
        view.set_plot(sparsity_spec(title="level 49"))  # unchanged: no rebuild
        await pilot.pause(0.15)
        view.render()
        assert view.spec.title == "level 49"


async def test_plot_view_empty_and_tiny() -> None:
    app = PlotApp()
    async with app.run_test(size=(100, 40)) as pilot:
        view = app.query_one("#plot", PlotView)
        view.set_plot(PlotSpec(title="Sparsity", empty_message="waiting for level 0"))
        await pilot.pause(0.15)
        lines = view.render().plain.split("\n")
        middle = lines[len(lines) // 2]
        assert middle.strip() == "waiting for level 0"
        assert abs(middle.index("waiting") - (80 - len(middle.strip())) // 2) <= 1

        tiny = app.query_one("#tiny", PlotView)
        tiny.set_plot(sparsity_spec())
        await pilot.pause(0.15)
        assert "Sparsity" in tiny.render().plain
    for width, height in [(30, 8), (16, 4), (10, 3), (1, 1), (0, 0)]:
        build_plot(sparsity_spec(), width, height)  # no exception at any size
        build_plot(sparsity_spec(series=(Series("one", (5.0,), (0.5,)),)), width, height)


# ---- MaskHeatmap ------------------------------------------------------------------------


class HeatmapApp(App[None]):
    CSS = "MaskHeatmap { width: 64; height: 12; } #small { width: 20; height: 6; }"

    def compose(self) -> ComposeResult:
        yield MaskHeatmap(id="map")
        yield MaskHeatmap(id="small")

    def on_mount(self) -> None:
        self.query_one("#map").focus()


def _cells(segments: list[Segment]) -> list[tuple[str, tuple[int, ...], tuple[int, ...] | None]]:
    """(glyph, fg rgb, bg rgb) per cell of a rendered strip."""
    cells = []
    for segment in segments:
        style = segment.style
        fg = tuple(style.color.get_truecolor()) if style and style.color else ()
        bg = tuple(style.bgcolor.get_truecolor()) if style and style.bgcolor else None
        cells.extend((char, fg, bg) for char in segment.text)
    return cells


async def test_heatmap_zoom_and_pan_clamp() -> None:
    rng = np.random.default_rng(0)
    mask = rng.random((300, 784)) < 0.2
    app = HeatmapApp()
    async with app.run_test(size=(80, 24)) as pilot:
        heatmap = app.query_one("#map", MaskHeatmap)
        heatmap.set_matrix(mask, "fc1")
        await pilot.pause()
        assert heatmap.zoom == 0 and heatmap.viewport == (0, 0, 300, 784)
        # Area is 20 half-rows × 64 columns: 784/64 needs 4 doublings to reach 1:1.
        assert heatmap.max_zoom == 4
        for _ in range(6):
            await pilot.press("plus")
        assert heatmap.zoom == 4 and heatmap.scale == (1.0, 1.0)
        r0, c0, r1, c1 = heatmap.viewport
        assert (r1 - r0, c1 - c0) == (20, 64)
        start = heatmap.viewport  # zooming in keeps the centre in view
        assert start[0] > 0 and start[1] > 0
        await pilot.press("left", "k")
        moved = heatmap.viewport
        assert moved[0] < start[0] and moved[1] < start[1]
        await pilot.press("l", "down")
        assert heatmap.viewport == start
        heatmap.pan(-10_000, -10_000)
        assert heatmap.viewport[:2] == (0, 0)
        heatmap.pan(10_000, 10_000)
        assert heatmap.viewport[2:] == (300, 784)
        await pilot.press("minus")
        assert heatmap.zoom == 3
        heatmap.pan(-5, 0)  # 5 cells of 784/512 weights each at zoom 3
        assert 784 - 10 <= heatmap.viewport[3] <= 784 - 5
        await pilot.press("equals_sign")
        assert heatmap.zoom == 4
        await pilot.press("0")
        assert heatmap.zoom == 0 and heatmap.viewport == (0, 0, 300, 784)
        await pilot.press("minus")
        assert heatmap.zoom == 0
        title = "".join(segment.text for segment in heatmap.render_line(0))
        assert "fc1" in title and f"{100 * mask.mean():.1f}% kept" in title
        legend = "".join(segment.text for segment in heatmap.render_line(11))
        assert "0%" in legend and "50%" in legend and "100%" in legend and "weights" in legend


async def test_heatmap_colours_upper_and_lower_halves() -> None:
    app = HeatmapApp()
    async with app.run_test(size=(80, 24)) as pilot:
        heatmap = app.query_one("#map", MaskHeatmap)
        # 40 rows into 20 half-rows: two weights per cell; top half kept, bottom half pruned.
        matrix = np.zeros((40, 128), dtype=bool)
        matrix[:20] = True
        heatmap.set_matrix(matrix, "split")
        await pilot.pause()
        top = _cells(list(heatmap.render_line(1)))
        bottom = _cells(list(heatmap.render_line(10)))
        assert len(top) == 64 and {c[0] for c in top} == {"▀"}
        assert {(c[1], c[2]) for c in top} == {(RAMP[-1], RAMP[-1])}
        assert {(c[1], c[2]) for c in bottom} == {(RAMP[0], RAMP[0])}

        # One weight per half-cell: rows alternate kept/pruned, so fg = upper, bg = lower.
        stripes = np.zeros((20, 64))
        stripes[0::2] = 1.0
        heatmap.set_matrix(stripes)
        await pilot.pause()
        assert {(c[1], c[2]) for c in _cells(list(heatmap.render_line(3)))} == {(RAMP[-1], RAMP[0])}

        # A checkerboard at fit zoom is 50% everywhere, not aliased stripes.
        checker = np.indices((300, 784)).sum(axis=0) % 2
        heatmap.set_matrix(checker.astype(bool))
        await pilot.pause()
        middle = RAMP[len(RAMP) // 2]
        for y in range(1, 11):
            assert {(c[1], c[2]) for c in _cells(list(heatmap.render_line(y)))} == {(middle, middle)}


async def test_heatmap_empty_and_small() -> None:
    app = HeatmapApp()
    async with app.run_test(size=(80, 24)) as pilot:
        heatmap = app.query_one("#map", MaskHeatmap)
        await pilot.pause()
        text = "\n".join("".join(s.text for s in heatmap.render_line(y)) for y in range(12))
        assert "no mask to show" in text

        small = app.query_one("#small", MaskHeatmap)
        small.set_matrix(np.random.default_rng(2).random((512, 4608)) < 0.1, "conv3")
        small.focus()
        await pilot.pause()
        for key in ["plus", "plus", "down", "right", "plus"]:
            await pilot.press(key)
        for y in range(6):
            assert small.render_line(y).cell_length == 20

        pixels = input_pixel_density(np.ones((10, 784)), (28, 28))
        heatmap.set_matrix(pixels, "input pixels")
        await pilot.pause()
        # 28 rows squeeze into 20 half-rows at fit; one step in is 1:1.
        assert heatmap.max_zoom == 1 and heatmap.scale == (1.4, 1.0)
        heatmap.zoom_in()
        assert heatmap.scale == (1.0, 1.0)
        with pytest.raises(ValueError):
            heatmap.set_matrix(np.ones((2, 3, 4)))



async def test_heatmap_stretch_key_shows_a_sparse_layer() -> None:
    """At 2% kept every block of a random mask is ~2%: one dark colour on the 0–100% scale.
    Stretched (s) to 0–10%, the same blocks spread up the ramp."""
    rng = np.random.default_rng(1)
    mask = rng.random((200, 512)) < 0.02
    app = HeatmapApp()
    async with app.run_test(size=(80, 24)) as pilot:
        heatmap = app.query_one("#map", MaskHeatmap)
        heatmap.set_matrix(mask, "fc1")
        await pilot.pause()
        linear = {c[1] for c in _cells(list(heatmap.render_line(2)))}
        assert linear <= set(RAMP[:3])  # the darkest three colours only
        await pilot.press("s")
        assert heatmap.stretch and heatmap.scale_top == stretch_top(float(mask.mean()))
        stretched = {c[1] for c in _cells(list(heatmap.render_line(2)))}
        assert len(stretched) >= 5 and stretched & set(RAMP[5:-1])  # spread up the ramp
        legend = "".join(segment.text for segment in heatmap.render_line(11))
        assert f"{100 * heatmap.scale_top:g}%+" in legend and "100%" not in legend
        await pilot.press("s")
        assert not heatmap.stretch and {c[1] for c in _cells(list(heatmap.render_line(2)))} == linear


def test_plot_with_one_x_value_has_one_tick() -> None:
    spec = PlotSpec(title="barrier % vs rewind k", series=(Series("barrier", (0.0,), (0.14,)),))
    text = build_plot(spec, 50, 12).plain
    axis = [line for line in text.splitlines() if "└" in line]
    assert axis and "┬" in axis[0]
    ticks = text.splitlines()[text.splitlines().index(axis[0]) + 1]
    assert ticks.split() == ["0"]
