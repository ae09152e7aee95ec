"""prune.count = "openlth" against a numpy port of OpenLTH's pruning/sparse_global.py, over rounds.

The port is written from a reading of facebookresearch/open_lth (`pruning/sparse_global.py`,
`pruning/mask.py`, `pruning/pruned_model.py`) and calls no engine code: N counts the survivors
of every prunable tensor, ignored ones included; the threshold is entry ceil(f·N) of the sorted
|w| of the non-ignored survivors; a survivor stays iff |w| > threshold.  Pruned weights are 0
in the trained model (PrunedModel multiplies them by the mask).  Masks are int32 here: every
level prunes `Mask.load(...)` of a mask saved with `.int()` (lottery/runner.py), so N is an
integer and f·N a float64 product.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import merged

from engine.config import ConfigError, from_dict
from engine.criteria import PruningError, next_mask

SHAPES = {"conv1.weight": (8, 3, 3, 3), "conv2.weight": (8, 8, 3, 3), "fc.weight": (40, 72), "out.weight": (10, 40)}
KINDS = {"conv1.weight": "conv", "conv2.weight": "conv", "fc.weight": "fc", "out.weight": "output"}


def openlth_sparse_global(fraction: float, weights: dict, mask: dict, ignore: set) -> dict:
    """sparse_global.Strategy.prune, as read: a new 0/1 mask per tensor."""
    remaining = np.sum([np.sum(v) for v in mask.values()])
    k = np.ceil(fraction * remaining).astype(int)
    prunable = [n for n in weights if n not in ignore]
    vector = np.concatenate([weights[n][mask[n] == 1] for n in prunable])
    threshold = np.sort(np.abs(vector))[k]
    new = {n: np.where(np.abs(weights[n]) > threshold, mask[n], np.zeros_like(weights[n])) for n in prunable}
    for n in mask:
        new.setdefault(n, mask[n])
    return new


def trained(rng, mask, decimals=None):
    """Weights of a 'trained' pruned model: 0 where pruned; rounded to make ties when asked."""
    out = {}
    for n, s in SHAPES.items():
        w = rng.normal(scale=0.1, size=s).astype(np.float32)
        if decimals is not None:
            w = np.round(w, decimals).astype(np.float32)
        out[n] = w * mask[n].astype(np.float32)
    return out


def engine(scope, rates, mask, weights, steps=1, kinds=KINDS):
    t = lambda d: {n: torch.from_numpy(np.ascontiguousarray(v)) for n, v in d.items()}  # noqa: E731
    new = next_mask(criterion="large_final", scope=scope, rates=rates, kinds=kinds,
                    mask={n: torch.from_numpy(m.astype(bool)) for n, m in mask.items()},
                    w_init=t(weights), w_final=t(weights), generator=torch.Generator().manual_seed(0),
                    steps=steps, count="openlth")
    return {n: v.numpy() for n, v in new.items()}


@pytest.mark.parametrize("decimals", [None, 3, 2])
@pytest.mark.parametrize("rates,ignore", [
    ({"conv": 0.2, "fc": 0.2, "output": 0.2}, set()),
    ({"conv": 0.2, "fc": 0.2, "output": 0.0}, {"out.weight"}),
    ({"conv": 0.0, "fc": 0.15, "output": 0.15}, {"conv1.weight", "conv2.weight"}),
])
def test_global_equals_sparse_global_entry_for_entry_over_six_rounds(rates, ignore, decimals):
    rng = np.random.default_rng(0 if decimals is None else decimals)
    fraction = max(rates.values())
    mask = {n: np.ones(s, dtype=np.int32) for n, s in SHAPES.items()}
    tied = 0
    for r in range(6):
        weights = trained(rng, mask, decimals)
        expected = openlth_sparse_global(fraction, weights, mask, ignore)
        got = engine("global", rates, mask, weights)
        for n in SHAPES:
            assert np.array_equal(got[n], expected[n].astype(bool)), (r, n)
        before = sum(int(m.sum()) for m in mask.values())
        after = sum(int(m.sum()) for m in expected.values())
        tied += (before - after) - (int(np.ceil(fraction * before)) + 1)
        mask = {n: expected[n].astype(np.int32) for n in SHAPES}
    if decimals == 2:
        assert tied > 0, "rounded weights must put ties at the threshold (all of which go)"


def test_float_product_as_numpy_computes_it():
    """0.07 × 100 is 7.000000000000001 in float64: OpenLTH's ceil makes k = 8, so 9 go."""
    w = {"w": (np.arange(1, 101, dtype=np.float32) / 100)}
    mask = {"w": np.ones(100, dtype=np.int32)}
    got = engine("global", {"fc": 0.07}, mask, w, kinds={"w": "fc"})
    assert int(got["w"].sum()) == 91
    assert np.array_equal(got["w"], openlth_sparse_global(0.07, w, mask, set())["w"].astype(bool))


def test_layerwise_is_the_rule_per_layer_and_oneshot_repeats_it():
    rng = np.random.default_rng(5)
    rates = {"conv": 0.2, "fc": 0.3, "output": 0.1}
    mask = {n: np.ones(s, dtype=np.int32) for n, s in SHAPES.items()}
    for r in range(4):
        weights = trained(rng, mask, 2)
        got = engine("layerwise", rates, mask, weights)
        for n in SHAPES:
            alone = openlth_sparse_global(rates[KINDS[n]], {n: weights[n]}, {n: mask[n]}, set())[n]
            assert np.array_equal(got[n], alone.astype(bool)), (r, n)
        mask = {n: got[n].astype(np.int32) for n in SHAPES}
    weights = trained(rng, mask, 2)
    expected = dict(mask)
    for _ in range(3):
        expected = openlth_sparse_global(0.2, weights, expected, {"out.weight"})
    got = engine("global", {"conv": 0.2, "fc": 0.2, "output": 0.0}, mask, weights, steps=3)
    for n in SHAPES:
        assert np.array_equal(got[n], expected[n].astype(bool)), n


def test_threshold_past_the_survivors_is_an_error_as_in_openlth():
    w = {"small": np.linspace(0.1, 1.0, 10).astype(np.float32), "big": np.ones(1000, dtype=np.float32)}
    mask = {n: np.ones(v.shape, dtype=np.int32) for n, v in w.items()}
    with pytest.raises(IndexError):
        openlth_sparse_global(0.2, w, mask, {"big"})
    with pytest.raises(PruningError, match="openlth"):
        engine("global", {"fc": 0.2, "output": 0.0}, mask, w, kinds={"small": "fc", "big": "output"})


BASE = {"model": {"name": "mlp"}, "prune": {"count": "openlth", "scope": "global",
                                            "rate": {"conv": 0.2, "fc": 0.2, "output": 0.2}}}


def test_config_refuses_openlth_where_it_has_no_meaning():
    assert from_dict(merged(BASE)).prune.count == "openlth"
    with pytest.raises(ConfigError, match=r"prune.count = 'openlth'.*large_final.*'movement'"):
        from_dict(merged(BASE, prune={**BASE["prune"], "criterion": "movement"}))
    with pytest.raises(ConfigError, match=r"prune.count = 'openlth'.*0.1, 0.2 differ"):
        from_dict(merged(BASE, prune={**BASE["prune"], "rate": {"conv": 0.2, "fc": 0.2, "output": 0.1}}))
    # a kind at rate 0 is an ignored layer; layerwise takes any rates
    from_dict(merged(BASE, prune={**BASE["prune"], "rate": {"conv": 0.0, "fc": 0.2, "output": 0.0}}))
    from_dict(merged(BASE,
                     prune={**BASE["prune"], "scope": "layerwise", "rate": {"conv": 0.1, "fc": 0.2, "output": 0.1}}))
    with pytest.raises(ConfigError, match="prune.count.*allowed: exact, openlth"):
        from_dict({"prune": {"count": "frankle"}})


OLD = {"seed": 3, "model": {"name": "conv2"}, "data": {"name": "cifar10"},
       "prune": {"scope": "global", "criterion": "movement", "mask0": "freeze_init_zero_all"}}


def test_count_key_keeps_old_hashes():
    """Configs written before prune.count existed hash as they did then (values from main before
    the key was added), so their run ids keep their suffix."""
    assert from_dict({}).config_hash() == "fa192696c6b2d3b688b3725198356d19dfaad30bd74f1ee23a40c14f3bb79612"
    assert from_dict(OLD).config_hash() == "1a3e33a116d009cc8b162eb4ff3e8f15a60a6dd1faef1ccfd7d4e4b4ac99cef3"
    assert from_dict({"prune": {"count": "exact"}}).config_hash() == from_dict({}).config_hash()
    exact = from_dict(merged(BASE, prune={**BASE["prune"], "count": "exact"}))
    assert from_dict(merged(BASE)).config_hash() != exact.config_hash()
