"""engine.actions against the definitions, on small tensors with hand-computed expectations."""

from __future__ import annotations

import itertools

import pytest
import torch

from engine.actions import (
    MASK0_ACTIONS,
    MASK1_ACTIONS,
    ActionError,
    RoundStart,
    round_start,
)

MASK1 = ["rewind", "random_reinit", "random_reshuffle", "signed_reinit", "signed_reshuffle",
         "signed_constant", "rand_signed_constant"]
MASK0 = ["zero", "freeze_init", "freeze_init_zero_mask", "freeze_init_zero_all"]

T, F = True, False

# layer "a": 2x3, kept at 4 positions; layer "b": 5 entries, 3 kept
MASK = {"a": torch.tensor([[T, F, T], [F, T, T]]), "b": torch.tensor([F, T, T, F, T])}
REWIND = {"a": torch.tensor([[1.0, -2.0, -3.0], [4.0, 0.0, 6.0]]),
          "b": torch.tensor([10.0, -20.0, 30.0, -40.0, 50.0])}
FRESH = {"a": torch.tensor([[-0.1, 0.2, 0.3], [-0.4, -0.5, 0.6]]),
         "b": torch.tensor([0.7, 0.8, -0.9, 1.1, -1.2])}
PREV_START = {"a": torch.tensor([[1.0, -2.0, -3.0], [4.0, 5.0, 6.0]]),
              "b": torch.tensor([10.0, -20.0, 30.0, -40.0, 50.0])}
# magnitude shrank at: a[0,0] (kept), a[0,1] (pruned), a[1,2] (kept); b[0] (pruned), b[2] (kept)
PREV_FINAL = {"a": torch.tensor([[0.5, -1.0, 3.5], [-4.5, 5.0, -5.9]]),
              "b": torch.tensor([-9.0, -21.0, 29.0, 40.0, 50.5])}
STD = {"a": 0.25, "b": 0.5}


def start(mask1="rewind", mask0="zero", seed=0, **over):
    args = dict(mask1=mask1, mask0=mask0, mask=MASK, rewind_point=REWIND, prev_start=PREV_START,
                prev_final=PREV_FINAL, fresh=FRESH, init_std=STD,
                generator=torch.Generator().manual_seed(seed))
    args.update(over)
    return round_start(**args)


def sign(x):
    """Zhou's np.sign: -1, 0, +1."""
    return torch.where(x > 0, 1.0, torch.where(x < 0, -1.0, 0.0))


def test_registries():
    assert sorted(MASK1_ACTIONS) == sorted(MASK1)
    assert sorted(MASK0_ACTIONS) == sorted(MASK0)


# --------------------------------------------------------------------------- mask-1

def test_rewind_zero_is_frankle_carbin():
    r = start("rewind", "zero")
    assert isinstance(r, RoundStart)
    assert r.weights["a"].tolist() == [[1.0, 0.0, -3.0], [0.0, 0.0, 6.0]]
    assert r.weights["b"].tolist() == [0.0, -20.0, 30.0, 0.0, 50.0]
    for n in MASK:
        assert not r.frozen[n].any()
        assert torch.equal(r.trainable[n], MASK[n]) and r.trainable[n].dtype == torch.bool


def test_random_reinit_takes_fresh_at_kept():
    r = start("random_reinit", "zero")
    assert torch.equal(r.weights["a"], torch.tensor([[-0.1, 0.0, 0.3], [0.0, -0.5, 0.6]]))
    assert torch.equal(r.weights["b"], torch.tensor([0.0, 0.8, -0.9, 0.0, -1.2]))


def test_random_reshuffle_permutes_kept_values_within_each_layer():
    seen = set()
    for seed in range(30):
        r = start("random_reshuffle", "freeze_init", seed=seed)
        for n in MASK:
            kept = r.weights[n][MASK[n]]
            assert sorted(kept.tolist()) == sorted(REWIND[n][MASK[n]].tolist())
            # pruned positions are the mask-0 action's business (here: frozen at the rewind point)
            assert torch.equal(r.weights[n][~MASK[n]], REWIND[n][~MASK[n]])
        seen.add(tuple(r.weights["a"][MASK["a"]].tolist()))
    assert len(seen) > 5, "the permutation should vary with the seed"
    assert torch.equal(start("random_reshuffle", seed=4).weights["a"],
                       start("random_reshuffle", seed=4).weights["a"])


def test_signed_reinit():
    r = start("signed_reinit", "zero")
    for n in MASK:
        m = MASK[n]
        expected = FRESH[n][m].abs() * sign(REWIND[n][m])
        assert torch.equal(r.weights[n][m], expected)
    assert r.weights["a"][1, 1].item() == 0.0          # rewind 0: sign(0) = 0 as in np.sign


def test_signed_reshuffle_moves_magnitudes_keeps_destination_sign():
    seen = set()
    for seed in range(30):
        r = start("signed_reshuffle", "zero", seed=seed)
        for n in MASK:
            m = MASK[n]
            kept = r.weights[n][m]
            dest = sign(REWIND[n][m])
            # magnitudes permuted, times the sign of the destination (0 where θ is 0)
            moved = sorted(REWIND[n][m].abs().tolist())
            for value, s in zip(kept.tolist(), dest.tolist()):
                if s == 0:
                    assert value == 0
                else:
                    assert value * s > 0 or value == 0
                    moved.remove(abs(value))
            assert not r.weights[n][~m].any()
        seen.add(tuple(r.weights["a"][MASK["a"]].tolist()))
    assert len(seen) > 5


def test_signed_constant():
    r = start("signed_constant", "zero")
    assert r.weights["a"].tolist() == [[0.25, 0.0, -0.25], [0.0, 0.0, 0.25]]   # sign(0) = 0
    assert r.weights["b"].tolist() == [0.0, -0.5, 0.5, 0.0, 0.5]


def test_rand_signed_constant():
    big = {"w": torch.ones(2000, dtype=torch.bool)}
    point = {"w": torch.ones(2000)}
    r = round_start(mask1="rand_signed_constant", mask0="zero", mask=big, rewind_point=point,
                    prev_start=None, prev_final=None, fresh=None, init_std={"w": 0.1},
                    generator=torch.Generator().manual_seed(0))
    w = r.weights["w"]
    assert torch.allclose(w.abs(), torch.full_like(w, 0.1))
    assert 900 < int((w > 0).sum()) < 1100, "signs are random, not sign(θ0) (all + here)"
    r2 = round_start(mask1="rand_signed_constant", mask0="zero", mask=big, rewind_point=point,
                     prev_start=None, prev_final=None, fresh=None, init_std={"w": 0.1},
                     generator=torch.Generator().manual_seed(0))
    assert torch.equal(w, r2.weights["w"])
    small = start("rand_signed_constant", "zero")
    assert torch.allclose(small.weights["b"][MASK["b"]].abs(), torch.full((3,), 0.5))
    assert not small.weights["b"][~MASK["b"]].any()


# --------------------------------------------------------------------------- mask-0

def test_freeze_init():
    r = start("rewind", "freeze_init")
    assert r.weights["a"].tolist() == REWIND["a"].tolist()
    assert r.frozen["a"].tolist() == [[0.0, -2.0, 0.0], [4.0, 0.0, 0.0]]   # 0 at kept
    assert r.frozen["b"].tolist() == [10.0, 0.0, 0.0, -40.0, 0.0]


def test_freeze_init_zero_mask_variant_1():
    r = start("rewind", "freeze_init_zero_mask")
    # pruned a[0,1] shrank (2 -> 1) -> 0; pruned a[1,0] grew (4 -> 4.5) -> frozen at 4
    assert r.frozen["a"].tolist() == [[0.0, 0.0, 0.0], [4.0, 0.0, 0.0]]
    assert r.weights["a"].tolist() == [[1.0, 0.0, -3.0], [4.0, 0.0, 6.0]]  # kept: rewound
    # pruned b[0] shrank (10 -> 9) -> 0; pruned b[3] same magnitude (40 -> 40) -> frozen
    assert r.frozen["b"].tolist() == [0.0, 0.0, 0.0, -40.0, 0.0]
    assert r.weights["b"].tolist() == [0.0, -20.0, 30.0, -40.0, 50.0]


def test_freeze_init_zero_all_variant_2():
    r = start("rewind", "freeze_init_zero_all")
    # kept a[0,0] shrank (1 -> .5) and a[1,2] shrank (6 -> 5.9): 0 but still trainable
    assert r.weights["a"].tolist() == [[0.0, 0.0, -3.0], [4.0, 0.0, 0.0]]
    assert r.frozen["a"].tolist() == [[0.0, 0.0, 0.0], [4.0, 0.0, 0.0]]
    assert torch.equal(r.trainable["a"], MASK["a"])
    # kept b[2] shrank (30 -> 29) -> 0; b[1], b[4] grew -> rewound
    assert r.weights["b"].tolist() == [0.0, -20.0, 0.0, -40.0, 50.0]


def test_zero_all_applies_after_mask1():
    r = start("signed_constant", "freeze_init_zero_all")
    assert r.weights["a"].tolist() == [[0.0, 0.0, -0.25], [4.0, 0.0, 0.0]]


def test_a_zeroed_weight_stays_zero():
    """A weight that started the previous round at 0 was zeroed: frozen at 0, and under
    variant 2 a kept one starts at 0 again, though |0| < |final| is no shrink."""
    prev_start = {"a": torch.tensor([[0.0, 0.0, -3.0], [4.0, 5.0, 6.0]]), "b": PREV_START["b"]}
    prev_final = {"a": torch.tensor([[0.7, 0.0, -3.0], [4.0, 5.0, 6.0]]), "b": PREV_START["b"]}
    for mask0 in ("freeze_init_zero_mask", "freeze_init_zero_all"):
        r = start("rewind", mask0, prev_start=prev_start, prev_final=prev_final)
        assert r.frozen["a"][0, 1].item() == 0.0 and r.weights["a"][0, 1].item() == 0.0
        assert r.frozen["a"][1, 0].item() == 4.0
    assert start("rewind", "freeze_init_zero_all", prev_start=prev_start,
                 prev_final=prev_final).weights["a"][0, 0].item() == 0.0
    assert start("rewind", "freeze_init_zero_mask", prev_start=prev_start,
                 prev_final=prev_final).weights["a"][0, 0].item() == 1.0   # kept: rewound


# --------------------------------------------------------------------------- all combinations

@pytest.mark.parametrize("mask1,mask0", list(itertools.product(MASK1, MASK0)))
def test_every_combination_is_consistent(mask1, mask0):
    before = {n: t.clone() for n, t in REWIND.items()}
    r = start(mask1, mask0, seed=3)
    for n, m in MASK.items():
        assert r.weights[n].shape == m.shape and r.weights[n].dtype == REWIND[n].dtype
        assert torch.equal(r.trainable[n], m)
        assert torch.equal(r.weights[n][~m], r.frozen[n][~m]), "pruned positions hold frozen"
        assert not r.frozen[n][m].any(), "frozen is 0 at kept positions"
        assert torch.equal(REWIND[n], before[n]), "inputs untouched"
    # the kept positions do not depend on the mask-0 action, except zero_all's shrunk ones
    ref = start(mask1, "zero", seed=3)
    for n, m in MASK.items():
        keep = m.clone()
        if mask0 == "freeze_init_zero_all":
            keep &= ~((PREV_FINAL[n].abs() < PREV_START[n].abs()) | (PREV_START[n] == 0))
        assert torch.equal(r.weights[n][keep], ref.weights[n][keep])


# --------------------------------------------------------------------------- errors

def test_unknown_mask1_lists_allowed():
    with pytest.raises(ActionError) as e:
        start("reset")
    assert "'reset'" in str(e.value)
    for name in MASK1:
        assert name in str(e.value)


def test_unknown_mask0_lists_allowed():
    with pytest.raises(ActionError) as e:
        start("rewind", "freeze")
    assert "'freeze'" in str(e.value)
    for name in MASK0:
        assert name in str(e.value)


def test_missing_inputs():
    with pytest.raises(ActionError, match="fresh"):
        start("random_reinit", fresh=None)
    with pytest.raises(ActionError, match="prev_start"):
        start("rewind", "freeze_init_zero_mask", prev_start=None)
    with pytest.raises(ActionError, match="init_std"):
        start("signed_constant", init_std={"a": 0.1})
    with pytest.raises(ActionError, match="'b'"):
        start(rewind_point={"a": REWIND["a"]})
    # not needed -> may be None
    r = start("rewind", "freeze_init", fresh=None, prev_start=None, prev_final=None,
              init_std=None)
    assert torch.equal(r.weights["a"], REWIND["a"])


def test_mismatched_shapes():
    with pytest.raises(ActionError) as e:
        start(fresh={"a": torch.zeros(3, 2), "b": FRESH["b"]})
    assert "'a'" in str(e.value) and "(3, 2)" in str(e.value)
