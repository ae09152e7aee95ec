"""Stability studies as one sweep: train.lr_scaling, the group's instability against the swept
batch size in the Markdown/CSV export and in the app's group view."""

from __future__ import annotations

import csv
import io
import tomllib
from pathlib import Path

import pytest
from conftest import FAST_PRESET, wait_for

from engine.config import ConfigError, from_dict, load_config, resolve_schedule
from engine.runner import execute
from engine.store import read_summary
from engine.training import lr_factor
from lth_tui.app import LthApp
from lth_tui.components.plot import PlotView
from lth_tui.export import export_group
from lth_tui.screens.group import GroupScreen
from lth_tui.stability import stability_study
from lth_tui.sweeps import add_run, create_group, expand, parse_axis

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("one_thread")
BATCHES = (30, 120)


def _config(**train):
    raw = tomllib.loads(FAST_PRESET)
    raw["train"].update(train)
    return from_dict(raw)


def test_linear_lr_scaling_multiplies_the_rate_by_batch_over_reference():
    plain = _config(batch_size=240, lr=0.01)
    scaled = _config(batch_size=240, lr=0.01, lr_scaling="linear", lr_reference_batch=60, warmup_iterations=10)
    assert plain.train.lr_scale() == 1.0 and scaled.train.lr_scale() == 4.0
    schedule = resolve_schedule(scaled, 1000)
    # warm-up multiplies the scaled rate: step 4 of 10 is at 5/10 of 0.04
    assert 0.01 * lr_factor(4, scaled.train, schedule) == pytest.approx(0.02)
    assert 0.01 * lr_factor(50, scaled.train, schedule) == pytest.approx(0.04)
    with pytest.raises(ConfigError, match="train.lr_scaling"):
        _config(lr_scaling="sqrt")
    with pytest.raises(ConfigError, match="train.lr_reference_batch"):
        _config(lr_reference_batch=0)


def test_maene_preset_holds_the_papers_recipe():
    config = load_config(ROOT / "presets" / "resnet20-cifar10-stable.toml")
    t, p, a = config.train, config.prune, config.analysis
    assert (config.model.name, config.data.name, t.optimizer, t.lr, t.momentum, t.weight_decay) == \
        ("resnet20", "cifar10", "sgd", 0.1, 0.9, 1e-5)
    assert (str(t.iterations), [str(m) for m in t.milestones], t.lr_scaling) == ("85ep", ["56ep", "71ep"], "none")
    assert 1024 <= t.batch_size <= 2048
    assert (p.rounds, p.scope, p.rate, p.rewind_iteration.count) == (25, "global",
                                                                     {"conv": 0.2, "fc": 0.2, "output": 0.2}, 0)
    assert a.lmc and a.successive and a.lmc_points == 20


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> dict[str, Path]:
    """A sweep over train.batch_size of FAST_PRESET with analysis.lmc and 2 trials."""
    runs = tmp_path_factory.mktemp("study")
    preset = runs / "fast-study.toml"
    preset.write_text(FAST_PRESET + "\n[analysis]\nlmc = true\n", encoding="utf-8")
    axes = [parse_axis("train.batch_size=" + ",".join(map(str, BATCHES)))]
    group_id, folder = create_group(runs, "fast-study", axes)
    from engine.store import create_run

    run_dirs = []
    for config, swept in expand(preset, ["trials=2"], axes):
        run_dir = create_run(config, runs, preset="fast-study", group=group_id)
        add_run(folder, run_dir, swept)
        assert execute(run_dir) == "done"
        run_dirs.append(run_dir)
    return {"runs": runs, "folder": folder, "run_dirs": run_dirs}


def test_group_export_gives_instability_against_the_swept_value(study):
    summaries = [read_summary(d) for d in study["run_dirs"]]
    text = export_group(study["folder"], "md", "-")
    section = text[text.index("## Stability study"):]
    for batch, summary in zip(BATCHES, summaries):
        line = next(line for line in section.splitlines() if line.startswith(f"| batch_size={batch} |"))
        curve = {p["round"]: p for p in summary["curve"]}
        barrier = curve[0]["lmc_barrier_mean"]
        assert f"{100 * barrier:.2f} ± {100 * curve[0]['lmc_barrier_std']:.2f}" in line
        assert f"{100 * curve[2]['test_accuracy_mean']:.2f} @ {100 * curve[2]['weights_remaining']:.2f}" in line
    rows = list(csv.DictReader(io.StringIO(export_group(study["folder"], "csv", "-"))))
    assert {(r["train.batch_size"], r["round"], r["trial"]) for r in rows} == {
        (str(b), str(r), str(t)) for b in BATCHES for r in range(3) for t in range(2)}
    for row in rows:
        run = study["run_dirs"][BATCHES.index(int(row["train.batch_size"]))]
        rec = read_summary(run)["trials"][int(row["trial"])]["rounds"][int(row["round"])]
        assert float(row["lmc_barrier"]) == pytest.approx(rec["lmc_barrier"])


async def test_group_view_plots_instability_against_batch_size_and_a_curve_per_value(study):
    app = LthApp(study["runs"])
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("f4")  # Runs: every run here belongs to the group; g opens its study
        await wait_for(pilot, lambda: app.screen.id == "runs" and app.screen.listed >= 1 and app.screen.highlighted())
        await pilot.press("g")
        await wait_for(pilot, lambda: isinstance(app.screen, GroupScreen))
        screen = app.screen
        assert screen.folder == study["folder"]
        await wait_for(pilot, lambda: screen.loads >= 1, 20)
        left = screen.query_one("#group-instability-plot", PlotView).spec
        right = screen.query_one("#group-curves-plot", PlotView).spec
        assert left.title == "instability % vs batch_size" and left.xlabel == "batch_size"
        assert [s.label for s in left.series] == ["r0", "r1", "r2"]
        summaries = [read_summary(d) for d in study["run_dirs"]]
        for s in left.series:
            r = int(s.label[1:])
            assert s.x == tuple(float(b) for b in BATCHES)
            assert s.y == pytest.approx(tuple(100 * {p["round"]: p for p in sm["curve"]}[r]["lmc_barrier_mean"]
                                              for sm in summaries))
        assert [s.label for s in right.series] == [f"batch_size={b}" for b in BATCHES]
        assert right.series[0].y == pytest.approx(tuple(100 * p["test_accuracy_mean"] for p in summaries[0]["curve"]))
        await pilot.press("escape")
        assert not isinstance(app.screen, GroupScreen)


def test_stability_rows_sort_lengths_and_numbers_by_value():
    entries = [({"swept": {"train.warmup_iterations": v}}, None) for v in ("10ep", 0, "2ep")]
    assert [row["swept"]["train.warmup_iterations"] for row in stability_study(entries)] == [0, "2ep", "10ep"]


def test_the_new_keys_keep_old_config_hashes_at_their_defaults():
    base = tomllib.loads(FAST_PRESET)
    explicit = {**base, "train": {**base["train"], "lr_scaling": "none", "lr_reference_batch": 128},
                "analysis": {"successive": False}}
    assert from_dict(explicit).config_hash() == from_dict(base).config_hash()
    assert from_dict({**base, "analysis": {"successive": True}}).config_hash() != from_dict(base).config_hash()
