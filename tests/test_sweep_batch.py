"""Runs of one sweep trained together (engine/sweep_batch.py) end as if each had run alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import merged
from safetensors.numpy import load_file

from engine.config import from_dict
from engine.runner import execute
from engine.store import create_run, read_status, read_summary
from engine.sweep_batch import execute_together, groups

BASE = {"name": "sweep", "device": "cpu", "data": {"name": "digits", "val_size": 200},
        "model": {"name": "mlp", "hidden": [32, 16]},
        "train": {"iterations": 40, "eval_every": 20, "batch_size": 40, "lr": 3e-3},
        "prune": {"rounds": 2, "rate": {"fc": 0.3, "output": 0.2}}}
# criteria x mask actions x seeds, as a sweep expands them (one run with two trials)
SWEEP = [{"prune": {"criterion": "large_final", "mask1": "rewind"}},
         {"prune": {"criterion": "random", "mask1": "rewind"}},
         {"prune": {"criterion": "magnitude_increase", "mask1": "random_reinit", "mask0": "freeze_init"}},
         {"prune": {"criterion": "large_final", "mask1": "signed_constant"}, "seed": 3, "trials": 2}]


def _configs():
    out = []
    for change in SWEEP:
        sections = {k: v for k, v in change.items() if isinstance(v, dict)}
        raw = merged(BASE, **sections)
        raw.update({k: v for k, v in change.items() if not isinstance(v, dict)})
        out.append(from_dict(raw))
    return out


@pytest.fixture(scope="module")
def alone(tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> list[Path]:
    runs = tmp_path_factory.mktemp("alone")
    dirs = [create_run(c, runs, preset="sweep") for c in _configs()]
    for d in dirs:
        assert execute(d) == "done"
    return dirs


def _masks(run_dir: Path) -> dict[str, np.ndarray]:
    return {f"{p.parent.parent.name}/{p.parent.name}/{k}": v
            for p in sorted(run_dir.glob("trial-*/round-*/mask.safetensors"))
            for k, v in load_file(str(p)).items()}


def _results(run_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(run_dir.glob("trial-*/round-*/result.json"))]


def test_loop_strategy_equals_running_the_runs_one_by_one(alone: list[Path], tmp_path: Path, one_thread: None) -> None:
    together = [create_run(c, tmp_path / "runs", preset="sweep") for c in _configs()]
    events: dict[Path, list[str]] = {d: [] for d in together}
    states = execute_together(together, on_event=lambda d, e: events[d].append(e["event"]))
    assert set(states.values()) == {"done"}
    for a, b in zip(alone, together):
        assert read_status(b)["state"] == "done"
        ma, mb = _masks(a), _masks(b)
        assert ma.keys() == mb.keys() and all(np.array_equal(ma[k], mb[k]) for k in ma)
        ra, rb = _results(a), _results(b)
        assert len(ra) == len(rb) == read_summary(a)["config"]["trials"] * 3
        for x, y in zip(ra, rb):
            assert y["batched_trials"] == 5  # 4 runs, one of them with 2 trials
            for key in ("weights_remaining", "early_stop_iteration", "val_loss_min", "test_accuracy_at_early_stop",
                        "test_accuracy_final", "supermask_accuracy"):
                assert x[key] == y[key], key
        assert events[b][0] == "run_start" and events[b][-1] == "run_end" and events[b].count("round_end") == len(rb)
        assert [p["test_accuracy_mean"] for p in read_summary(a)["curve"]] == \
               [p["test_accuracy_mean"] for p in read_summary(b)["curve"]]


def test_batched_matmuls_keep_the_masks_and_the_accuracies(alone: list[Path], tmp_path: Path, one_thread: None) -> None:
    """bmm adds in another order: float32 reassociation, a few ulps per step. Round 1's masks
    come from rounds that started identical, so a weight moves across a pruning threshold only
    when it lies within those ulps of it: none of them do here, the masks are equal. After that
    the trained weights differ by more (round 1 started from weights that were themselves a few
    ulps apart), so a round-2 mask may swap a few near-threshold weights: at most 1% of a layer's
    kept ones, and the accuracies then agree within 1% (under 4 of the 360 test digits)."""
    together = [create_run(c, tmp_path / "runs", preset="sweep") for c in _configs()]
    assert set(execute_together(together, strategy="bmm").values()) == {"done"}
    for a, b in zip(alone, together):
        ma, mb = _masks(a), _masks(b)
        for k in ma:
            if "/round-0/" in k or "/round-1/" in k:
                assert np.array_equal(ma[k], mb[k]), k
            else:
                assert int((ma[k] != mb[k]).sum()) <= 0.01 * int(ma[k].sum()), k
        for x, y in zip(_results(a), _results(b)):
            assert x["weights_remaining"] == y["weights_remaining"]  # exact counts whatever the order
            assert abs(x["test_accuracy_final"] - y["test_accuracy_final"]) <= 0.01
            assert abs(x["test_accuracy_at_early_stop"] - y["test_accuracy_at_early_stop"]) <= 0.01


def test_only_runs_that_share_model_data_and_training_go_together(tmp_path: Path) -> None:
    configs = _configs()
    other_model = from_dict(merged(BASE, model={"hidden": [20]}))
    other_lr = from_dict(merged(BASE, train={"lr": 1e-3}))
    lmc = from_dict(merged(BASE, analysis={"lmc": True}))
    dirs = [create_run(c, tmp_path / "runs", preset="sweep") for c in [*configs, other_model, other_lr, lmc]]
    assert groups(dirs) == [dirs[:4], [dirs[4]], [dirs[5]], [dirs[6]]]
    with pytest.raises(ValueError, match="share"):
        execute_together([dirs[0], dirs[4]])
    assert not (dirs[0] / "events.jsonl").exists()  # refused before anything was written


def test_a_sweep_with_parallel_trials_true_trains_its_runs_together(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                                     one_thread: None) -> None:
    """The CLI path: `--sweep` with one job hands the set to execute_together (on a GPU by default)."""
    from lth_tui.cli import main

    preset = tmp_path / "tiny.toml"
    preset.write_text('name = "tiny"\ndevice = "cpu"\nparallel_trials = true\n[data]\nname = "digits"\nval_size = 200\n'
                      '[model]\nhidden = [16]\n[train]\niterations = 20\neval_every = 10\nbatch_size = 40\n'
                      '[prune]\nrounds = 1\n', encoding="utf-8")
    runs = tmp_path / "runs"
    code = main(["run", str(preset), "--runs-dir", str(runs), "--quiet", "--sweep",
                 "prune.criterion=large_final,random",
                 "--sweep", "seed=0,1"])
    assert code == 0
    out = capsys.readouterr().out
    assert "training 4 runs together" in out
    run_dirs = [p for p in runs.iterdir() if p.name != "groups"]
    assert len(run_dirs) == 4
    for run_dir in run_dirs:
        assert read_status(run_dir)["state"] == "done"
        start = json.loads((run_dir / "events.jsonl").read_text().splitlines()[0])
        assert start["event"] == "run_start" and start["batched_runs"] == 4


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
def test_on_cuda_runs_together_keep_the_masks_of_runs_alone(tmp_path: Path) -> None:
    """The GPU default (bmm for MLPs) against each run alone on the same GPU, with the tolerance
    derived in test_batched_matmuls_keep_the_masks_and_the_accuracies."""
    configs = [from_dict({**c.to_dict(), "device": "cuda"}) for c in _configs()]
    alone = [create_run(c, tmp_path / "alone", preset="sweep") for c in configs]
    for d in alone:
        assert execute(d) == "done"
    together = [create_run(c, tmp_path / "together", preset="sweep") for c in configs]
    assert set(execute_together(together).values()) == {"done"}
    for a, b in zip(alone, together):
        ma, mb = _masks(a), _masks(b)
        for k in ma:
            if "/round-0/" in k or "/round-1/" in k:
                assert np.array_equal(ma[k], mb[k]), k
            else:
                assert int((ma[k] != mb[k]).sum()) <= 0.01 * int(ma[k].sum()), k
        for x, y in zip(_results(a), _results(b)):
            assert abs(x["test_accuracy_final"] - y["test_accuracy_final"]) <= 0.01
