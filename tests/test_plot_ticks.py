"""Axes a researcher can read: ticks at the rounds' weights remaining, never past 100%, round
numbers of iterations, the live point labelled; and the PNG export's ticks, title and legends."""

from __future__ import annotations

import math
from pathlib import Path

from lth_tui.components.plot import PlotSpec, Series, build_plot, data_log_ticks, nice_ticks

ROUNDS = tuple(100 * 0.8**r for r in range(15))


def _tick_row(text: str) -> str:
    lines = text.plain.split("\n")
    frame = next(i for i, line in enumerate(lines) if "└" in line)
    return lines[frame + 1]


def test_one_point_never_labels_past_100_percent() -> None:
    spec = PlotSpec(series=(Series("a", (100.0,), (91.0,)),), xlog=True, xreverse=True, xmax=100.0)
    row = _tick_row(build_plot(spec, 60, 12))
    assert row.split() == ["100"]


def test_log_ticks_are_the_rounds_weights_remaining() -> None:
    spec = PlotSpec(series=(Series("a", ROUNDS, tuple(range(15))),), xlog=True, xreverse=True, xmax=100.0)
    labels = _tick_row(build_plot(spec, 100, 16)).split()
    assert labels[0] == "100" and labels[-1] == "4.4"  # the first and the sparsest round
    assert {"80", "64", "51.2"} <= set(labels)
    assert all(float(label) <= 100 for label in labels)
    # narrow: fewer labels, still the ends, never two touching
    positions, narrow = data_log_ticks([math.log10(x) for x in ROUNDS], math.log10(ROUNDS[-1]), 2.0, 30)
    assert narrow[0] == "100" and narrow[-1] == "4.4" and 2 <= len(narrow) < len(labels)


def test_iteration_ticks_are_round_numbers() -> None:
    positions, labels = nice_ticks(0.0, 250.0, 60)
    assert labels[:3] == ["0", "25", "50"] and labels[-1] == "250"
    spec = PlotSpec(series=(Series("loss", tuple(float(i) for i in range(0, 251, 10)), tuple(range(26))),))
    row = _tick_row(build_plot(spec, 60, 12)).split()
    assert "83.3" not in row and all(float(label) % 25 == 0 for label in row)


def test_live_point_is_a_labelled_marker() -> None:
    spec = PlotSpec(series=(Series("41d024 large_final/rewind/zero (n=1)", ROUNDS[:3], (97.0, 97.2, 96.8)),
                            Series("round 3 so far", (ROUNDS[3],), (95.0,), marker="●")), xlog=True, xreverse=True)
    text = build_plot(spec, 80, 16).plain
    assert "● round 3 so far" in text.split("\n")[-1]
    assert text.count("●") >= 2  # the point and its legend swatch


def test_png_names_the_runs_and_ticks_each_round(tmp_path: Path, monkeypatch) -> None:
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lth_tui.export import to_png

    runs = []
    for name, mask0 in (("20261201-072208-digits-quick-41d024", "zero"), ("20261201-073012-digits-quick-9fe001",
                                                                           "freeze_init")):
        run = tmp_path / name
        run.mkdir()
        curve = [{"round": r, "weights_remaining": w / 100, "test_accuracy_mean": 0.9, "test_accuracy_std": 0.0,
                  "early_stop_iteration_mean": 100, "early_stop_iteration_std": 0.0, "n": 1}
                 for r, w in enumerate(ROUNDS[:5])]
        (run / "summary.json").write_text(json.dumps({"run_id": name, "trials": [], "curve": curve,
                                                      "config": {"prune": {"mask0": mask0}}}))
        runs.append(run)
    seen = {}
    real_savefig = matplotlib.figure.Figure.savefig

    def capture(fig, path, **kwargs):
        seen["title"] = fig._suptitle.get_text()
        seen["legends"] = [ax.get_legend() is not None for ax in fig.axes]
        seen["ticks"] = [t.get_text() for t in fig.axes[0].get_xticklabels()]
        seen["xlim"] = fig.axes[0].get_xlim()
        return real_savefig(fig, path, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", capture)
    to_png(runs, tmp_path / "both.png")
    plt.close("all")
    assert "41d024 mask0=zero" in seen["title"] and "9fe001 mask0=freeze_init" in seen["title"]
    assert seen["legends"] == [True, True]
    assert seen["ticks"][:3] == ["100", "80", "64"] and len(seen["ticks"]) == 5
    assert seen["xlim"][0] > seen["xlim"][1]  # 100% on the left
