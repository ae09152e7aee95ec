"""The run store's schema as code: typed records that cover what a run writes, one layout, and
checked readers for group.json, successive.json, lmc*.json, evals.json and status.json.

A damaged or hostile file makes that one file (or run) "damaged, because ...": a reader skips
it or raises StoreError naming it, the CLI exits 2 with one line, nothing crashes.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, get_type_hints

import pytest

from engine import records
from engine.layout import RunLayout
from engine.records import CurvePoint, EvalPoint, RoundRecord, Status, mean_std
from engine.schema import SchemaError, check_group, check_lmc, check_successive
from engine.store import (
    RunWriter,
    StoreError,
    iter_round_dirs,
    read_evals,
    read_events,
    read_group,
    read_lmc,
    read_status,
    read_successive,
    read_summary,
    write_json_atomic,
)
from lth_tui.backends.runfiles import read_status_file, update_status
from lth_tui.cli import main
from lth_tui.stability import successive_markdown, successive_rounds

EVENT_TYPES = {"run_start": records.RunStartEvent, "round_start": records.RoundStartEvent, "eval": records.EvalEvent,
               "round_end": records.RoundEndEvent, "lmc": records.LmcEvent, "successive": records.SuccessiveEvent,
               "warning": records.WarningEvent, "error": records.ErrorEvent, "run_end": records.RunEndEvent}


def _fields(typed: Any) -> set[str]:
    return set(get_type_hints(typed))


# -- the typed records cover what the engine writes ----------------------------------------------


@pytest.mark.parametrize("kind", ["imp", "supermask"])
def test_typed_records_name_every_field_a_run_writes(analysis_runs, kind):
    run_dir = analysis_runs[kind]
    layout = RunLayout(run_dir)
    summary = read_summary(run_dir)
    assert set(summary) <= _fields(records.Summary)
    for trial in summary["trials"]:
        assert set(trial) <= _fields(records.TrialRecord)
        for rec in trial["rounds"]:
            assert set(rec) <= _fields(RoundRecord), set(rec) - _fields(RoundRecord)
    for point in summary["curve"]:
        assert set(point) <= _fields(CurvePoint), set(point) - _fields(CurvePoint)
    for point in read_evals(layout.round_dir(0, 0)):
        assert set(point) <= _fields(EvalPoint), set(point) - _fields(EvalPoint)
    assert set(read_status(run_dir)) <= _fields(Status), set(read_status(run_dir)) - _fields(Status)
    events, _ = read_events(run_dir)
    assert {e["event"] for e in events} >= {"run_start", "round_start", "eval", "round_end", "run_end"}
    for event in events:
        assert event["event"] in records.EVENT_KINDS
        extra = set(event) - _fields(EVENT_TYPES[event["event"]])
        assert not extra, (event["event"], extra)
    for rec in read_lmc(run_dir):
        assert set(rec) <= _fields(records.LmcRecord), set(rec) - _fields(records.LmcRecord)
    if kind == "imp":
        assert read_lmc(run_dir), "the IMP fixture measures LMC"


def test_layout_is_what_the_writer_and_readers_use(analysis_runs, tmp_path):
    run_dir = analysis_runs["imp"]
    layout = RunLayout(run_dir)
    writer = RunWriter(shutil.copytree(run_dir, tmp_path / "copy"))
    try:
        assert writer.round_dir(1, 2) == RunLayout(tmp_path / "copy").round_dir(1, 2)
        assert writer.trial_dir(1) == tmp_path / "copy" / "trial-1"
    finally:
        writer.close()
    assert list(iter_round_dirs(run_dir, 0)) == list(layout.rounds_on_disk(0))
    assert [p.relative_to(run_dir).as_posix() for p in layout.lmc_files()][:1] == ["trial-0/round-0/lmc.json"]
    assert all(p.name == "mask.safetensors" for p in layout.masks_on_disk())
    # names that only look like rounds are not rounds
    copy = RunLayout(tmp_path / "copy")
    (copy.trial_dir(0) / "round-x").mkdir()
    (copy.trial_dir(0) / "round-9").write_text("a file, not a round dir")
    assert [r for r, _ in iter_round_dirs(copy.dir, 0)] == [r for r, _ in iter_round_dirs(run_dir, 0)]


# -- group.json ----------------------------------------------------------------------------------


@pytest.mark.parametrize("group, words", [
    ([], "must be an object"),
    ({"runs": "x"}, "no runs list"),
    ({"runs": [], "axes": {"train.lr": 3}}, "axes must map keys to lists"),
    ({"runs": [{"run_dir": 5}]}, "runs[0] must be"),
    ({"runs": [{"run_dir": "a", "swept": []}]}, "runs[0] must be"),
    ({"runs": [{"run_dir": "a", "label": ["x"]}]}, "runs[0].label must be a string"),
    ({"runs": [], "preset": 7}, "preset must be a string"),
])
def test_check_group_names_what_is_wrong(group, words):
    with pytest.raises(SchemaError, match=words.replace("[", r"\[").replace("]", r"\]")):
        check_group(group)


def test_a_damaged_group_json_exits_2_with_one_line(tmp_path, capsys):
    folder = tmp_path / "groups" / "g1"
    folder.mkdir(parents=True)
    write_json_atomic(folder / "group.json", {"group": "g1", "runs": [{"run_dir": 3}]})
    with pytest.raises(StoreError, match=r"group.json is damaged: runs\[0\]"):
        read_group(folder)
    assert main(["export", str(folder), "--format", "md", "-o", "-", "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "group.json is damaged" in err[0] and "Traceback" not in err[0]


def test_read_group_fills_a_missing_swept_and_keeps_the_bytes(tmp_path):
    from lth_tui.sweeps import add_run

    folder = tmp_path / "g"
    folder.mkdir()
    write_json_atomic(folder / "group.json", {"group": "g", "preset": "p", "axes": {"train.lr": [0.1]}, "runs": []})
    add_run(folder, tmp_path / "run-a", {"train.lr": 0.1})
    text = (folder / "group.json").read_text()
    assert json.loads(text)["runs"] == [{"run_dir": str(tmp_path / "run-a"), "swept": {"train.lr": 0.1}}]
    assert text == json.dumps(json.loads(text), indent=1)
    write_json_atomic(folder / "group.json", {"runs": [{"run_dir": "x"}]})
    assert read_group(folder)["runs"] == [{"run_dir": "x", "swept": {}}]


# -- successive.json -----------------------------------------------------------------------------


def _successive(trial: int = 0, round_: int = 1) -> dict[str, Any]:
    line = {"curve": [{"alpha": 0.0, "error": 0.1}, {"alpha": 1.0, "error": 0.12}], "barrier": 0.01,
            "barrier_train": 0.02, "l2": 1.5, "cosine": 0.9}
    return {"trial": trial, "round": round_, "previous_round": round_ - 1, "weights_remaining": 0.8,
            "projected": dict(line), "unprojected": dict(line, barrier=0.05),
            "distance_from_rewind": {"previous": {"l2": 1.0, "relative": 0.1}, "current": {"l2": 2.0, "relative": 0.2}},
            "angular_distance": 0.3}


@pytest.mark.parametrize("damage", [
    lambda r: r.update(distance_from_rewind=[1, 2]),
    lambda r: r["projected"]["curve"].append({"alpha": "x", "error": 0.1}),
    lambda r: r["unprojected"].update(l2=None),
    lambda r: r.update(angular_distance="0.3"),
    lambda r: r.update(round="1"),
    lambda r: r["projected"].update(cosine=[0.9]),
])
def test_a_malformed_successive_record_is_skipped_not_fatal(tmp_path, damage):
    layout = RunLayout(tmp_path)
    good, bad = _successive(0, 1), _successive(0, 2)
    damage(bad)
    with pytest.raises(SchemaError):
        check_successive(bad)
    for r, rec in ((1, good), (2, bad)):
        layout.round_dir(0, r).mkdir(parents=True)
        write_json_atomic(layout.round_dir(0, r) / "successive.json", rec)
    assert [rec["round"] for rec in read_successive(tmp_path)] == [1]
    lines = successive_markdown(tmp_path)
    assert any(line.startswith("| 1 | 80.00 | 1.00 |") for line in lines)


def test_a_symlinked_or_unparseable_successive_json_is_not_read(tmp_path):
    layout = RunLayout(tmp_path)
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(_successive(0, 1)))
    layout.round_dir(0, 1).mkdir(parents=True)
    os.symlink(outside, layout.round_dir(0, 1) / "successive.json")
    layout.round_dir(0, 2).mkdir(parents=True)
    (layout.round_dir(0, 2) / "successive.json").write_text('{"round": 2, NaN')
    assert read_successive(tmp_path) == []


def test_successive_rounds_use_the_one_mean_std():
    a, b = _successive(0, 1), _successive(1, 1)
    b["projected"]["barrier"] = 0.03
    del a["projected"]["cosine"], b["projected"]["cosine"]
    row = successive_rounds([a, b])[0]
    assert row["barrier"] == mean_std([0.01, 0.03])
    assert row["cosine"] == (None, None, 0)  # absent from every trial: shown as "–", never nan


# -- lmc*.json, evals.json, status.json ----------------------------------------------------------


@pytest.mark.parametrize("damage", [
    {"barrier": "0.1"}, {"curve": [{"alpha": 0.5, "error": "high"}]}, {"curve": {"alpha": 0}},
    {"iterations": "60"}, {"rewind_iteration": -3}, {"seconds": [1]},
])
def test_a_malformed_lmc_record_is_skipped(tmp_path, damage):
    layout = RunLayout(tmp_path)
    good = {"trial": 0, "round": 0, "barrier": 0.01, "stable": True, "threshold": 0.02, "error_a": 0.1, "error_b": 0.1,
            "curve": [{"alpha": 0.0, "error": 0.1}], "iterations": 60, "seconds": 1.0}
    check_lmc(good)
    layout.round_dir(0, 0).mkdir(parents=True)
    layout.round_dir(0, 1).mkdir(parents=True)
    write_json_atomic(layout.lmc(0, 0), good)
    write_json_atomic(layout.lmc(0, 1), {**good, "round": 1, **damage})
    assert [(rec["round"], rec["file"]) for rec in read_lmc(tmp_path)] == [(0, "trial-0/round-0/lmc.json")]


@pytest.mark.parametrize("evals, words", [
    ({"iteration": 0}, "evals must be a list"),
    ([{"test_accuracy": 0.5}], r"evals\[0\].iteration must be an integer"),
    ([{"iteration": 0, "test_loss": "nan"}], r"evals\[0\].test_loss must be a finite number"),
])
def test_a_damaged_evals_json_names_its_round(tmp_path, evals, words):
    round_dir = RunLayout(tmp_path).round_dir(0, 3)
    round_dir.mkdir(parents=True)
    write_json_atomic(round_dir / "evals.json", evals)
    with pytest.raises(StoreError, match=rf"trial-0/round-3/evals.json is damaged \({words}"):
        read_evals(round_dir)


def test_tensorboard_export_of_a_damaged_evals_json_exits_2(analysis_runs, tmp_path, capsys):
    pytest.importorskip("tensorboardX")
    run_dir = shutil.copytree(analysis_runs["imp"], tmp_path / "runs" / analysis_runs["imp"].name)
    write_json_atomic(RunLayout(run_dir).evals(0, 1), [{"iteration": "zero"}])
    code = main(["export", str(run_dir), "--format", "tensorboard", "-o", str(tmp_path / "tb")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "trial-0/round-1/evals.json is damaged" in err[0]


def test_backend_status_reads_are_checked_and_never_follow_a_link(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_json_atomic(run_dir / "status.json", {"state": "running", "pid": "abc"})
    assert read_status_file(run_dir) == {}
    write_json_atomic(run_dir / "status.json", {"state": "done", "pid": None, "extra": 1})
    assert read_status_file(run_dir)["state"] == "done"
    update_status(run_dir, node="n1")
    assert json.loads((run_dir / "status.json").read_text())["extra"] == 1  # merged, nothing lost
    outside = tmp_path / "elsewhere.json"
    outside.write_text(json.dumps({"state": "done"}))
    (run_dir / "status.json").unlink()
    os.symlink(outside, run_dir / "status.json")
    assert read_status_file(run_dir) == {}
    update_status(run_dir, state="cancelled")  # replaces the link, never writes through it
    assert json.loads(outside.read_text()) == {"state": "done"}
    assert not (run_dir / "status.json").is_symlink()


def test_a_mask_training_round_end_event_is_read_and_a_bad_one_skipped():
    from engine.schema import event_ok

    assert event_ok({"event": "round_end", "trial": 0, "round": 1, "iterations": [40, 80], "weights_remaining": 0.5})
    assert event_ok({"event": "run_start", "iterations": 120})
    assert not event_ok({"event": "round_end", "iterations": [40, "80"]})
    assert not event_ok({"event": "round_end", "iterations": [40, 80, 120]})
    assert not event_ok({"event": "run_start", "iterations": "120"})
