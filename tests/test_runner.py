"""Whole runs against the run-store contract, masks recomputed independently, kill -9 and resume."""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import merged
from safetensors.numpy import load_file as load_np

from engine.config import from_dict
from engine.run_index import list_runs
from engine.runner import execute
from engine.store import create_run, read_status, read_summary

ROOT = Path(__file__).resolve().parent.parent
FAST = {"name": "tiny", "description": "test", "device": "cpu", "data": {"name": "digits", "val_size": 200},
        "model": {"name": "mlp", "hidden": [48, 24]},
        "train": {"iterations": 80, "eval_every": 20, "batch_size": 40, "lr": 3e-3},
        "prune": {"rounds": 3, "rate": {"fc": 0.3, "output": 0.2}}}


def _config(**sections):
    return from_dict(merged(FAST, **sections))


def _run(tmp_path, **sections) -> Path:
    run_dir = create_run(_config(**sections), tmp_path / "runs", preset="tiny")
    assert execute(run_dir) == "done"
    return run_dir


def _ceil_keep(survivors: int, rate: float) -> int:
    return survivors - math.ceil(rate * survivors - 1e-9)


def test_run_store_matches_the_contract(tmp_path):
    run_dir = _run(tmp_path)
    assert run_dir.name.startswith(time.strftime("%Y%m%d-")) and "-tiny-" in run_dir.name
    status = read_status(run_dir)
    assert status["state"] == "done" and status["pid"] == os.getpid() and status["error"] is None
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    assert kinds.count("round_start") == kinds.count("round_end") == 4
    assert all("trial" in e and "round" in e and "iteration" in e for e in events if e["event"] == "eval")
    summary = read_summary(run_dir)
    assert summary["run_id"] == run_dir.name and summary["state"] == "done"
    assert summary["config"]["prune"]["rounds"] == 3
    rounds = summary["trials"][0]["rounds"]
    assert summary["trials"][0]["seed"] == 0 and [r["round"] for r in rounds] == [0, 1, 2, 3]
    for record in rounds:
        for key in ("weights_remaining", "layers", "early_stop_iteration", "val_loss_min",
                    "test_accuracy_at_early_stop",
                    "test_accuracy_final", "supermask_accuracy", "seconds"):
            assert key in record, key
    assert [p["n"] for p in summary["curve"]] == [1, 1, 1, 1]
    assert rounds[0]["weights_remaining"] == 1.0 and rounds[-1]["weights_remaining"] < 0.4
    assert rounds[0]["test_accuracy_at_early_stop"] > 0.8
    init = load_np(str(run_dir / "trial-0" / "init.safetensors"))
    assert set(init) == {"fc_layers.0.weight", "fc_layers.0.bias", "fc_layers.1.weight", "fc_layers.1.bias",
                         "fc.weight", "fc.bias"}
    for r in range(4):
        mask = load_np(str(run_dir / "trial-0" / f"round-{r}" / "mask.safetensors"))
        assert set(mask) == {"fc_layers.0.weight", "fc_layers.1.weight", "fc.weight"}
        assert all(m.dtype in (np.bool_, np.uint8) for m in mask.values())
        assert (run_dir / "trial-0" / f"round-{r}" / "final.safetensors").is_file()
    assert not list(run_dir.rglob("*.pt")) + list(run_dir.rglob("*.pkl")) + list(run_dir.rglob("*.tmp"))
    assert not list(run_dir.rglob("checkpoint.*"))


def test_masks_recomputed_independently_from_stored_weights(tmp_path):
    """large_final layer-wise: keep the top |w_final| among survivors, removing ceil(rate × survivors)."""
    run_dir = _run(tmp_path)
    rates = {"fc_layers.0.weight": 0.3, "fc_layers.1.weight": 0.3, "fc.weight": 0.2}
    for r in range(1, 4):
        previous = load_np(str(run_dir / "trial-0" / f"round-{r - 1}" / "mask.safetensors"))
        final = load_np(str(run_dir / "trial-0" / f"round-{r - 1}" / "final.safetensors"))
        stored = load_np(str(run_dir / "trial-0" / f"round-{r}" / "mask.safetensors"))
        for name, rate in rates.items():
            alive = previous[name].astype(bool).ravel()
            magnitude = np.abs(final[name]).ravel()
            keep = _ceil_keep(int(alive.sum()), rate)
            order = sorted(np.flatnonzero(alive), key=lambda i: -magnitude[i])
            expected = np.zeros_like(alive)
            expected[order[:keep]] = True
            assert np.array_equal(stored[name].astype(bool).ravel(), expected), (r, name)


def test_rewind_restarts_kept_weights_from_theta0(tmp_path):
    run_dir = _run(tmp_path)
    init = load_np(str(run_dir / "trial-0" / "init.safetensors"))
    for r in (1, 3):
        start = load_np(str(run_dir / "trial-0" / f"round-{r}" / "start.safetensors"))
        mask = load_np(str(run_dir / "trial-0" / f"round-{r}" / "mask.safetensors"))
        for name, m in mask.items():
            assert np.array_equal(start[name], np.where(m.astype(bool), init[name], 0)), name


def test_late_rewinding_uses_theta_k(tmp_path):
    run_dir = _run(tmp_path, prune={"rewind_iteration": 20, "rounds": 1})
    rewind = load_np(str(run_dir / "trial-0" / "rewind.safetensors"))
    init = load_np(str(run_dir / "trial-0" / "init.safetensors"))
    start = load_np(str(run_dir / "trial-0" / "round-1" / "start.safetensors"))
    mask = load_np(str(run_dir / "trial-0" / "round-1" / "mask.safetensors"))
    assert not np.array_equal(rewind["fc.weight"], init["fc.weight"])
    for name, m in mask.items():
        assert np.array_equal(start[name], np.where(m.astype(bool), rewind[name], 0))
    evals = json.loads((run_dir / "trial-0" / "round-1" / "evals.json").read_text())
    assert [e["iteration"] for e in evals] == [20, 40, 60, 80], "rounds after the first train on from k to T"


def test_random_reinit_draws_new_values(tmp_path):
    run_dir = _run(tmp_path, prune={"mask1": "random_reinit", "rounds": 1})
    init = load_np(str(run_dir / "trial-0" / "init.safetensors"))
    start = load_np(str(run_dir / "trial-0" / "round-1" / "start.safetensors"))
    mask = load_np(str(run_dir / "trial-0" / "round-1" / "mask.safetensors"))["fc_layers.0.weight"].astype(bool)
    kept_new, kept_old = start["fc_layers.0.weight"][mask], init["fc_layers.0.weight"][mask]
    assert not np.allclose(kept_new, kept_old)
    assert np.std(kept_new) == pytest.approx(np.std(init["fc_layers.0.weight"]), rel=0.15)


def test_trials_give_statistics_recomputable_from_per_trial_figures(tmp_path):
    run_dir = _run(tmp_path, trials=3, prune={"rounds": 1})
    summary = read_summary(run_dir)
    assert [t["seed"] for t in summary["trials"]] == [0, 1, 2]
    for point in summary["curve"]:
        accs = [t["rounds"][point["round"]]["test_accuracy_at_early_stop"] for t in summary["trials"]]
        assert point["n"] == 3
        assert point["test_accuracy_mean"] == pytest.approx(statistics.fmean(accs))
        assert point["test_accuracy_std"] == pytest.approx(statistics.stdev(accs))
    inits = [load_np(str(run_dir / f"trial-{t}" / "init.safetensors"))["fc.weight"] for t in range(3)]
    assert not np.array_equal(inits[0], inits[1])


def test_oneshot_prunes_to_the_iterative_target_in_one_round(tmp_path):
    iterative = read_summary(_run(tmp_path, prune={"rounds": 3}))
    oneshot = read_summary(_run(tmp_path, prune={"rounds": 3, "strategy": "oneshot"}))
    assert [r["round"] for r in oneshot["trials"][0]["rounds"]] == [0, 1]
    assert oneshot["trials"][0]["rounds"][1]["kept"] == iterative["trials"][0]["rounds"][3]["kept"]


def test_a_failure_is_recorded_not_lost(tmp_path, monkeypatch):
    import engine.runner as runner

    def boom(*args, **kwargs):
        raise RuntimeError("simulated out of memory")

    run_dir = create_run(_config(), tmp_path / "runs", preset="tiny")
    monkeypatch.setattr(runner, "train_round", boom)
    assert execute(run_dir) == "failed"
    status = read_status(run_dir)
    assert status["state"] == "failed" and "simulated out of memory" in status["error"]
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert any(e["event"] == "error" and "Traceback" in e["traceback"] for e in events)


def _wait_for(predicate, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _cli(*args: str) -> subprocess.Popen:
    # One thread: a BLAS that picks its thread count by load would change float sums between
    # the reference and the resumed run, and bit-equality is what these tests check.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "lth_tui.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _same_results(a: Path, b: Path) -> None:
    sa, sb = read_summary(a), read_summary(b)
    def strip(s: dict) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "seconds"} for t in s["trials"] for r in t["rounds"]]
    assert strip(sa) == strip(sb)
    for r in range(len(sa["trials"][0]["rounds"])):
        for name in ("mask", "final"):
            x = load_np(str(a / "trial-0" / f"round-{r}" / f"{name}.safetensors"))
            y = load_np(str(b / "trial-0" / f"round-{r}" / f"{name}.safetensors"))
            assert x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x), (r, name)


@pytest.mark.parametrize("where", ["between rounds", "mid-round"])
def test_kill_9_then_resume_matches_an_uninterrupted_run(tmp_path, where):
    preset = tmp_path / "tiny.toml"
    preset.write_text(
        'name = "tiny"\ndescription = "t"\ndevice = "cpu"\n[data]\nname = "digits"\nval_size = 200\n'
        '[model]\nhidden = [48, 24]\n[train]\niterations = 400\neval_every = 20\nbatch_size = 40\nlr = 3e-3\n'
        '[prune]\nrounds = 3\nrate = { fc = 0.3, output = 0.2 }\n')
    reference = _cli("run", str(preset), "--runs-dir", str(tmp_path / "ref"), "--quiet")
    out, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err
    reference_dir = Path(out.splitlines()[0])

    runs = tmp_path / "killed"
    victim = _cli("run", str(preset), "--runs-dir", str(runs), "--quiet", "--checkpoint-every", "0")
    assert _wait_for(lambda: runs.is_dir() and any(runs.iterdir()))
    run_dir = next(runs.iterdir())
    marker = (run_dir / "trial-0" / "round-1" / "result.json") if where == "between rounds" else \
        (run_dir / "trial-0" / "round-1" / "checkpoint.json")
    assert _wait_for(marker.is_file), "the run never reached the kill point"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert read_status(run_dir)["state"] == "running"
    assert [i.state for i in list_runs(runs)] == ["interrupted"]

    resumed = _cli("resume", str(run_dir), "--quiet")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert read_status(run_dir)["state"] == "done"
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert [e.get("resumed") for e in events if e["event"] == "run_start"] == [False, True]
    _same_results(reference_dir, run_dir)


def test_sigterm_cancels_and_leaves_it_resumable(tmp_path):
    preset = tmp_path / "slow.toml"
    preset.write_text('name = "slow"\ndevice = "cpu"\n[data]\nname = "digits"\n[model]\nhidden = [48]\n'
                      '[train]\niterations = 4000\neval_every = 50\n[prune]\nrounds = 2\n')
    proc = _cli("run", str(preset), "--runs-dir", str(tmp_path / "runs"), "--quiet")
    runs = tmp_path / "runs"
    assert _wait_for(lambda: runs.is_dir() and any(runs.glob("*/events.jsonl"))
                     and b'"eval"' in next(runs.glob("*/events.jsonl")).read_bytes())
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    run_dir = next(runs.iterdir())
    assert read_status(run_dir)["state"] == "cancelled"
    assert (run_dir / "trial-0" / "round-0" / "checkpoint.json").is_file()
