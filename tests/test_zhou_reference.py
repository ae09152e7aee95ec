"""Mask-0 actions and sign criteria against a numpy port of Zhou et al.'s code, over rounds.

The port is written from a reading of uber-research/deconstructing-lottery-tickets
(`train_lottery.py`: the `freeze_init*` model types; `get_weight_init.py`: the scores and the
per-layer cut) and calls no engine code.  Their iterative runs chain rounds through the saved
weights: a round's "initial weights" are the weights the previous round started from, and a
frozen position holds its loaded value through training.  Training is replaced by a seeded
random step of the kept positions, applied alike to the engine's chain and the port's.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import merged
from safetensors.numpy import load_file as load_np

from engine.actions import round_start
from engine.config import from_dict
from engine.criteria import next_mask
from engine.runner import execute
from engine.store import create_run

SHAPES = {"l1": (20, 30), "l2": (10, 20)}
FREEZES = ["freeze_init", "freeze_init_zero_mask", "freeze_init_zero_all"]


# --------------------------------------------------------------------------- the port

def zhou_next_start(model_type: str, prev_start: np.ndarray, prev_final: np.ndarray, mask: np.ndarray):
    """train_lottery.py, one layer, --exp none: (weights loaded for the round, frozen values).

    `initial` is the previous round's start; the variants zero it where |start| > |final|
    (variant 1 at mask-0 positions only, variant 2 everywhere); the frozen network uses
    `initial` at mask-0 positions and trains the mask-1 ones from `initial`.
    """
    initial = prev_start.copy()
    shrank = np.abs(prev_start) > np.abs(prev_final)
    if model_type == "freeze_init_zero_mask":
        zeroed = np.where(shrank, 0.0, prev_start)
        initial[~mask] = zeroed[~mask]
    elif model_type == "freeze_init_zero_all":
        initial = np.where(shrank, 0.0, prev_start).astype(prev_start.dtype)
    frozen = np.where(mask, 0.0, initial).astype(prev_start.dtype)
    return initial, frozen


def zhou_scores(method: str, w_i: np.ndarray, w_f: np.ndarray) -> np.ndarray:
    """get_weight_init.py: np.sign compares the signs; the failing weights score 0."""
    same = np.sign(w_i) == np.sign(w_f)
    if method == "magnitude_increase_same_sign":
        score = np.abs(w_f) - np.abs(w_i)
        score[~same] = 0
    elif method == "large_final_same_sign":
        score = np.abs(w_f)
        score[~same] = 0
    elif method == "large_final_diff_sign":
        score = np.abs(w_f)
        score[same] = 0
    else:
        raise AssertionError(method)
    return score


def zhou_cut(score: np.ndarray, mask: np.ndarray, percentile: float):
    """get_weight_init.get_mask_by_layer_by_weight: the int(survivors * p / 100) lowest scores of
    the survivors go (already pruned ones sit at 9999), ties in a random order.  Returns the
    flat indices that must go, those that may go (the ties at the cut) and how many go."""
    w = score.reshape(-1).astype(np.float64)
    alive = mask.reshape(-1)
    w = np.where(alive, w, 9999.0)
    prune_num = int(np.sum(alive) * percentile / 100)
    cut = np.sort(w)[prune_num - 1]
    must = set(np.flatnonzero(w < cut).tolist())
    may = set(np.flatnonzero(w <= cut).tolist())
    return must, may, prune_num


def fake_training(start: np.ndarray, mask: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Kept positions move (towards 0, away from it, or off 0); frozen positions do not."""
    return np.where(mask, start + step, start).astype(np.float32)


# --------------------------------------------------------------------------- helpers

def engine_start(mask0, mask, theta0, prev_start, prev_final, mask1="rewind"):
    t = lambda d: {n: torch.from_numpy(v) for n, v in d.items()}  # noqa: E731
    begin = round_start(mask1=mask1, mask0=mask0, mask=t(mask), rewind_point=t(theta0),
                        prev_start=t(prev_start), prev_final=t(prev_final), fresh=None, init_std=None,
                        generator=torch.Generator().manual_seed(0))
    return ({n: v.numpy() for n, v in begin.weights.items()}, {n: v.numpy() for n, v in begin.frozen.items()})


def draws(seed):
    rng = np.random.default_rng(seed)
    theta0 = {n: rng.normal(size=s).astype(np.float32) for n, s in SHAPES.items()}
    return rng, theta0


# --------------------------------------------------------------------------- mask-0 actions

@pytest.mark.parametrize("mask0", FREEZES)
@pytest.mark.parametrize("seed", [0, 1])
def test_freeze_actions_equal_zhou_over_five_rounds(mask0, seed):
    rng, theta0 = draws(seed)
    mask = {n: np.ones(s, dtype=bool) for n, s in SHAPES.items()}
    start_e = {n: v.copy() for n, v in theta0.items()}
    start_z = {n: v.copy() for n, v in theta0.items()}
    step = {n: rng.normal(scale=0.4, size=s).astype(np.float32) for n, s in SHAPES.items()}
    final_e = {n: fake_training(start_e[n], mask[n], step[n]) for n in SHAPES}
    final_z = {n: fake_training(start_z[n], mask[n], step[n]) for n in SHAPES}
    zeros_carried = 0  # zeroed weights that a shrink test alone would have brought back
    for r in range(1, 6):
        mask = {n: m & (rng.random(m.shape) > 0.25) for n, m in mask.items()}
        new_e, frozen_e = engine_start(mask0, mask, theta0, start_e, final_e)
        for n in SHAPES:
            new_z, frozen_z = zhou_next_start(mask0, start_z[n], final_z[n], mask[n])
            assert np.array_equal(new_e[n], new_z), (mask0, r, n)
            assert np.array_equal(frozen_e[n][~mask[n]], frozen_z[~mask[n]]), (mask0, r, n)
            # zeros of the start never come back
            if mask0 != "freeze_init":
                assert np.all(new_z[start_z[n] == 0] == 0)
                zeros_carried += int(np.sum(start_z[n] == 0))
            start_z[n] = new_z
        start_e = new_e
        step = {n: rng.normal(scale=0.4, size=s).astype(np.float32) for n, s in SHAPES.items()}
        final_e = {n: fake_training(start_e[n], mask[n], step[n]) for n in SHAPES}
        final_z = {n: fake_training(start_z[n], mask[n], step[n]) for n in SHAPES}
    if mask0 != "freeze_init":
        assert zeros_carried > 100, "the chain must hold zeroed weights into later rounds"


def test_variant_2_zeroed_kept_weights_start_every_later_round_at_zero():
    rng, theta0 = draws(3)
    mask = {n: np.ones(s, dtype=bool) for n, s in SHAPES.items()}
    start = {n: v.copy() for n, v in theta0.items()}
    final = {n: fake_training(start[n], mask[n], rng.normal(scale=0.4, size=s).astype(np.float32))
             for n, s in SHAPES.items()}
    zero_kept = {n: np.zeros(s, dtype=bool) for n, s in SHAPES.items()}
    for r in range(1, 5):
        mask = {n: m & (rng.random(m.shape) > 0.2) for n, m in mask.items()}
        start, _ = engine_start("freeze_init_zero_all", mask, theta0, start, final)
        for n in SHAPES:
            assert np.all(start[n][zero_kept[n] & mask[n]] == 0), r
            zero_kept[n] |= mask[n] & (start[n] == 0)
        final = {n: fake_training(start[n], mask[n], rng.normal(scale=0.4, size=s).astype(np.float32))
                 for n, s in SHAPES.items()}
    assert sum(int(z.sum()) for z in zero_kept.values()) > 50


# --------------------------------------------------------------------------- sign criteria

@pytest.mark.parametrize("criterion", ["magnitude_increase_same_sign", "large_final_same_sign",
                                       "large_final_diff_sign"])
def test_sign_criteria_equal_zhou_over_three_rounds_of_variant_2(criterion):
    """Layer-wise, half the survivors per round (64/128 weights: counts stay even, so Zhou's
    int() and the engine's ceil() agree); starts from variant 2, so exact zeros are in w_i."""
    rng = np.random.default_rng(7)
    shapes = {"a": (8, 8), "b": (16, 8)}
    theta0 = {n: rng.normal(size=s).astype(np.float32) for n, s in shapes.items()}
    mask = {n: np.ones(s, dtype=bool) for n, s in shapes.items()}
    start = {n: v.copy() for n, v in theta0.items()}
    final = {n: fake_training(start[n], mask[n], rng.normal(scale=0.6, size=s).astype(np.float32))
             for n, s in shapes.items()}
    flipped_over_shrunk = 0
    for r in range(1, 4):
        new = next_mask(criterion=criterion, scope="layerwise", rates={"fc": 0.5},
                        kinds={n: "fc" for n in shapes},
                        mask={n: torch.from_numpy(m) for n, m in mask.items()},
                        w_init={n: torch.from_numpy(v) for n, v in start.items()},
                        w_final={n: torch.from_numpy(v) for n, v in final.items()},
                        generator=torch.Generator().manual_seed(r))
        new = {n: v.numpy() for n, v in new.items()}
        for n in shapes:
            score = zhou_scores(criterion, start[n].reshape(-1), final[n].reshape(-1))
            must, may, count = zhou_cut(score, mask[n], 50.0)
            gone = set(np.flatnonzero(mask[n].reshape(-1) & ~new[n].reshape(-1)).tolist())
            assert len(gone) == count and must <= gone <= may, (criterion, r, n)
            same = np.sign(start[n].reshape(-1)) == np.sign(final[n].reshape(-1))
            shrank = np.abs(final[n].reshape(-1)) < np.abs(start[n].reshape(-1))
            kept = new[n].reshape(-1)
            if kept[~same].any() and (mask[n].reshape(-1) & ~kept & same & shrank).any():
                flipped_over_shrunk += 1
        mask = new
        start, _ = engine_start("freeze_init_zero_all", mask, theta0, start, final)
        final = {n: fake_training(start[n], mask[n], rng.normal(scale=0.6, size=s).astype(np.float32))
                 for n, s in shapes.items()}
    if criterion == "magnitude_increase_same_sign":
        assert flipped_over_shrunk > 0, "a flipped weight (score 0) must outrank a shrunk same-sign one"


# --------------------------------------------------------------------------- whole runs

@pytest.mark.parametrize("mask0", ["freeze_init_zero_mask", "freeze_init_zero_all"])
def test_runs_store_zhou_starts_round_after_round(tmp_path, mask0):
    """A 3-round run on digits: each stored start is the port's from the stored previous round."""
    raw = {"name": "tiny", "device": "cpu", "data": {"name": "digits", "val_size": 200},
           "model": {"name": "mlp", "hidden": [32]},
           "train": {"iterations": 60, "eval_every": 30, "batch_size": 40, "lr": 3e-3},
           "prune": {"rounds": 3, "rate": {"fc": 0.3, "output": 0.2}, "mask0": mask0}}
    run_dir = create_run(from_dict(merged(raw)), tmp_path / "runs", preset="tiny")
    assert execute(run_dir) == "done"
    trial = run_dir / "trial-0"
    rounds = [{kind: load_np(str(trial / f"round-{r}" / f"{kind}.safetensors")) for kind in ("start", "final", "mask")}
              for r in range(4)]
    zeros_seen = 0
    for r in range(1, 4):
        prev, now = rounds[r - 1], rounds[r]
        for name, mask in now["mask"].items():
            expected, _ = zhou_next_start(mask0, prev["start"][name], prev["final"][name], mask.astype(bool))
            assert np.array_equal(now["start"][name], expected), (r, name)
            zeros_seen += int(np.sum(prev["start"][name] == 0))
    assert zeros_seen > 0
