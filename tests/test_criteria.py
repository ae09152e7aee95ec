"""engine.criteria against independent re-implementations written from the definitions.

The reference here is numpy with explicit loops; it does not call engine code.  Where the
definition leaves a choice open (ties at the cut), the reference returns the weights that MUST
be kept and those that MAY be kept, and the engine's mask has to sit between them with the
exact count.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.utils.prune as prune

from engine.criteria import CRITERIA, SCOPES, PruningError, kept_after, next_mask

ALL_CRITERIA = [
    "large_final", "small_final", "large_init", "small_init", "large_init_large_final",
    "small_init_small_final", "magnitude_increase", "movement", "random",
    "large_final_same_sign", "large_final_diff_sign", "magnitude_increase_same_sign",
]

SHAPES = {"conv1.weight": (4, 3, 3, 3), "fc1.weight": (30, 20), "fc2.weight": (12, 30),
          "out.weight": (5, 12)}
KINDS = {"conv1.weight": "conv", "fc1.weight": "fc", "fc2.weight": "fc", "out.weight": "output"}


# --------------------------------------------------------------------------- reference

def hand_kept(n: int, rate: float, steps: int) -> int:
    for _ in range(steps):
        n = n - math.ceil(rate * n)
    return n


def ref_scores(criterion, wi, wf):
    """Scores of the survivors (1-D float64 arrays), straight from the definitions."""
    if criterion == "large_final":
        return np.abs(wf)
    if criterion == "small_final":
        return -np.abs(wf)
    if criterion == "large_init":
        return np.abs(wi)
    if criterion == "small_init":
        return -np.abs(wi)
    if criterion == "magnitude_increase":
        return np.abs(wf) - np.abs(wi)
    if criterion == "movement":
        return np.abs(wf - wi)
    # Zhou's get_weight_init.py: np.sign (sign(0) = 0); a weight failing the test scores 0
    same = np.sign(wi) == np.sign(wf)
    if criterion == "large_final_same_sign":
        return np.where(same, np.abs(wf), 0.0)
    if criterion == "large_final_diff_sign":
        return np.where(~same, np.abs(wf), 0.0)
    if criterion == "magnitude_increase_same_sign":
        return np.where(same, np.abs(wf) - np.abs(wi), 0.0)
    raise AssertionError(criterion)


def ref_top_k(scores, k):
    """(must, may) index sets for keeping the k highest scores."""
    order = np.argsort(-scores, kind="stable")
    if k == 0:
        return set(), set()
    cut = scores[order[k - 1]]
    must = {j for j in range(len(scores)) if scores[j] > cut}
    may = {j for j in range(len(scores)) if scores[j] >= cut}
    return (may if len(may) == k else must), may


def ref_shared_percentile(a, b, k):
    """Brute force: smallest m such that top-m(a) ∩ top-m(b) has >= k elements."""
    n = len(a)
    order_a = np.argsort(-a, kind="stable")
    order_b = np.argsort(-b, kind="stable")
    prev = set()
    for m in range(n + 1):
        both = set(order_a[:m].tolist()) & set(order_b[:m].tolist())
        if len(both) >= k:             # must: the intersection one step tighter
            return (both if len(both) == k else prev), both
        prev = both
    raise AssertionError("unreachable")


def ref_pools(scope, rates, kinds):
    if scope == "layerwise":
        return [(rates[kinds[n]], [n]) for n in kinds]
    pools = {}
    for n, kind in kinds.items():
        pools.setdefault(rates[kind], []).append(n)
    return list(pools.items())


def reference(criterion, scope, rates, kinds, mask, wi, wf, steps, seed):
    """Returns (must, may, k) per pool: sets of (name, flat index)."""
    gen = torch.Generator().manual_seed(seed)     # only for `random`, same draw order
    out = []
    for rate, names in ref_pools(scope, rates, kinds):
        ids, a, b = [], [], []
        for n in names:
            m = mask[n].numpy().reshape(-1)
            i = wi[n].numpy().reshape(-1).astype(np.float64)
            f = wf[n].numpy().reshape(-1).astype(np.float64)
            for j in range(m.size):
                if m[j]:
                    ids.append((n, j))
                    a.append(i[j])
                    b.append(f[j])
        a, b = np.array(a), np.array(b)
        total = len(ids)
        k = hand_kept(total, rate, steps) if rate > 0 else total
        if k == total:
            out.append((set(ids), set(ids), k))
            continue
        if criterion == "random":
            # the documented draw order: scores, then the tie permutation, pool by pool
            drawn = torch.rand(total, generator=gen, dtype=torch.float64).numpy()
            torch.randperm(total, generator=gen)
            must, may = ref_top_k(drawn, k)
        elif criterion == "large_init_large_final":
            must, may = ref_shared_percentile(np.abs(a), np.abs(b), k)
        elif criterion == "small_init_small_final":
            must, may = ref_shared_percentile(-np.abs(a), -np.abs(b), k)
        else:
            s = ref_scores(criterion, a, b)
            must, may = ref_top_k(s, k)
        out.append(({ids[j] for j in must}, {ids[j] for j in may}, k))
    return out


def kept_ids(new, names):
    return {(n, j) for n in names for j in np.flatnonzero(new[n].numpy().reshape(-1))}


def random_setup(seed, prior_density=0.7):
    rng = np.random.default_rng(seed)
    mask, wi, wf = {}, {}, {}
    for n, shape in SHAPES.items():
        mask[n] = torch.from_numpy(rng.random(shape) < prior_density)
        wi[n] = torch.from_numpy(rng.normal(size=shape).astype(np.float32))
        # final weights correlated with the initial ones, some sign flips
        wf[n] = torch.from_numpy((rng.normal(size=shape) * 0.8 + wi[n].numpy()).astype(np.float32))
    return mask, wi, wf


# --------------------------------------------------------------------------- registry

def test_registry_has_exactly_the_design_names():
    assert sorted(CRITERIA) == sorted(ALL_CRITERIA)
    assert SCOPES == ("layerwise", "global")


# --------------------------------------------------------------------------- vs reference

@pytest.mark.parametrize("scope", ["layerwise", "global"])
@pytest.mark.parametrize("criterion", ALL_CRITERIA)
@pytest.mark.parametrize("rates", [
    {"conv": 0.2, "fc": 0.2, "output": 0.2},
    {"conv": 0.1, "fc": 0.2, "output": 0.1},
    {"conv": 0.0, "fc": 0.5, "output": 0.3},
])
def test_matches_reference(criterion, scope, rates):
    seed = 1234
    mask, wi, wf = random_setup(7)
    before = {n: m.clone() for n, m in mask.items()}
    new = next_mask(criterion=criterion, scope=scope, rates=rates, kinds=KINDS, mask=mask,
                    w_init=wi, w_final=wf, generator=torch.Generator().manual_seed(seed))
    # inputs untouched, outputs bool, same shape, subset of the prior mask
    for n in KINDS:
        assert torch.equal(mask[n], before[n])
        assert new[n].dtype == torch.bool and new[n].shape == mask[n].shape
        assert not (new[n] & ~mask[n]).any(), "a pruned weight came back"
    for must, may, k in reference(criterion, scope, rates, KINDS, mask, wi, wf, 1, seed):
        names = {n for n, _ in may}
        got = kept_ids(new, names)
        assert len(got) == k
        assert must <= got <= may
        if criterion not in ("large_init_large_final", "small_init_small_final",
                             "large_final_diff_sign", "large_final_same_sign",
                             "magnitude_increase_same_sign"):
            assert must == may, "continuous scores should leave no choice"


@pytest.mark.parametrize("criterion", ALL_CRITERIA)
def test_second_step_from_pruned_mask_only_scores_survivors(criterion):
    mask, wi, wf = random_setup(11, prior_density=0.4)
    rates = {"conv": 0.1, "fc": 0.2, "output": 0.1}     # pools: fc | conv + output
    g = torch.Generator().manual_seed(5)
    step1 = next_mask(criterion=criterion, scope="global", rates=rates, kinds=KINDS, mask=mask,
                      w_init=wi, w_final=wf, generator=g)
    # new weights for the next round; previously pruned weights get huge magnitudes, which
    # every magnitude criterion would love to keep if it looked at them
    wf2 = {n: torch.where(step1[n], w * 1.1 + 0.01, torch.full_like(w, 1e6)) for n, w in wf.items()}
    step2 = next_mask(criterion=criterion, scope="global", rates=rates, kinds=KINDS, mask=step1,
                      w_init=wi, w_final=wf2, generator=g)
    for n in KINDS:
        assert not (step2[n] & ~step1[n]).any()
    fc = sum(int(step1[n].sum()) for n in ("fc1.weight", "fc2.weight"))
    assert sum(int(step2[n].sum()) for n in ("fc1.weight", "fc2.weight")) == hand_kept(fc, 0.2, 1)


def test_large_init_large_final_shared_percentile_by_brute_force():
    # one layer, several seeds, many ties in min-rank: engine must sit between the brute-force
    # intersection one threshold tighter (must) and at the threshold (may)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        wi = torch.from_numpy(rng.normal(size=(9, 7)))
        wf = torch.from_numpy(rng.normal(size=(9, 7)) * 0.5 + 0.5 * wi.numpy())
        mask = torch.from_numpy(rng.random((9, 7)) < 0.8)
        a = wi.numpy()[mask.numpy()]
        b = wf.numpy()[mask.numpy()]
        for rate in (0.2, 0.5, 0.9):
            new = next_mask(criterion="large_init_large_final", scope="layerwise",
                            rates={"fc": rate}, kinds={"w": "fc"}, mask={"w": mask},
                            w_init={"w": wi}, w_final={"w": wf},
                            generator=torch.Generator().manual_seed(seed))["w"]
            k = hand_kept(len(a), rate, 1)
            must, may = ref_shared_percentile(np.abs(a), np.abs(b), k)
            got = set(np.flatnonzero(new.numpy()[mask.numpy()]).tolist())
            assert len(got) == k and must <= got <= may
            # and the bottom-set twin
            new = next_mask(criterion="small_init_small_final", scope="layerwise",
                            rates={"fc": rate}, kinds={"w": "fc"}, mask={"w": mask},
                            w_init={"w": wi}, w_final={"w": wf},
                            generator=torch.Generator().manual_seed(seed))["w"]
            must, may = ref_shared_percentile(-np.abs(a), -np.abs(b), k)
            got = set(np.flatnonzero(new.numpy()[mask.numpy()]).tolist())
            assert len(got) == k and must <= got <= may


def test_sign_tests_follow_zhou_np_sign_and_score_zero():
    wi = torch.tensor([1.0, -2.0, 3.0, -4.0, 5.0, 0.0])
    wf = torch.tensor([9.0, 8.0, -7.0, -0.5, 0.2, 0.1])   # np.sign equal: idx 0, 3, 4 (sign(0) = 0)
    mask = torch.ones(6, dtype=torch.bool)
    run = lambda crit, rate, seed=0: next_mask(  # noqa: E731
        criterion=crit, scope="layerwise", rates={"fc": rate}, kinds={"w": "fc"},
        mask={"w": mask}, w_init={"w": wi}, w_final={"w": wf},
        generator=torch.Generator().manual_seed(seed))["w"]
    # keep 3 of 6 (ceil(0.5*6)=3 removed): same-sign |w_f|: 0 (9), 3 (0.5), 4 (0.2); others 0
    assert run("large_final_same_sign", 0.5).tolist() == [True, False, False, True, True, False]
    # diff sign |w_f|: 1 (8), 2 (7), 5 (0.1: started at 0, so its sign changed)
    assert run("large_final_diff_sign", 0.5).tolist() == [False, True, True, False, False, True]
    # magnitude increase, flips scored 0: 0: 8, 1/2/5: 0, 3: -3.5, 4: -4.8 -> keep 0 and two of
    # the flipped ones, above the same-sign weights that shrank (Zhou's code)
    for seed in range(5):
        got = run("magnitude_increase_same_sign", 0.5, seed).tolist()
        assert got[0] and not got[3] and not got[4] and sum(got) == 3


# --------------------------------------------------------------------------- torch.nn.utils.prune

def test_large_final_global_equals_torch_global_unstructured_two_steps():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU(),
                          nn.Linear(12, 5))
    layers = {"0.weight": model[0], "2.weight": model[2], "4.weight": model[4]}
    kinds = {"0.weight": "fc", "2.weight": "fc", "4.weight": "output"}
    rates = {"fc": 0.2, "output": 0.2}
    w_init = {n: torch.randn_like(layer.weight) for n, layer in layers.items()}
    mask = {n: torch.ones_like(layer.weight, dtype=torch.bool) for n, layer in layers.items()}
    g = torch.Generator().manual_seed(3)
    params = [(layer, "weight") for layer in layers.values()]
    for step in range(2):
        with torch.no_grad():
            for layer in layers.values():     # "training": new final weights each round
                target = layer.weight_orig if hasattr(layer, "weight_orig") else layer.weight
                target.add_(torch.randn_like(target) * 0.3)
            model(torch.zeros(1, 20))     # the prune hook refreshes .weight = weight_orig * mask
        w_final = {n: (layer.weight_orig if hasattr(layer, "weight_orig") else layer.weight).detach().clone()
                   for n, layer in layers.items()}
        survivors = sum(int(m.sum()) for m in mask.values())
        amount = math.ceil(0.2 * survivors)
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount)
        mask = next_mask(criterion="large_final", scope="global", rates=rates, kinds=kinds,
                         mask=mask, w_init=w_init, w_final=w_final, generator=g)
        for n, layer in layers.items():
            assert torch.equal(mask[n], layer.weight_mask.bool()), (step, n)
        assert sum(int(m.sum()) for m in mask.values()) == survivors - amount


# --------------------------------------------------------------------------- counting, one-shot

def test_kept_after_iterates_ceil_rule():
    assert kept_after(100, 0.2, 1) == 80
    assert kept_after(100, 0.2, 3) == 51            # 100 -> 80 -> 64 -> 64 - ceil(12.8)
    assert kept_after(7, 0.5, 1) == 3                # ceil(3.5) = 4 removed
    assert kept_after(1, 0.1, 5) == 0                # ceil(0.1) = 1 removes the last one
    assert kept_after(0, 0.2, 4) == 0
    assert kept_after(123, 0.0, 9) == 123
    assert kept_after(123, 0.3, 0) == 123
    # the rate is read as its decimal value: 7% of 100 is 7 (float 0.07*100 > 7)
    assert kept_after(100, 0.07, 1) == 93
    for n in (1, 5, 17, 266_200, 1_000_003):
        for rate in (0.1, 0.2, 0.5):
            for steps in (1, 2, 7):
                assert kept_after(n, rate, steps) == hand_kept(n, rate, steps)


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("criterion", ["large_final", "movement", "random",
                                       "large_init_large_final"])
def test_one_shot_lands_on_iterative_count(criterion, scope):
    mask, wi, wf = random_setup(3, prior_density=1.0)
    rates = {"conv": 0.1, "fc": 0.2, "output": 0.1}
    steps = 6
    new = next_mask(criterion=criterion, scope=scope, rates=rates, kinds=KINDS, mask=mask,
                    w_init=wi, w_final=wf, generator=torch.Generator().manual_seed(0),
                    steps=steps)
    for rate, names in ref_pools(scope, rates, KINDS):
        n = sum(int(mask[x].sum()) for x in names)
        assert sum(int(new[x].sum()) for x in names) == kept_after(n, rate, steps) \
            == hand_kept(n, rate, steps)
    for must, may, k in reference(criterion, scope, rates, KINDS, mask, wi, wf, steps, 0):
        got = kept_ids(new, {n for n, _ in may})
        assert len(got) == k and must <= got <= may


# --------------------------------------------------------------------------- per-kind pools

def test_global_pools_group_kinds_by_rate():
    mask, wi, wf = random_setup(5, prior_density=1.0)
    # fc 20% pooled across fc1+fc2, output 10% on its own, conv untouched
    rates = {"conv": 0.0, "fc": 0.2, "output": 0.1}
    new = next_mask(criterion="large_final", scope="global", rates=rates, kinds=KINDS,
                    mask=mask, w_init=wi, w_final=wf, generator=torch.Generator().manual_seed(0))
    assert torch.equal(new["conv1.weight"], mask["conv1.weight"])
    fc = ["fc1.weight", "fc2.weight"]
    n_fc = sum(mask[n].numel() for n in fc)
    assert sum(int(new[n].sum()) for n in fc) == n_fc - math.ceil(0.2 * n_fc)
    kept_min = min(wf[n].abs()[new[n]].min().item() for n in fc)
    pruned_max = max(wf[n].abs()[~new[n]].max().item() for n in fc)
    assert kept_min > pruned_max, "one threshold across the fc pool"
    out = mask["out.weight"].numel()
    assert int(new["out.weight"].sum()) == out - math.ceil(0.1 * out)
    # same rate for conv and output -> they share a pool
    rates = {"conv": 0.1, "fc": 0.2, "output": 0.1}
    new = next_mask(criterion="large_final", scope="global", rates=rates, kinds=KINDS,
                    mask=mask, w_init=wi, w_final=wf, generator=torch.Generator().manual_seed(0))
    pool = ["conv1.weight", "out.weight"]
    n_pool = sum(mask[n].numel() for n in pool)
    assert sum(int(new[n].sum()) for n in pool) == n_pool - math.ceil(0.1 * n_pool)
    kept_min = min(wf[n].abs()[new[n]].min().item() for n in pool)
    pruned_max = max(wf[n].abs()[~new[n]].max().item() for n in pool)
    assert kept_min > pruned_max


def test_layerwise_prunes_each_layer_at_its_kind_rate():
    mask, wi, wf = random_setup(6, prior_density=0.9)
    rates = {"conv": 0.1, "fc": 0.2, "output": 0.0}
    new = next_mask(criterion="large_final", scope="layerwise", rates=rates, kinds=KINDS,
                    mask=mask, w_init=wi, w_final=wf, generator=torch.Generator().manual_seed(0))
    for n, kind in KINDS.items():
        s = int(mask[n].sum())
        assert int(new[n].sum()) == s - math.ceil(rates[kind] * s)
    assert torch.equal(new["out.weight"], mask["out.weight"])


# --------------------------------------------------------------------------- ties

def _all_equal(seed, n=100, rate=0.5, criterion="large_final"):
    w = torch.ones(n)
    return next_mask(criterion=criterion, scope="layerwise", rates={"fc": rate},
                     kinds={"w": "fc"}, mask={"w": torch.ones(n, dtype=torch.bool)},
                     w_init={"w": w}, w_final={"w": w},
                     generator=torch.Generator().manual_seed(seed))["w"]


@pytest.mark.parametrize("criterion", ["large_final", "random", "large_init_large_final",
                                       "large_final_diff_sign"])
def test_ties_exact_reproducible_seed_dependent(criterion):
    a = _all_equal(1, criterion=criterion)
    assert int(a.sum()) == 50
    assert torch.equal(a, _all_equal(1, criterion=criterion))
    assert not torch.equal(a, _all_equal(2, criterion=criterion))


def test_ties_have_no_positional_bias():
    seeds = 400
    freq = torch.zeros(100)
    for seed in range(seeds):
        freq += _all_equal(seed).double()
    freq /= seeds
    # each position is kept with probability 1/2; std per position is 0.025
    assert freq.min() > 0.38 and freq.max() < 0.62
    assert abs(freq[:20].mean().item() - 0.5) < 0.04
    assert abs(freq[-20:].mean().item() - 0.5) < 0.04


def test_random_criterion_is_unbiased_and_global_pool_mixes_layers():
    kinds = {"a": "fc", "b": "fc"}
    counts = []
    for seed in range(200):
        new = next_mask(criterion="random", scope="global", rates={"fc": 0.5}, kinds=kinds,
                        mask={"a": torch.ones(40, dtype=torch.bool),
                              "b": torch.ones(40, dtype=torch.bool)},
                        w_init={"a": torch.randn(40), "b": torch.randn(40)},
                        w_final={"a": torch.randn(40), "b": torch.randn(40)},
                        generator=torch.Generator().manual_seed(seed))
        assert int(new["a"].sum() + new["b"].sum()) == 40
        counts.append(int(new["a"].sum()))
    assert len(set(counts)) > 3
    assert abs(np.mean(counts) - 20) < 1.5


# --------------------------------------------------------------------------- misc behaviour

def test_uint8_masks_accepted_and_empty_pools_ok():
    mask = {"w": torch.zeros(3, 4, dtype=torch.uint8), "v": torch.ones(5, dtype=torch.uint8)}
    w = {"w": torch.randn(3, 4), "v": torch.randn(5)}
    new = next_mask(criterion="large_final", scope="layerwise", rates={"fc": 0.2},
                    kinds={"w": "fc", "v": "fc"}, mask=mask, w_init=w, w_final=w,
                    generator=torch.Generator().manual_seed(0))
    assert new["w"].dtype == torch.bool and not new["w"].any()
    assert int(new["v"].sum()) == 4


def test_extra_non_prunable_weights_are_ignored():
    w = {"w": torch.randn(10), "bias": torch.randn(3)}
    new = next_mask(criterion="large_final", scope="global", rates={"fc": 0.2},
                    kinds={"w": "fc"}, mask={"w": torch.ones(10, dtype=torch.bool)},
                    w_init=w, w_final=w, generator=torch.Generator().manual_seed(0))
    assert set(new) == {"w"} and int(new["w"].sum()) == 8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_masks_stay_on_input_device():
    dev = torch.device("cuda")
    mask, wi, wf = random_setup(2)
    mask = {n: m.to(dev) for n, m in mask.items()}
    wi = {n: w.to(dev) for n, w in wi.items()}
    wf = {n: w.to(dev) for n, w in wf.items()}
    new = next_mask(criterion="large_final", scope="global",
                    rates={"conv": 0.2, "fc": 0.2, "output": 0.1}, kinds=KINDS, mask=mask,
                    w_init=wi, w_final=wf, generator=torch.Generator().manual_seed(0))
    assert all(t.device.type == "cuda" for t in new.values())


# --------------------------------------------------------------------------- errors

def _call(**over):
    args = dict(criterion="large_final", scope="global", rates={"fc": 0.2},
                kinds={"w": "fc"}, mask={"w": torch.ones(4, dtype=torch.bool)},
                w_init={"w": torch.randn(4)}, w_final={"w": torch.randn(4)},
                generator=torch.Generator().manual_seed(0))
    args.update(over)
    return next_mask(**args)


def test_unknown_criterion_lists_allowed():
    with pytest.raises(PruningError) as e:
        _call(criterion="biggest")
    msg = str(e.value)
    assert "'biggest'" in msg
    for name in ALL_CRITERIA:
        assert name in msg


def test_unknown_scope_lists_allowed():
    with pytest.raises(PruningError) as e:
        _call(scope="per-layer")
    assert "'per-layer'" in str(e.value) and "layerwise" in str(e.value) and "global" in str(e.value)


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, float("nan"), "0.2", True])
def test_bad_rate(rate):
    with pytest.raises(PruningError) as e:
        _call(rates={"fc": rate})
    assert repr(rate) in str(e.value) and "[0, 1)" in str(e.value)
    if not isinstance(rate, (str, bool)):
        with pytest.raises(PruningError):
            kept_after(10, rate, 1)


def test_kind_missing_a_rate():
    with pytest.raises(PruningError) as e:
        _call(kinds={"w": "output"})
    assert "'output'" in str(e.value) and "'fc'" in str(e.value)


def test_unknown_kind():
    with pytest.raises(PruningError) as e:
        _call(kinds={"w": "dense"})
    assert "'dense'" in str(e.value) and "conv" in str(e.value) and "output" in str(e.value)


def test_mismatched_shapes():
    with pytest.raises(PruningError) as e:
        _call(w_final={"w": torch.randn(5)})
    assert "'w'" in str(e.value) and "(5,)" in str(e.value)


def test_missing_tensor_and_mask_without_kind():
    with pytest.raises(PruningError, match="w_init"):
        _call(w_init={})
    with pytest.raises(PruningError, match="'extra'|extra"):
        _call(mask={"w": torch.ones(4, dtype=torch.bool), "extra": torch.ones(2, dtype=torch.bool)})


def test_bad_steps():
    with pytest.raises(PruningError, match="steps"):
        _call(steps=-1)
    with pytest.raises(PruningError, match="steps"):
        kept_after(10, 0.2, 1.5)
