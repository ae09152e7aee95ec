"""Mask criteria: which surviving weights to keep after a round of training.

Zhou, Lan, Liu & Yosinski 2019 ("Deconstructing Lottery Tickets") showed that Frankle &
Carbin's choice of keeping the weights of largest final magnitude is one point in a family of
*mask criteria*.  Each criterion gives every surviving weight a score computed from its value
at the start of the round's training (``w_init``, w_i) and at the end (``w_final``, w_f); the
highest scores are kept.  Weights that are already pruned are never scored and never come back.

Scores (higher = kept), computed over survivors only:

=============================  ==============================================================
``large_final``                 |w_f|                  (Frankle & Carbin's IMP)
``small_final``                 -|w_f|
``large_init``                  |w_i|
``small_init``                  -|w_i|
``large_init_large_final``      keep where |w_i| and |w_f| are both in their top sets
``small_init_small_final``      keep where |w_i| and |w_f| are both in their bottom sets
``magnitude_increase``          |w_f| - |w_i|
``movement``                    |w_f - w_i|
``random``                      a uniform draw from the run's generator
``large_final_same_sign``       |w_f| where sign(w_i) = sign(w_f), else 0
``large_final_diff_sign``       |w_f| where sign(w_i) != sign(w_f), else 0
``magnitude_increase_same_sign``  |w_f| - |w_i| where the signs agree, else 0
=============================  ==============================================================

The sign tests are Zhou's code (``get_weight_init.py``): sign is ``np.sign``, so sign(0) = 0
and a weight that started at 0 (zeroed by ``freeze_init_zero_all``) has changed sign unless it
ended at 0; a weight that fails the test scores 0, not lowest.  For the ``large_final`` pair 0
is at or below every qualifying score; for ``magnitude_increase_same_sign`` it is not: a
sign-flipped weight ranks above a same-sign weight that shrank, as in Zhou's code.

``large_init_large_final`` needs one shared percentile q such that exactly k weights are in
both the top-q set of |w_i| and the top-q set of |w_f|.  With rank(x) = the number of pool
survivors whose value is strictly smaller than x, "in both top sets at threshold t" is
``min(rank(|w_i|), rank(|w_f|)) >= t``, so scoring by the minimum of the two ranks and keeping
the top k *is* the shared-percentile search: the kept set contains every weight that is in
both top sets at the tightest threshold that still keeps fewer than k, and is completed with
weights sitting exactly at the next threshold (ties, broken by the generator).
``small_init_small_final`` is the same on -|w|.

Counting rule (``count = "exact"``, the default).  A pruning step removes exactly
``ceil(rate * survivors)`` weights from a pool, where ``rate`` is the fraction of the pool's
*survivors* removed per step.  ``steps > 1`` prunes one-shot straight to where ``steps``
iterative steps would land: :func:`kept_after` iterates the ceil rule, so the kept count is
exactly the iterative one.  The product
``rate * survivors`` is evaluated on the decimal value of ``rate`` (0.07 * 100 is 7, not the
float 7.000000000000001 whose ceiling is 8).

Pools.  ``kinds`` maps each prunable weight to ``"conv"``, ``"fc"`` or ``"output"`` and
``rates`` maps each kind to its rate.

* ``layerwise``: every layer is its own pool, pruned at its kind's rate.
* ``global``: layers whose kinds have the *same rate* form one pool with one threshold across
  them.  With equal rates for all kinds this is one global pool over all prunable weights
  (OpenLTH's pool, counted the exact way unless ``count = "openlth"``); with Frankle's fc 20% /
  output 10% the fc layers are pooled together and the output layer is its own pool; with
  conv 10% / fc 20% / output 10% the conv layers and the output layer share a pool.

A rate of 0 leaves the layers of that kind untouched.

``count = "openlth"`` is OpenLTH's ``pruning/sparse_global.py`` instead: with N the survivors
of *all* prunable layers and f the rate, t = sort(|w_f| of the pruned layers' survivors)[k]
with k = ceil(f·N) (a float64 product, as numpy computes it: 0.07 · 100 gives k = 8), and a
survivor is kept iff |w_f| > t; so without ties k + 1 weights go, and every tie at t goes.
Kinds with rate 0 are OpenLTH's ignored layers: counted in N, never pruned.  It is defined for
``large_final`` only (OpenLTH ranks trained magnitudes and nothing else) and, with ``global``
scope, for one non-zero rate (OpenLTH's one pruning fraction); ``layerwise`` applies the same
rule to every layer on its own (N = that layer's survivors).  ``steps > 1`` applies it
``steps`` times to the same weights.  It draws nothing from the generator.  OpenLTH fails
with an index error when k reaches past the pruned layers' survivors; so does this, with a
PruningError.

Ties.  Every pool draws a random permutation of its survivors from ``generator`` and the scores
are sorted stably in that order, so ties are broken at random but reproducibly from the run's
seed, never by memory order.  Randomness is consumed pool by pool in the order the pools'
first layers appear in ``kinds``; within a pool the survivors are taken layer by layer in
``kinds`` order, each layer in row-major order.  ``random`` draws its scores
(``torch.rand(n, dtype=float64)``) before the tie permutation (``torch.randperm(n)``).  A pool
that removes nothing draws nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction

import torch

from engine.catalog import openlth_problem  # torch-free: config validation calls it

__all__ = ["PruningError", "CRITERIA", "SCOPES", "KINDS", "COUNTS", "openlth_problem", "next_mask", "kept_after"]


class PruningError(ValueError):
    """A bad argument to the pruning step (unknown name, bad rate, mismatched shapes)."""


SCOPES = ("layerwise", "global")
KINDS = ("conv", "fc", "output")
COUNTS = ("exact", "openlth")


# --------------------------------------------------------------------------- scores
# Every criterion takes the flattened survivors of a pool (float64 on one device) and the
# generator, and returns a float64 score per survivor; higher is kept.

def _same_sign(w_i: torch.Tensor, w_f: torch.Tensor) -> torch.Tensor:
    """np.sign(w_i) == np.sign(w_f), as in Zhou's code (sign(0) = 0)."""
    return torch.sign(w_i) == torch.sign(w_f)


def _ranks(values: torch.Tensor) -> torch.Tensor:
    """rank(x) = number of entries strictly smaller than x (ties share the lowest rank)."""
    ordered, _ = torch.sort(values)
    return torch.searchsorted(ordered, values, right=False).to(torch.float64)


def large_final(w_i: torch.Tensor, w_f: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Keep the largest |w_f| (Frankle & Carbin's IMP).

    Keep the weights largest in magnitude at the end of training, |w_f| (Frankle & Carbin's IMP).
    """
    return w_f.abs()


def small_final(w_i: torch.Tensor, w_f: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Keep the smallest |w_f| (a control that should fail).

    Keep the weights smallest at the end of training, −|w_f| (Zhou's control; expect it to fail).
    """
    return -w_f.abs()


def large_init(w_i: torch.Tensor, w_f: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Keep the largest |w_i|, ignoring training.

    Keep the weights largest at the round's start, |w_i|, ignoring training.
    """
    return w_i.abs()


def small_init(w_i: torch.Tensor, w_f: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Keep the smallest |w_i|.

    Keep the weights smallest at the round's start, −|w_i|.
    """
    return -w_i.abs()


def large_init_large_final(w_i: torch.Tensor, w_f: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Keep weights large both at the start and the end.

    Keep weights in the top set of both |w_i| and |w_f| (one shared percentile, exact count).
    """
    return torch.minimum(_ranks(w_i.abs()), _ranks(w_f.abs()))


def small_init_small_final(w_i: torch.Tensor, w_f: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Keep weights small both at the start and the end.

    Keep weights in the bottom set of both |w_i| and |w_f| (one shared percentile).
    """
    return torch.minimum(_ranks(-w_i.abs()), _ranks(-w_f.abs()))


def magnitude_increase(w_i: torch.Tensor, w_f: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Keep the weights that grew most: |w_f| − |w_i|.

    Keep the weights whose magnitude grew most in training, |w_f| − |w_i| (Zhou).
    """
    return w_f.abs() - w_i.abs()


def movement(w_i: torch.Tensor, w_f: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Keep the weights that moved most: |w_f − w_i|.

    Keep the weights that moved most in training, |w_f − w_i|.
    """
    return (w_f - w_i).abs()


def random(w_i: torch.Tensor, w_f: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Keep a random subset: the random-pruning baseline.

    Keep a random subset (the run's seeded generator): the random-pruning baseline.
    """
    n = w_f.numel()
    return torch.rand(n, generator=g, dtype=torch.float64, device=g.device).to(w_f.device)


def large_final_same_sign(w_i: torch.Tensor, w_f: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Largest |w_f| among weights that kept their sign.

    |w_f| where sign(w_i) = sign(w_f), else 0 (Zhou's score).
    """
    return torch.where(_same_sign(w_i, w_f), w_f.abs(), torch.zeros_like(w_f))


def large_final_diff_sign(w_i: torch.Tensor, w_f: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Largest |w_f| among weights whose sign flipped.

    |w_f| where the sign flipped in training, else 0.
    """
    return torch.where(_same_sign(w_i, w_f), torch.zeros_like(w_f), w_f.abs())


def magnitude_increase_same_sign(w_i: torch.Tensor, w_f: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Most grown |w_f| − |w_i| among sign keepers.

    |w_f| − |w_i| where the sign did not flip; a flip scores 0.
    """
    return torch.where(_same_sign(w_i, w_f), w_f.abs() - w_i.abs(), torch.zeros_like(w_f))


CRITERIA: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]] = {
    "large_final": large_final,
    "small_final": small_final,
    "large_init": large_init,
    "small_init": small_init,
    "large_init_large_final": large_init_large_final,
    "small_init_small_final": small_init_small_final,
    "magnitude_increase": magnitude_increase,
    "movement": movement,
    "random": random,
    "large_final_same_sign": large_final_same_sign,
    "large_final_diff_sign": large_final_diff_sign,
    "magnitude_increase_same_sign": magnitude_increase_same_sign,
}


# --------------------------------------------------------------------------- counting

def _removed(survivors: int, rate: float) -> int:
    """ceil(rate * survivors), with rate read as the decimal it is written as."""
    return min(survivors, math.ceil(Fraction(repr(float(rate))) * survivors))


def kept_after(survivors: int, rate: float, steps: int) -> int:
    """Exact number of weights left after ``steps`` iterative removals of ceil(rate * n)."""
    _check_rate("rate", rate)
    if isinstance(survivors, bool) or not isinstance(survivors, int) or survivors < 0:
        raise PruningError(f"survivors must be a non-negative int, got {survivors!r}")
    _check_steps(steps)
    n = survivors
    for _ in range(steps):
        n -= _removed(n, rate)
    return n


# --------------------------------------------------------------------------- validation

def _check_rate(where: str, rate: object) -> None:
    ok = (
        isinstance(rate, (int, float))
        and not isinstance(rate, bool)
        and math.isfinite(rate)
        and 0 <= rate < 1
    )
    if not ok:
        raise PruningError(f"{where} = {rate!r} is not allowed; a rate must be in [0, 1)")


def _check_steps(steps: object) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise PruningError(f"steps = {steps!r} is not allowed; steps must be an int >= 0")


def _validate(criterion: str, scope: str, rates: dict[str, float], kinds: dict[str, str],
              mask: dict[str, torch.Tensor], w_init: dict[str, torch.Tensor], w_final: dict[str, torch.Tensor],
              steps: int) -> None:
    if criterion not in CRITERIA:
        raise PruningError(
            f"unknown criterion {criterion!r}; allowed: {', '.join(CRITERIA)}"
        )
    if scope not in SCOPES:
        raise PruningError(f"unknown scope {scope!r}; allowed: {', '.join(SCOPES)}")
    _check_steps(steps)
    for kind, rate in rates.items():
        _check_rate(f"rate[{kind!r}]", rate)
    for name, kind in kinds.items():
        if kind not in KINDS:
            raise PruningError(
                f"layer {name!r} has unknown kind {kind!r}; allowed: {', '.join(KINDS)}"
            )
        if kind not in rates:
            raise PruningError(
                f"no rate for kind {kind!r} (layer {name!r}); rates given for: "
                f"{', '.join(map(repr, rates)) or 'none'}"
            )
    extra = [name for name in mask if name not in kinds]
    if extra:
        raise PruningError(
            f"mask has weights with no kind: {', '.join(extra)}; known: {', '.join(kinds)}"
        )
    for name in kinds:
        for label, tensors in (("mask", mask), ("w_init", w_init), ("w_final", w_final)):
            if name not in tensors:
                raise PruningError(f"{label} has no entry for prunable weight {name!r}")
        shapes = {
            "mask": tuple(mask[name].shape),
            "w_init": tuple(w_init[name].shape),
            "w_final": tuple(w_final[name].shape),
        }
        if len(set(shapes.values())) != 1:
            raise PruningError(f"mismatched shapes for {name!r}: {shapes}")


# --------------------------------------------------------------------------- pruning

def _pools(scope: str, rates: dict, kinds: dict) -> list[tuple[float, list[str]]]:
    """(rate, layer names) per pool, in order of first appearance in ``kinds``."""
    if scope == "layerwise":
        return [(float(rates[kinds[name]]), [name]) for name in kinds]
    grouped: dict[float, list[str]] = {}
    for name, kind in kinds.items():
        grouped.setdefault(float(rates[kind]), []).append(name)
    return list(grouped.items())


def next_mask(
    *,
    criterion: str,
    scope: str,
    rates: dict[str, float],
    kinds: dict[str, str],
    mask: dict[str, torch.Tensor],
    w_init: dict[str, torch.Tensor],
    w_final: dict[str, torch.Tensor],
    generator: torch.Generator,
    steps: int = 1,
    count: str = "exact",
) -> dict[str, torch.Tensor]:
    """New bool masks (subsets of ``mask``) after ``steps`` pruning steps of ``criterion``.

    Returns one mask per name in ``kinds``, same shape and device as the input mask.
    """
    _validate(criterion, scope, rates, kinds, mask, w_init, w_final, steps)
    if count not in COUNTS:
        raise PruningError(f"unknown count {count!r}; allowed: {', '.join(COUNTS)}")
    new = {name: mask[name].detach().to(torch.bool).clone() for name in kinds}
    if count == "openlth":
        problem = openlth_problem(criterion, scope, rates)
        if problem:
            raise PruningError(f"count 'openlth': {problem}")
        return _openlth_masks(scope, rates, kinds, new, w_final, steps)
    score_fn = CRITERIA[criterion]

    for rate, names in _pools(scope, rates, kinds):
        if rate == 0 or steps == 0:
            continue
        device = new[names[0]].device
        keep_flat = [new[n].reshape(-1) for n in names]
        counts = [int(k.sum()) for k in keep_flat]
        total = sum(counts)
        keep = kept_after(total, rate, steps)
        if keep == total:
            continue
        w_i = torch.cat(
            [w_init[n].detach().reshape(-1).to(device)[k] for n, k in zip(names, keep_flat)]
        ).to(torch.float64)
        w_f = torch.cat(
            [w_final[n].detach().reshape(-1).to(device)[k] for n, k in zip(names, keep_flat)]
        ).to(torch.float64)
        scores = score_fn(w_i, w_f, generator).to(device)
        # Ties: visit survivors in a random order, then sort stably by score (descending).
        perm = torch.randperm(total, generator=generator, device=generator.device).to(device)
        order = torch.sort(scores[perm], descending=True, stable=True).indices
        chosen = perm[order[:keep]]
        kept_pool = torch.zeros(total, dtype=torch.bool, device=device)
        kept_pool[chosen] = True

        start = 0
        for name, k, count in zip(names, keep_flat, counts):
            flat = torch.zeros_like(k)
            flat[k] = kept_pool[start:start + count]
            new[name] = flat.reshape(new[name].shape)
            start += count
    return new


def _openlth_masks(scope: str, rates: dict[str, float], kinds: dict[str, str], new: dict[str, torch.Tensor],
                   w_final: dict[str, torch.Tensor], steps: int) -> dict[str, torch.Tensor]:
    """OpenLTH's sparse_global threshold rule (see the module docstring), in place on ``new``."""
    if scope == "layerwise":
        groups = [(float(rates[kinds[n]]), [n], [n]) for n in kinds if rates[kinds[n]] > 0]
    else:
        pruned = [n for n in kinds if rates[kinds[n]] > 0]
        groups = [(float(rates[kinds[pruned[0]]]), pruned, list(kinds))] if pruned else []
    for fraction, names, counted in groups:
        device = new[names[0]].device
        magnitudes = [w_final[n].detach().reshape(-1).to(device).abs().to(torch.float64) for n in names]
        for _ in range(steps):
            survivors = sum(int(new[n].sum()) for n in counted)
            k = math.ceil(fraction * survivors)
            vector = torch.cat([m[new[n].reshape(-1)] for n, m in zip(names, magnitudes)])
            if k >= vector.numel():
                raise PruningError(
                    f"count 'openlth': the threshold is entry ceil({fraction} * {survivors}) = {k} of "
                    f"the sorted |w| of {vector.numel()} surviving weights in {', '.join(names)}; "
                    f"there is none (OpenLTH fails here too); prune fewer rounds or use count 'exact'"
                )
            threshold = torch.sort(vector).values[k]
            for n, m in zip(names, magnitudes):
                new[n] = (new[n].reshape(-1) & (m > threshold)).reshape(new[n].shape)
    return new
