"""The EXPERIMENTS registry: what validation, the run store and the runner take from it."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import merged

from engine.config import ConfigError, from_dict, resolve_schedule, total_rounds
from engine.experiments import EXPERIMENTS, ImpExperiment, experiment_of
from engine.runner import RunSession, execute
from engine.store import create_run, read_summary

TINY = {"name": "tiny", "description": "test", "device": "cpu", "data": {"name": "digits", "val_size": 200},
        "model": {"name": "mlp", "hidden": [16]},
        "train": {"iterations": 20, "eval_every": 10, "batch_size": 40, "lr": 3e-3},
        "prune": {"rounds": 2, "rate": {"fc": 0.3, "output": 0.2}}}
TRAINED: list[int] = []


def test_every_kind_is_a_config_choice() -> None:
    from engine.config import choices

    assert choices()["experiment"] == tuple(EXPERIMENTS) == ("imp", "supermask", "edge-popup")


@pytest.mark.parametrize(("sections", "rounds", "iterations"), [
    ({}, 3, 20),
    ({"prune": {"rounds": 3, "strategy": "oneshot"}}, 2, 20),
    ({"prune": {"rounds": 0}}, 1, 20),
    ({"experiment": "supermask", "supermask": {"rounds": 3}}, 3, 7),
    ({"experiment": "edge-popup", "supermask": {"rounds": 4}}, 4, 5),
])
def test_rounds_and_round_length_come_from_the_kind(sections: dict, rounds: int, iterations: int) -> None:
    config = from_dict(merged(TINY, **sections))
    assert total_rounds(config) == experiment_of(config).total_rounds(config) == rounds
    assert experiment_of(config).round_iterations(config, resolve_schedule(config, 1437, "test")) == iterations


def test_analyses_a_kind_does_not_support_are_refused() -> None:
    assert EXPERIMENTS["imp"].analyses == {"lmc", "successive"} and not EXPERIMENTS["supermask"].analyses
    for key in ("lmc", "successive"):
        with pytest.raises(ConfigError, match=f"analysis.{key}"):
            from_dict(merged(TINY, experiment="edge-popup", analysis={key: True}))


def test_only_imp_batches_its_trials() -> None:
    assert [name for name, kind in EXPERIMENTS.items() if kind.parallel_trials] == ["imp"]
    assert [name for name, kind in EXPERIMENTS.items() if kind.mask_training] == ["supermask", "edge-popup"]


def probe_trial(session: RunSession, t: int) -> None:
    """A new kind's trial: IMP's rounds, counted."""
    TRAINED.append(t)
    session.trial(t)


def test_a_new_kind_is_one_registry_line(tmp_path, monkeypatch) -> None:
    """Registered, it validates, runs through its own trial function and lays out its rounds."""
    kind = ImpExperiment("probe", trial=f"{__name__}:probe_trial")
    monkeypatch.setitem(EXPERIMENTS, "probe", kind)
    TRAINED.clear()
    config = from_dict(merged(TINY, experiment="probe", trials=2))
    run_dir = create_run(config, tmp_path / "runs", preset="tiny")
    assert execute(run_dir) == "done"
    assert TRAINED == [0, 1]
    summary = read_summary(run_dir)
    assert [[r["round"] for r in trial["rounds"]] for trial in summary["trials"]] == [[0, 1, 2], [0, 1, 2]]
    assert dataclasses.replace(kind, trials_together="x:y").parallel_trials and not kind.parallel_trials
