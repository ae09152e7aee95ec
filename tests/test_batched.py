"""Trials trained together (engine/batched.py): the same run store as trials trained one by one."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from conftest import merged
from safetensors.torch import load_file

from engine.batched import parallel_trials_active, train_rounds
from engine.config import ConfigError, from_dict, resolve_schedule
from engine.criteria import next_mask
from engine.datasets import load_dataset
from engine.models import build_model, layer_kinds
from engine.runner import execute
from engine.store import create_run, read_summary
from engine.training import TrainJob, generator, train_round
from lth_tui.completion import Completion

BASE = {"name": "tiny", "device": "cpu", "trials": 3, "data": {"name": "digits", "val_size": 200},
        "model": {"name": "mlp", "hidden": [32]},
        "train": {"iterations": 40, "eval_every": 20, "batch_size": 40, "lr": 3e-3},
        "prune": {"rounds": 2, "rate": {"fc": 0.3, "output": 0.2}}}
FILES = ("mask", "start", "final")


def _config(parallel, **sections):
    return from_dict(merged(BASE, parallel_trials=parallel, **sections))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", val_size=200)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, digits):
    """The same 3-trial run trained trial by trial (parallel_trials = false)."""
    run_dir = create_run(_config(False), tmp_path_factory.mktemp("seq"), preset="seq")
    assert execute(run_dir, data=digits) == "done"
    return run_dir


def _assert_same_store(a: Path, b: Path, trials: int = 3, rounds: int = 3) -> None:
    for t in range(trials):
        init_a, init_b = load_file(a / f"trial-{t}/init.safetensors"), load_file(b / f"trial-{t}/init.safetensors")
        assert all(torch.equal(init_a[k], init_b[k]) for k in init_a)
        for r in range(rounds):
            rdir = f"trial-{t}/round-{r}"
            for name in FILES:
                ta, tb = load_file(a / rdir / f"{name}.safetensors"), load_file(b / rdir / f"{name}.safetensors")
                assert set(ta) == set(tb)
                for key in ta:
                    assert torch.equal(ta[key], tb[key]), (rdir, name, key)
            ra, rb = (json.loads((d / rdir / "result.json").read_text()) for d in (a, b))
            for key in ("seconds", "batched_seconds", "batched_trials"):  # wall times, and how b's were shared
                ra.pop(key, None), rb.pop(key, None)
            assert ra == rb, rdir
            ea, eb = (json.loads((d / rdir / "evals.json").read_text()) for d in (a, b))
            assert ea == eb, rdir
            assert not (b / rdir / "checkpoint.json").exists()


def test_batched_trials_write_the_same_run_store(tmp_path, digits, reference):
    events = []
    run_dir = create_run(_config(True), tmp_path, preset="batched")
    assert execute(run_dir, data=digits, on_event=events.append) == "done"
    _assert_same_store(reference, run_dir)
    summary, expected = read_summary(run_dir), read_summary(reference)
    assert [p["n"] for p in summary["curve"]] == [3, 3, 3]
    for point, ref in zip(summary["curve"], expected["curve"]):
        assert point["test_accuracy_mean"] == ref["test_accuracy_mean"]
        assert point["weights_remaining"] == ref["weights_remaining"]
    assert [t["seed"] for t in summary["trials"]] == [0, 1, 2]
    assert events[0]["event"] == "run_start" and events[0]["parallel_trials"] is True
    # round-major: every trial starts round r before any finishes it
    marks = [(e["event"], e["trial"], e["round"]) for e in events if e["event"] in ("round_start", "round_end")]
    assert marks[:6] == [("round_start", t, 0) for t in range(3)] + [("round_end", t, 0) for t in range(3)]
    evals = [e for e in events if e["event"] == "eval"]
    assert len(evals) == 3 * 3 * 3 and {e["trial"] for e in evals} == {0, 1, 2}
    ref_events = [json.loads(line) for line in (reference / "events.jsonl").read_text().splitlines()]
    ref_evals = {(e["trial"], e["round"], e["iteration"]): e["test_accuracy"]
                 for e in ref_events if e["event"] == "eval"}
    assert {(e["trial"], e["round"], e["iteration"]): e["test_accuracy"] for e in evals} == ref_evals
    # each trial is charged its share of the round's shared wall time, so sums over trials stay true
    for r in range(3):
        results = [json.loads((run_dir / f"trial-{t}/round-{r}/result.json").read_text()) for t in range(3)]
        assert {res["batched_trials"] for res in results} == {3}
        assert len({res["batched_seconds"] for res in results}) == 1
        assert sum(res["seconds"] for res in results) == pytest.approx(results[0]["batched_seconds"])
    # the progress count (CLI bar, app) climbs steadily to the total although trials interleave
    count, seen = Completion(), []
    for event in events:
        count.feed(event)
        seen.append(count.done)
    assert seen == sorted(seen) and seen[-1] == count.total == 3 * 3 * 40


def test_interrupted_batched_run_resumes_to_the_same_result(tmp_path, digits, reference):
    run_dir = create_run(_config(True), tmp_path, preset="batched")
    calls = {"n": 0}

    def stop():  # inside round 1: 40 checks train round 0, then 25 steps into round 1
        calls["n"] += 1
        return calls["n"] > 65

    assert execute(run_dir, data=digits, should_stop=stop, checkpoint_seconds=0) == "cancelled"
    for t in range(3):
        assert (run_dir / f"trial-{t}/round-0/result.json").is_file()
        assert not (run_dir / f"trial-{t}/round-1/result.json").exists()
        meta = json.loads((run_dir / f"trial-{t}/round-1/checkpoint.json").read_text())
        assert meta["step"] == 25 and [e["iteration"] for e in meta["evals"]] == [0, 20]
    assert execute(run_dir, data=digits) == "done"
    _assert_same_store(reference, run_dir)


def test_batched_checkpoints_resume_sequentially_and_back(tmp_path, digits, reference):
    """Checkpoints are per trial in the single-trial format: either path continues the other's."""
    run_dir = create_run(_config(True), tmp_path, preset="mixed")
    calls = {"n": 0}
    assert execute(run_dir, data=digits, should_stop=lambda: calls.__setitem__("n", calls["n"] + 1) or calls["n"] > 30,
                   checkpoint_seconds=0) == "cancelled"
    config_path = run_dir / "config.toml"
    config_path.write_text(config_path.read_text().replace("parallel_trials = true", "parallel_trials = false"))
    calls["n"] = 0  # sequential: trial 0 finishes its rounds, trial 1 stops inside round 0
    assert execute(run_dir, data=digits, should_stop=lambda: calls.__setitem__("n", calls["n"] + 1) or calls["n"] > 95,
                   checkpoint_seconds=0) == "cancelled"
    assert (run_dir / "trial-0/round-2/result.json").is_file()
    assert not (run_dir / "trial-1/round-0/result.json").exists()
    config_path.write_text(config_path.read_text().replace("parallel_trials = false", "parallel_trials = true"))
    assert execute(run_dir, data=digits) == "done"  # trials 1 and 2 at different steps: trained in groups
    _assert_same_store(reference, run_dir)


def _float64(data):
    return dataclasses.replace(data, train_x=data.train_x.double(), val_x=data.val_x.double(),
                               test_x=data.test_x.double())


def _adam_bound(config, schedule) -> float:
    """How far two float64 trainings that sum in different orders may drift apart under Adam.

    The reassociation noise of a gradient is ~1e-15 of its terms (terms ~1 here); Adam divides
    by sqrt(v) + eps, eps = 1e-8, so an update moves by at most lr · 1e-15 / eps = lr · 1e-7 per
    step.  (In float32 the noise is ~1e-7, above eps: on weights whose true gradient is ~0 it
    becomes updates of up to lr, which is why these comparisons run in float64.)  Ten times
    that, over every step."""
    return 10 * schedule.iterations * config.train.lr * 1e-7


def test_vectorised_strategies_match_the_loop(digits):
    """bmm (MLP) and vmap (any model) reassociate sums; in float64 results agree to rounding."""
    config = _config(True, train={"iterations": 30, "eval_every": 30})
    schedule = resolve_schedule(config, len(digits.train_x))
    data64 = _float64(digits)
    bound = _adam_bound(config, schedule)
    kinds = None
    finals, accuracies = {}, {}
    for strategy in ("loop", "bmm", "vmap"):
        models = [build_model("mlp", input_shape=digits.input_shape, num_classes=10, hidden=[32],
                              generator=generator(t, "init")).double() for t in range(3)]
        kinds = layer_kinds(models[0])
        g = torch.Generator().manual_seed(5)
        masks = [{n: torch.rand(dict(m.named_parameters())[n].shape, generator=g) > 0.5 for n in kinds} for m in models]
        jobs = [TrainJob(data=data64, config=config.train, schedule=schedule, masks=masks[t], frozen=None, seed=10 + t)
                for t in range(3)]
        outcomes = train_rounds(models, jobs, strategy=strategy)
        finals[strategy] = [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in models]
        accuracies[strategy] = [o.test_accuracy_final for o in outcomes]
        for m, mask in zip(models, masks):
            for n in kinds:
                assert torch.count_nonzero(dict(m.named_parameters())[n][~mask[n]]) == 0
    for strategy in ("bmm", "vmap"):
        for t in range(3):
            for key, value in finals["loop"][t].items():
                torch.testing.assert_close(finals[strategy][t][key], value, rtol=0, atol=bound)
            pruned = {n: finals[strategy][t][n] for n in kinds}
            reference = {n: finals["loop"][t][n] for n in kinds}
            ones = {n: torch.ones_like(v, dtype=torch.bool) for n, v in pruned.items()}
            args = dict(criterion="large_final", scope="layerwise", rates={"conv": 0.1, "fc": 0.3, "output": 0.2},
                        kinds=kinds, mask=ones, w_init=pruned, generator=torch.Generator().manual_seed(0))
            a = next_mask(w_final=pruned, **args)
            b = next_mask(w_final=reference,
                          **{**args, "w_init": reference, "generator": torch.Generator().manual_seed(0)})
            agree = sum(int((a[n] == b[n]).sum()) for n in kinds) / sum(a[n].numel() for n in kinds)
            assert agree > 0.99
        assert max(abs(x - y) for x, y in zip(accuracies[strategy], accuracies["loop"])) <= 0.02


def test_vmap_keeps_batchnorm_statistics_per_trial(digits):
    """Loop and vmap sum in different orders: compared in float64 (see _adam_bound)."""
    config = _config(True, model={"name": "resnet20"}, train={"iterations": 3, "eval_every": 3, "batch_size": 16})
    schedule = resolve_schedule(config, len(digits.train_x))
    data64 = _float64(digits)
    bound = _adam_bound(config, schedule)
    states = {}
    for strategy in ("loop", "vmap"):
        models = [build_model("resnet20", input_shape=digits.input_shape, num_classes=10, init="kaiming-normal",
                              generator=generator(t, "init")).double() for t in range(2)]
        masks = [{n: torch.ones_like(p, dtype=torch.bool) for n, p in m.named_parameters() if n in layer_kinds(m)}
                 for m in models]
        jobs = [TrainJob(data=data64, config=config.train, schedule=schedule, masks=masks[t], frozen=None, seed=t)
                for t in range(2)]
        train_rounds(models, jobs, strategy=strategy)
        states[strategy] = [m.state_dict() for m in models]
    for t in range(2):
        assert int(states["vmap"][t]["bn.num_batches_tracked"]) == 3
        for key, value in states["loop"][t].items():
            assert states["vmap"][t][key].dtype == value.dtype
            torch.testing.assert_close(states["vmap"][t][key], value, rtol=0, atol=bound)
    assert not torch.equal(states["vmap"][0]["bn.running_mean"], states["vmap"][1]["bn.running_mean"])


def test_one_batched_trial_equals_train_round(digits):
    config = _config(True, train={"iterations": 25, "eval_every": 10, "optimizer": "sgd", "momentum": 0.9,
                                  "weight_decay": 1e-3, "lr": 0.05})
    schedule = resolve_schedule(config, len(digits.train_x))
    results = []
    for batched in (False, True):
        model = build_model("mlp", input_shape=digits.input_shape, num_classes=10, hidden=[32],
                            generator=generator(1, "init"))
        masks = {n: torch.rand(p.shape, generator=torch.Generator().manual_seed(2)) > 0.6
                 for n, p in model.named_parameters() if n in layer_kinds(model)}
        frozen = {n: p.detach().clone() for n, p in model.named_parameters() if n in masks}
        job = TrainJob(data=digits, config=config.train, schedule=schedule, masks=masks, frozen=frozen, seed=4)
        outcome = train_rounds([model], [job])[0] if batched else train_round(model, job)
        results.append((outcome.evals, model.state_dict()))
    assert results[0][0] == results[1][0]
    assert all(torch.equal(results[0][1][k], results[1][1][k]) for k in results[0][1])


def test_parallel_trials_config():
    assert _config("auto").parallel_trials == "auto" and from_dict({}).parallel_trials == "auto"
    assert _config("true").parallel_trials is True and _config(False).parallel_trials is False
    for bad in ("yes", 1, 0.5, ["auto"]):
        with pytest.raises(ConfigError, match="parallel_trials"):
            _config(bad)
    with pytest.raises(ConfigError, match="parallel_trials"):
        _config(True, experiment="supermask")
    with pytest.raises(ConfigError, match="channels_last"):
        _config(True, model={"name": "conv2"}, train={"channels_last": True})
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert parallel_trials_active(_config(True), cpu) and not parallel_trials_active(_config(False), cuda)
    assert not parallel_trials_active(_config("auto"), cpu)  # a CPU is busy either way
    assert parallel_trials_active(_config("auto"), cuda)
    assert parallel_trials_active(_config("auto", model={"name": "lenet-300-100"}), cuda)
    assert not parallel_trials_active(_config("auto", model={"name": "resnet20"}), cuda)
    assert not parallel_trials_active(_config("auto", trials=1), cuda)
    assert not parallel_trials_active(_config("auto", experiment="supermask"), cuda)
    assert not parallel_trials_active(_config("auto", analysis={"lmc": True}), cuda)
