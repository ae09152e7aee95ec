"""Learned supermask and edge-popup: accuracy far above chance on digits, the run store they
write (read back by the store functions and recomputed from the stored tensors), the
straight-through gradients, resume after a cancel, and the config keys."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import merged, mlp_logits, undecided
from safetensors.numpy import load_file as load_np

from engine.config import ConfigError, from_dict, resolve_schedule
from engine.datasets import load_dataset
from engine.models import build_model
from engine.run_index import list_runs
from engine.runner import execute
from engine.store import create_run, read_summary
from engine.supermasks import MaskTrainer, segment_bounds
from engine.training import TrainJob, generator, train_round

PRUNABLE = {"fc_layers.0.weight", "fc_layers.1.weight", "fc.weight"}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", val_size=300)


def _config(experiment: str, **sections):
    raw = {"name": experiment, "description": "t", "device": "cpu", "experiment": experiment,
           "data": {"name": "digits", "val_size": 300},
           # Zhou et al. used Glorot-normal weights; Ramanujan et al. signed Kaiming constants.
           "model": {"name": "mlp", "hidden": [128, 128],
                     "init": "glorot-normal" if experiment == "supermask" else "kaiming-normal"},
           "train": {"optimizer": "sgd", "lr": 100.0 if experiment == "supermask" else 0.1, "momentum": 0.9,
                     "batch_size": 64, "iterations": 300, "eval_every": 100},
           "supermask": {"rounds": 3, "weights": "signed_constant"}}
    return from_dict(merged(raw, **sections))


def _run(tmp_path, digits, experiment, **sections):
    run_dir = create_run(_config(experiment, **sections), tmp_path / "runs", preset=experiment)
    assert execute(run_dir, data=digits) == "done"
    return run_dir


@pytest.fixture(scope="module")
def dense_accuracy(digits):
    """The same MLP trained normally: what a supermask should come close to."""
    config = from_dict({"model": {"hidden": [128, 128]}, "train": {"iterations": 300, "eval_every": 300,
                                                                     "batch_size": 64, "lr": 2e-3}})
    model = build_model("mlp", input_shape=digits.input_shape, num_classes=10, hidden=[128, 128],
                        generator=generator(0, "init"))
    job = TrainJob(data=digits, config=config.train, schedule=resolve_schedule(config, len(digits.train_x)),
                   masks={}, frozen=None, seed=0)
    return train_round(model, job).test_accuracy_final


@pytest.mark.parametrize("experiment", ["supermask", "edge-popup"])
def test_mask_training_far_above_chance_close_to_trained(tmp_path, digits, dense_accuracy, experiment):
    run_dir = _run(tmp_path, digits, experiment)
    rounds = read_summary(run_dir)["trials"][0]["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    last = rounds[-1]
    assert dense_accuracy > 0.9
    assert last["expected_mask_accuracy"] > 0.8 and last["sampled_mask_accuracy"] > 0.8  # chance is 0.1
    assert last["expected_mask_accuracy"] > dense_accuracy - 0.08
    assert last["iterations"] == [200, 300] and last["early_stop_iteration"] == 100
    if experiment == "edge-popup":
        for r in rounds:  # exactly the top k per layer
            assert r["weights_remaining"] == pytest.approx(0.5, abs=1e-3)
            assert last["sampled_mask_accuracy"] == last["expected_mask_accuracy"]
    else:
        assert 0.2 < last["weights_remaining"] < 0.8
        assert rounds[0]["supermask_accuracy"] == pytest.approx(0.1, abs=0.06)  # σ(0) = ½: the expected mask is empty


def test_run_store_is_readable_and_recomputes_from_the_stored_tensors(tmp_path, digits):
    run_dir = _run(tmp_path, digits, "supermask", train={"iterations": 120, "eval_every": 40}, supermask={"rounds": 2})
    (info,) = list_runs(tmp_path / "runs")
    assert info.state == "done" and info.rounds_done == 2 and info.best_accuracy > 0.5
    summary = read_summary(run_dir)
    assert summary["config"]["experiment"] == "supermask"
    assert [p["n"] for p in summary["curve"]] == [1, 1] and "sampled_mask_accuracy_mean" in summary["curve"][0]
    x, y = digits.test_x.numpy(), digits.test_y.numpy()
    init = load_np(str(run_dir / "trial-0" / "init.safetensors"))
    sigma = {"fc_layers.0.weight": np.sqrt(2 / (64 + 128)), "fc_layers.1.weight": np.sqrt(2 / 256),
             "fc.weight": np.sqrt(2 / 138)}  # Glorot: √(2 / (fan_in + fan_out))
    for r in range(2):
        rdir = run_dir / "trial-0" / f"round-{r}"
        for name in ("mask", "start", "final", "scores", "optimizer"):
            assert (rdir / f"{name}.safetensors").is_file(), name
        mask, start, final = (load_np(str(rdir / f"{n}.safetensors")) for n in ("mask", "start", "final"))
        scores = load_np(str(rdir / "scores.safetensors"))
        result = json.loads((rdir / "result.json").read_text())
        assert set(mask) == PRUNABLE and all(m.dtype == np.bool_ for m in mask.values())
        for name in PRUNABLE:
            # signed constant weights, the expected mask is σ(logit) > ½, rescaled by size / kept
            assert np.allclose(start[name], np.where(init[name] >= 0, 1.0, -1.0) * sigma[name])
            assert np.array_equal(mask[name], scores[name] > 0)  # σ(s) > ½
            scale = mask[name].size / mask[name].sum()
            assert np.allclose(final[name], start[name] * mask[name] * scale, rtol=1e-6)
        logits, bound = mlp_logits(final, x)  # float64, and where float32 rounding may decide
        accuracy = float((logits.argmax(1) == y).mean())
        assert abs(accuracy - result["test_accuracy_final"]) <= float(undecided(logits, bound).mean()) + 1e-12
        evals = json.loads((rdir / "evals.json").read_text())
        assert [e["iteration"] for e in evals] == [0, 40, 60]  # within the round, as for IMP
        assert [e["global_iteration"] for e in evals] == [60 * r, 60 * r + 40, 60 * r + 60]
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds.count("round_start") == kinds.count("round_end") == 2 and kinds[-1] == "run_end"
    assert not list(run_dir.rglob("checkpoint.*"))


def test_cancel_then_resume_matches_an_uninterrupted_run(tmp_path, digits):
    sections = {"train": {"iterations": 90, "eval_every": 15}, "supermask": {"rounds": 3}}
    whole = _run(tmp_path / "a", digits, "supermask", **sections)
    run_dir = create_run(_config("supermask", **sections), tmp_path / "b", preset="cut")
    seen = []
    assert execute(run_dir, data=digits, on_event=seen.append, should_stop=lambda: len(seen) > 8) == "cancelled"
    assert (run_dir / "trial-0" / "round-1" / "checkpoint.json").is_file()  # stopped mid-round 1
    assert execute(run_dir, data=digits) == "done"
    for r in range(3):
        for name in ("mask", "scores", "final", "optimizer"):
            a = load_np(str(whole / "trial-0" / f"round-{r}" / f"{name}.safetensors"))
            b = load_np(str(run_dir / "trial-0" / f"round-{r}" / f"{name}.safetensors"))
            assert all(np.array_equal(a[k], b[k]) for k in a), (r, name)
        ra = json.loads((whole / "trial-0" / f"round-{r}" / "result.json").read_text())
        rb = json.loads((run_dir / "trial-0" / f"round-{r}" / "result.json").read_text())
        assert ra["sampled_mask_accuracy"] == rb["sampled_mask_accuracy"] and ra["layers"] == rb["layers"]


def test_straight_through_gradients():
    model = torch.nn.Linear(4, 3, bias=False)
    weights = {"weight": torch.randn(3, 4)}
    logits = {"weight": torch.randn(3, 4)}
    trainer = MaskTrainer(model, weights, logits, "supermask", 0.5, rescale=False)
    m = trainer.masks("train", torch.Generator().manual_seed(0))["weight"]
    assert set(m.detach().unique().tolist()) <= {0.0, 1.0}
    coefficient = torch.randn(3, 4)
    (m * coefficient).sum().backward()
    p = torch.sigmoid(logits["weight"])
    assert torch.allclose(trainer.scores["weight"].grad, coefficient * p * (1 - p))

    scores = {"weight": torch.tensor([[3.0, -0.5, 1.0, -4.0], [0.1, 0.2, -0.3, 0.4], [5.0, 6.0, -7.0, 8.0]])}
    popup = MaskTrainer(model, weights, scores, "edge-popup", 0.5, rescale=True)
    m = popup.masks("train")["weight"]
    kept = scores["weight"].abs().flatten().argsort(descending=True)[:6]
    expected = torch.zeros(12)
    expected[kept] = 1
    assert torch.equal(m.detach().flatten(), expected)
    (m * coefficient).sum().backward()
    assert torch.allclose(popup.scores["weight"].grad, coefficient * scores["weight"].sign())
    assert popup.scale("weight", m) == 2.0


def test_segments_cover_the_training():
    assert segment_bounds(300, 3) == [0, 100, 200, 300]
    assert segment_bounds(10, 4) == [0, 2, 5, 8, 10]


@pytest.mark.parametrize("raw, key", [
    ({"experiment": "pruning"}, "experiment"),
    ({"supermask": {"k": 0}}, "supermask.k"),
    ({"supermask": {"k": 1.5}}, "supermask.k"),
    ({"supermask": {"weights": "random"}}, "supermask.weights"),
    ({"supermask": {"score_init": "zeros"}}, "supermask.score_init"),
    ({"supermask": {"rounds": 0}}, "supermask.rounds"),
    ({"experiment": "supermask", "train": {"iterations": 3}, "supermask": {"rounds": 5}}, "supermask.rounds"),
    ({"supermask": {"rescale": 1}}, "supermask.rescale"),
])
def test_supermask_keys_are_validated(raw, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        from_dict(raw)
    config = from_dict({"experiment": "edge-popup", "supermask": {"k": 1}})
    assert config.supermask.k == 1.0 and config.prune.rounds == 5
