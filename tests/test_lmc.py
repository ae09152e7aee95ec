"""Linear mode connectivity: barrier definitions, same-start vs independent networks, the IMP
per-round option and the CLI function, with the curve recomputed from the stored weights."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from conftest import mlp_logits, undecided
from safetensors.numpy import load_file as load_np

from engine import lmc as lmc_module
from engine.config import ConfigError, from_dict, resolve_schedule
from engine.datasets import load_dataset
from engine.lmc import barrier, error_curve, interpolate, lmc_from, read_lmc, run_lmc, theta_at
from engine.models import build_model, layer_kinds
from engine.runner import execute
from engine.store import create_run, load_tensors, read_status, read_summary
from engine.training import generator

HIDDEN = [64, 32]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", val_size=300)


def _mlp(data, seed: int):
    return build_model("mlp", input_shape=data.input_shape, num_classes=data.num_classes, hidden=HIDDEN,
                       generator=generator(seed, "init"))


def test_interpolate_floats_and_keeps_integer_buffers():
    a = {"w": torch.tensor([0.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([4.0, -2.0]), "n": torch.tensor(9)}
    mid = interpolate(a, b, 0.25)
    assert torch.equal(mid["w"], torch.tensor([1.0, 1.0])) and int(mid["n"]) == 3
    assert torch.equal(interpolate(a, b, 0.0)["w"], a["w"]) and torch.equal(interpolate(a, b, 1.0)["w"], b["w"])
    with pytest.raises(ValueError):
        interpolate(a, {"w": b["w"]}, 0.5)


def test_barrier_is_the_max_rise_over_the_mean_of_the_ends():
    curve = [{"alpha": 0.0, "error": 0.10}, {"alpha": 0.5, "error": 0.40}, {"alpha": 1.0, "error": 0.20}]
    assert barrier(curve) == pytest.approx(0.40 - 0.15)
    flat = [{"alpha": a / 4, "error": 0.1} for a in range(5)]
    assert barrier(flat) == 0.0
    assert barrier([{"alpha": 0.0, "error": 0.3}, {"alpha": 1.0, "error": 0.1}]) == pytest.approx(0.1)


def test_batchnorm_statistics_are_recomputed_at_each_alpha():
    torch.manual_seed(0)  # float64: BatchNorm's sums and mean(0) / var(0) reduce in different orders
    net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4), torch.nn.ReLU(),
                              torch.nn.Linear(4, 3)).double()
    a = {k: v.clone() for k, v in net.state_dict().items()}
    b = {k: (v + torch.randn_like(v) if v.is_floating_point() else v.clone()) for k, v in a.items()}
    b["1.running_mean"] += 100.0  # stale statistics that interpolation would carry along
    x, y = torch.randn(50, 5, dtype=torch.float64), torch.randint(0, 3, (50,))
    bn_x = torch.randn(300, 5, dtype=torch.float64)
    curve = error_curve(net, a, b, x, y, points=3, bn_x=bn_x)
    assert [p["alpha"] for p in curve] == [0.0, 0.5, 1.0]
    with torch.no_grad():  # the container holds α = 1 with statistics of bn_x under b's weights
        hidden = bn_x @ b["0.weight"].T + b["0.bias"]
    assert torch.allclose(net[1].running_mean, hidden.mean(0), rtol=1e-12, atol=1e-12)
    assert torch.allclose(net[1].running_var, hidden.var(0, unbiased=True), rtol=1e-12, atol=1e-12)
    assert net[1].momentum == 0.1 and net.training


def test_same_start_is_connected_independent_inits_are_not(digits):
    config = from_dict({"model": {"hidden": HIDDEN}, "train": {"iterations": 300, "eval_every": 300, "batch_size": 60,
                                                                "lr": 2e-3}})
    schedule = resolve_schedule(config, len(digits.train_x))
    model = _mlp(digits, 0)
    masks = {n: torch.ones_like(model.get_parameter(n), dtype=torch.bool) for n in layer_kinds(model)}
    same = lmc_from(model, digits, config.train, schedule, model.state_dict(), masks, None, seed=1, points=11)
    assert len(same["curve"]) == 11 and same["curve"][0]["alpha"] == 0.0 and same["curve"][-1]["alpha"] == 1.0
    assert same["error_a"] < 0.1 and same["error_b"] < 0.1  # both copies trained
    other = _mlp(digits, 1)
    trained_other = lmc_from(other, digits, config.train, schedule, other.state_dict(), masks, None, seed=2,
                             points=3)["state_a"]
    independent = barrier(error_curve(_mlp(digits, 0), same["state_a"], trained_other, digits.test_x, digits.test_y,
                                      11))
    assert same["barrier"] < 0.03 and same["stable"]
    assert independent > 0.15 and independent > same["barrier"] + 0.1


def _numpy_error(state: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The MLP's forward pass written out by hand in float64: (error, the fraction of examples
    whose prediction float32 rounding could change, see conftest.mlp_logits)."""
    logits, bound = mlp_logits(state, x)
    return float((logits.argmax(1) != y).mean()), float(undecided(logits, bound).mean())


def _raw():
    return {"name": "lmc", "description": "t", "device": "cpu", "data": {"name": "digits", "val_size": 300},
            "model": {"name": "mlp", "hidden": HIDDEN},
            "train": {"iterations": 150, "eval_every": 50, "batch_size": 60, "lr": 3e-3},
            "prune": {"rounds": 1, "rate": {"fc": 0.5, "output": 0.2}}, "analysis": {"lmc": True, "lmc_points": 21}}


def _imp_run(tmp_path, digits, **extra):
    raw = _raw()
    for key, value in extra.items():
        raw[key].update(value)
    run_dir = create_run(from_dict(raw), tmp_path / "runs", preset="lmc")
    assert execute(run_dir, data=digits) == "done"
    return run_dir


def test_imp_option_writes_lmc_files_and_the_curve_recomputes_from_stored_weights(tmp_path, digits):
    run_dir = _imp_run(tmp_path, digits)
    x, y = digits.test_x.numpy(), digits.test_y.numpy()
    for r in (0, 1):
        rdir = run_dir / "trial-0" / f"round-{r}"
        record = json.loads((rdir / "lmc.json").read_text())
        result = json.loads((rdir / "result.json").read_text())
        assert result["lmc_barrier"] == record["barrier"] and result["lmc_stable"] == record["stable"]
        assert len(record["curve"]) == 21 and record["batchnorm"] == "none" and record["split"] == "test"
        a, b = load_np(str(rdir / "lmc-a.safetensors")), load_np(str(rdir / "lmc-b.safetensors"))
        # Copy A is the round's own training; copy B another data order from the same start.
        final = load_np(str(rdir / "final.safetensors"))
        assert all(np.array_equal(a[k], final[k]) for k in final)
        assert not np.array_equal(a["fc.weight"], b["fc.weight"])
        mask = load_np(str(rdir / "mask.safetensors"))
        for name, m in mask.items():  # both ends keep the round's mask
            assert not a[name][~m.astype(bool)].any() and not b[name][~m.astype(bool)].any()
        errors, slack = [], []
        for point in record["curve"]:
            alpha = point["alpha"]
            mixed = {k: (1 - alpha) * a[k] + alpha * b[k] for k in a}
            error, undecided_share = _numpy_error(mixed, x, y)
            errors.append(error)
            slack.append(undecided_share)
            assert abs(error - point["error"]) <= undecided_share + 1e-12, (r, alpha)
        allowed = max(slack) + (slack[0] + slack[-1]) / 2
        assert abs(max(errors) - (errors[0] + errors[-1]) / 2 - record["barrier"]) <= allowed + 1e-12
    summary = read_summary(run_dir)
    assert all("lmc_barrier_mean" in p and p["lmc_barrier_n"] == 1 for p in summary["curve"])
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    lmc_events = [e for e in events if e["event"] == "lmc"]
    assert [e["round"] for e in lmc_events] == [0, 1] and all("barrier" in e for e in lmc_events)


def test_a_replay_of_theta_k_trains_with_the_threads_the_run_recorded(tmp_path, digits, monkeypatch):
    """A run trained on 2 threads, replayed from a process on 1: the replay takes the run's 2
    (another count changes the reduction order) and gives the caller's 1 back."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    run_dir = create_run(from_dict({**_raw(), "threads": 2, "prune": {**_raw()["prune"], "rewind_iteration": 30},
                                    "analysis": {"lmc": False}}), tmp_path / "runs", preset="lmc")
    assert execute(run_dir, data=digits) == "done" and read_status(run_dir)["threads"] == 2
    config = from_dict({**json.loads(json.dumps(read_summary(run_dir)["config"]))})
    schedule = resolve_schedule(config, len(digits.train_x))
    seen = []
    real = lmc_module.train_round

    def spy(model, job):
        seen.append(torch.get_num_threads())
        return real(model, job)

    monkeypatch.setattr(lmc_module, "train_round", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        replayed = theta_at(run_dir, config, digits, dataclasses.replace(schedule, rewind_iteration=0), 0, 30,
                            _mlp(digits, 0))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert seen == [2]
    stored = load_tensors(run_dir / "trial-0" / "rewind.safetensors")
    assert all(torch.equal(stored[k], replayed[k]) for k in stored)


def test_cli_function_rewinds_to_theta_k_and_replays_it_exactly(tmp_path, digits):
    run_dir = _imp_run(tmp_path, digits, prune={"rewind_iteration": 30}, analysis={"lmc": False})
    config = from_dict({**json.loads(json.dumps(read_summary(run_dir)["config"]))})
    schedule = resolve_schedule(config, len(digits.train_x))
    stored = load_tensors(run_dir / "trial-0" / "rewind.safetensors")
    replayed = theta_at(run_dir, config, digits, dataclasses.replace(schedule, rewind_iteration=0), 0, 30,
                        _mlp(digits, 0))
    assert all(torch.equal(stored[k], replayed[k]) for k in stored)

    record = run_lmc(run_dir, 1, rewind_iteration=40, data=digits, points=5)
    rdir = run_dir / "trial-0" / "round-1"
    assert (rdir / "lmc-k40.json").is_file() and (rdir / "lmc-k40-a.safetensors").is_file()
    assert not (rdir / "lmc.json").exists()
    assert record["start_iteration"] == 40 and record["iterations"] == 110 and len(record["curve"]) == 5
    a = load_np(str(rdir / "lmc-k40-a.safetensors"))
    mask = load_np(str(rdir / "mask.safetensors"))
    assert all(not a[n][~m.astype(bool)].any() for n, m in mask.items())
    plain = run_lmc(run_dir, 0, data=digits, points=3)
    assert plain["start_iteration"] == 0 and plain["iterations"] == 150
    assert [r["file"] for r in read_lmc(run_dir)] == ["trial-0/round-0/lmc.json", "trial-0/round-1/lmc-k40.json"]
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert [e.get("rewind_iteration") for e in events if e["event"] == "lmc"] == [40, None]
    with pytest.raises(ConfigError, match="--rewind"):
        run_lmc(run_dir, 1, rewind_iteration=150, data=digits)


@pytest.mark.parametrize("raw, key", [
    ({"analysis": {"lmc_points": 2}}, "analysis.lmc_points"),
    ({"analysis": {"lmc_stable_threshold": 0}}, "analysis.lmc_stable_threshold"),
    ({"analysis": {"lmc": "yes"}}, "analysis.lmc"),
    ({"experiment": "supermask", "analysis": {"lmc": True}}, "analysis.lmc"),
])
def test_analysis_keys_are_validated(raw, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        from_dict(raw)
    assert from_dict({"analysis": {"lmc": True}}).analysis.lmc_points == 21
