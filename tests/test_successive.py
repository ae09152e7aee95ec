"""Successive-round connectivity: the barrier and distances between round r-1's and round r's
solutions, recomputed here from the stored weights with a numpy interpolation and forward
pass of our own; the degenerate cases; the CLI path against the runner's; kill -9 and resume."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FAST_PRESET
from safetensors.numpy import load_file as load_np

from engine.config import from_dict
from engine.datasets import load_dataset
from engine.models import build_model
from engine.runner import execute
from engine.store import create_run, read_summary
from engine.successive import FILE, connectivity, run_successive
from engine.training import generator

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", val_size=300)


@pytest.fixture(scope="module")
def successive_run(tmp_path_factory, digits) -> Path:
    """FAST_PRESET with 3 pruning rounds and analysis.successive, trained once for the module."""
    raw = tomllib.loads(FAST_PRESET)
    raw["prune"]["rounds"] = 3
    raw["analysis"] = {"successive": True}
    run_dir = create_run(from_dict(raw), tmp_path_factory.mktemp("successive"), preset="fast-successive")
    assert execute(run_dir, data=digits) == "done"
    return run_dir


def _numpy_errors(state: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    """Error of FAST_PRESET's MLP (one hidden ReLU layer) in float64 numpy."""
    x = x.reshape(len(x), -1)
    h = np.maximum(x @ state["fc_layers.0.weight"].T + state["fc_layers.0.bias"], 0.0)
    logits = h @ state["fc.weight"].T + state["fc.bias"]
    return float(np.mean(logits.argmax(1) != y))


def _numpy_curve(a: dict[str, np.ndarray], b: dict[str, np.ndarray], points: int, x: np.ndarray,
                 y: np.ndarray) -> list[float]:
    out = []
    for i in range(points):
        t = i / (points - 1)
        out.append(_numpy_errors({k: (1 - t) * a[k] + t * b[k] for k in a}, x, y))
    return out


def _load64(path: Path) -> dict[str, np.ndarray]:
    return {k: v.astype(np.float64) for k, v in load_np(str(path)).items()}


def test_barriers_and_distances_match_an_independent_recomputation(successive_run, digits):
    test_x, test_y = digits.test_x.double().numpy(), digits.test_y.numpy()
    train_x, train_y = digits.train_x.double().numpy(), digits.train_y.numpy()
    # one argmax may flip between float32 (engine) and float64 (here) near a tie
    tolerance = 1.5 / len(test_y)
    for r in (1, 2, 3):
        prev_dir, round_dir = successive_run / "trial-0" / f"round-{r - 1}", successive_run / "trial-0" / f"round-{r}"
        record = json.loads((round_dir / FILE).read_text())
        prev, cur = _load64(prev_dir / "final.safetensors"), _load64(round_dir / "final.safetensors")
        mask = {k: v.astype(bool) for k, v in load_np(str(round_dir / "mask.safetensors")).items()}
        projected = {k: np.where(mask[k], v, cur[k]) if k in mask else v for k, v in prev.items()}
        assert set(mask) == {"fc_layers.0.weight", "fc.weight"}
        for name, a in (("projected", projected), ("unprojected", prev)):
            path = record[name]
            assert len(path["curve"]) == 21
            test_curve = _numpy_curve(a, cur, 21, test_x, test_y)
            train_curve = _numpy_curve(a, cur, 21, train_x, train_y)
            assert [p["error"] for p in path["curve"]] == pytest.approx(test_curve, abs=tolerance)
            assert [p["train_error"] for p in path["curve"]] == pytest.approx(train_curve, abs=1.5 / len(train_y))
            barrier = max(test_curve) - (test_curve[0] + test_curve[-1]) / 2
            assert path["barrier"] == pytest.approx(barrier, abs=2 * tolerance)
            flat_a = np.concatenate([a[k].ravel() for k in sorted(a)])
            flat_b = np.concatenate([cur[k].ravel() for k in sorted(cur)])
            assert path["l2"] == pytest.approx(float(np.linalg.norm(flat_a - flat_b)), rel=1e-9)
            cosine = float(flat_a @ flat_b / (np.linalg.norm(flat_a) * np.linalg.norm(flat_b)))
            assert path["cosine"] == pytest.approx(cosine, rel=1e-9)
        ma = np.concatenate([(prev[k] * mask[k]).ravel() for k in sorted(mask)])
        mb = np.concatenate([(cur[k] * mask[k]).ravel() for k in sorted(mask)])
        angle = 2 * math.acos(float(ma @ mb / (np.linalg.norm(ma) * np.linalg.norm(mb)))) / math.pi
        assert record["angular_distance"] == pytest.approx(angle, rel=1e-9)
        for which, rdir in (("previous", prev_dir), ("current", round_dir)):
            final, start = _load64(rdir / "final.safetensors"), _load64(rdir / "start.safetensors")
            dist = math.sqrt(sum(float(((final[k] - start[k]) ** 2).sum()) for k in final))
            assert record["distance_from_rewind"][which]["l2"] == pytest.approx(dist, rel=1e-9)
        kept = sum(int(m.sum()) for m in mask.values()) / sum(m.size for m in mask.values())
        assert record["weights_remaining"] == pytest.approx(kept)
        # the projected line ends in networks with round r's mask: pruned positions are 0 in both
        for k, m in mask.items():
            assert not projected[k][~m].any() and not cur[k][~m].any()
    assert not (successive_run / "trial-0" / "round-0" / FILE).exists()


def test_round_records_and_summary_carry_the_headline_figures(successive_run):
    summary = read_summary(successive_run)
    rounds = summary["trials"][0]["rounds"]
    assert "successive_barrier" not in rounds[0]
    for rec in rounds[1:]:
        stored = json.loads((successive_run / "trial-0" / f"round-{rec['round']}" / FILE).read_text())
        assert rec["successive_barrier"] == stored["projected"]["barrier"]
        assert rec["successive_barrier_unprojected"] == stored["unprojected"]["barrier"]
        assert rec["successive_l2"] == stored["projected"]["l2"]
        assert rec["rewind_distance"] == stored["distance_from_rewind"]["current"]["l2"]
    curve = {p["round"]: p for p in summary["curve"]}
    assert "successive_barrier_mean" not in curve[0] and curve[2]["successive_barrier_n"] == 1
    events = [json.loads(line) for line in (successive_run / "events.jsonl").read_text().splitlines()]
    assert [e["round"] for e in events if e["event"] == "successive"] == [1, 2, 3]


def _mlp(digits, seed: int = 0) -> torch.nn.Module:
    return build_model("mlp", input_shape=digits.input_shape, num_classes=digits.num_classes, hidden=[32],
                       generator=generator(seed, "init"))


def test_two_identical_solutions_have_barrier_zero_and_distance_zero(digits):
    model = _mlp(digits)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    final = {k: v + 0.05 * torch.randn(v.shape, generator=generator("t", k)) for k, v in start.items()}
    masks = {"fc_layers.0.weight": torch.ones_like(start["fc_layers.0.weight"], dtype=torch.bool),
             "fc.weight": torch.ones_like(start["fc.weight"], dtype=torch.bool)}
    record = connectivity(model, digits, (start, final), (start, final), masks, points=5)
    for name in ("projected", "unprojected"):
        path = record[name]
        assert path["barrier"] == 0.0 and path["barrier_train"] == 0.0 and path["l2"] == 0.0
        assert path["cosine"] == pytest.approx(1.0, abs=1e-12)
        assert len({p["error"] for p in path["curve"]}) == 1
    assert record["distance_from_rewind"]["previous"] == record["distance_from_rewind"]["current"]
    assert record["weights_remaining"] == 1.0


def test_a_projection_equal_to_the_next_round_gives_zero(digits):
    model = _mlp(digits)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    g = generator("projection")
    masks = {n: torch.rand(start[n].shape, generator=g) < 0.6 for n in ("fc_layers.0.weight", "fc.weight")}
    current = {k: (v * masks[k] if k in masks else v) for k, v in start.items()}  # round r: pruned positions 0
    # round r-1's solution agrees with round r on every kept weight and bias, not where r prunes
    previous = {k: (torch.where(masks[k], v, torch.randn(v.shape, generator=g)) if k in masks else v.clone())
                for k, v in current.items()}
    record = connectivity(model, digits, (start, previous), (start, current), masks, points=7)
    assert record["projected"]["barrier"] == 0.0 and record["projected"]["l2"] == 0.0
    assert record["angular_distance"] == pytest.approx(0.0, abs=1e-6)
    assert record["unprojected"]["l2"] > 1.0  # the pruned positions it still holds
    assert record["weights_remaining"] == pytest.approx(
        sum(int(m.sum()) for m in masks.values()) / sum(m.numel() for m in masks.values()))


def test_lmc_successive_on_a_stored_run_matches_what_the_runner_measured(successive_run, digits, tmp_path):
    copy = tmp_path / successive_run.name
    shutil.copytree(successive_run, copy)
    for path in copy.glob("trial-*/round-*/" + FILE):
        path.unlink()
    for path in copy.glob("trial-*/round-*/result.json"):
        rec = json.loads(path.read_text())
        kept = {k: v for k, v in rec.items() if not k.startswith(("successive_", "rewind_distance"))}
        path.write_text(json.dumps(kept))
    records = run_successive(copy, data=digits)
    assert [(r["trial"], r["round"]) for r in records] == [(0, 1), (0, 2), (0, 3)]
    def strip(rec: dict) -> dict:
        return {k: v for k, v in rec.items() if k != "seconds"}
    for r in (1, 2, 3):
        ours = json.loads((copy / "trial-0" / f"round-{r}" / FILE).read_text())
        theirs = json.loads((successive_run / "trial-0" / f"round-{r}" / FILE).read_text())
        assert strip(ours) == strip(theirs)
    assert read_summary(copy)["curve"] == read_summary(successive_run)["curve"]


def test_cli_successive_prints_every_round_and_refuses_bad_input(successive_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(successive_run, copy)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "lth_tui.cli", "lmc", str(copy), "--successive"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("trial 0 round")]
    assert len(lines) == 3 and "barrier" in lines[0] and "cosine" in lines[0]
    bad = subprocess.run([sys.executable, "-m", "lth_tui.cli", "lmc", str(copy), "--successive", "--round", "1"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--successive" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    none = subprocess.run([sys.executable, "-m", "lth_tui.cli", "lmc", str(copy)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert none.returncode == 2 and "--round" in none.stderr


SLOW_ANALYSIS = (
    'name = "slow-analysis"\ndescription = "t"\ndevice = "cpu"\n[data]\nname = "digits"\nval_size = 200\n'
    '[model]\nhidden = [96, 48]\n[train]\niterations = 200\neval_every = 50\nbatch_size = 40\nlr = 3e-3\n'
    '[prune]\nrounds = 2\nrate = { fc = 0.3, output = 0.2 }\n[analysis]\nsuccessive = true\nlmc_points = 1001\n')


def _cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "lth_tui.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, timeout: float = 240.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_kill_9_mid_analysis_then_resume_gives_the_same_figures(tmp_path):
    preset = tmp_path / "slow-analysis.toml"
    preset.write_text(SLOW_ANALYSIS)
    reference = _cli("run", str(preset), "--runs-dir", str(tmp_path / "ref"), "--quiet")
    out, err = reference.communicate(timeout=600)
    assert reference.returncode == 0, err
    reference_dir = Path(out.splitlines()[0])

    runs = tmp_path / "killed"
    victim = _cli("run", str(preset), "--runs-dir", str(runs), "--quiet", "--checkpoint-every", "0")
    assert _wait_for(lambda: runs.is_dir() and any(runs.iterdir()))
    run_dir = next(runs.iterdir())
    round_dir = run_dir / "trial-0" / "round-1"
    assert _wait_for((round_dir / "final.safetensors").is_file), "round 1 never finished training"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert not (round_dir / "result.json").exists() and not (round_dir / FILE).exists(), "not killed mid-analysis"

    resumed = _cli("resume", str(run_dir), "--quiet")
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    for r in (1, 2):
        ours = json.loads((run_dir / "trial-0" / f"round-{r}" / FILE).read_text())
        theirs = json.loads((reference_dir / "trial-0" / f"round-{r}" / FILE).read_text())
        assert {k: v for k, v in ours.items() if k != "seconds"} == {k: v for k, v in theirs.items() if k != "seconds"}
