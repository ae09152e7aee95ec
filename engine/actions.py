"""Mask-1 and mask-0 actions: what each prunable weight starts the next round from.

Zhou, Lan, Liu & Yosinski 2019 ("Deconstructing Lottery Tickets: Zeros, Signs, and the
Supermask") split Frankle & Carbin's "rewind the survivors to θ0, set the pruned weights to 0"
into two independent choices, so that each ingredient of a winning ticket can be tested on its
own:

* the **mask-1 action** sets the *kept* positions (mask = 1);
* the **mask-0 action** sets the *pruned* positions (mask = 0), and decides whether weights
  that moved towards zero are zeroed.

Mask-1 actions (``rewind_point`` is θ0, or θk with late rewinding; sign is ``torch.sign``,
so sign(0) = 0 as in Zhou's ``np.sign``):

``rewind``                kept weights start from ``rewind_point`` (Frankle & Carbin).
``random_reinit``         a fresh draw from the init distribution (``fresh``): the control that
                          shows the initial values matter.  (Zhou's code permutes the whole
                          layer of the previous round's start instead; see README.)
``random_reshuffle``      the kept values of ``rewind_point`` randomly permuted among the kept
                          positions of the same layer: same value distribution, wrong places.
``signed_reinit``         |fresh| with sign(``rewind_point``): Zhou's finding that the sign is
                          the part of the initialisation that matters.
``signed_reshuffle``      kept magnitudes of ``rewind_point`` permuted within the layer, with
                          the sign of ``rewind_point`` at the destination position.
``signed_constant``       σ_layer · sign(``rewind_point``), σ_layer = the init std of the layer
                          (the init formula's σ; Zhou's code takes the empirical std).
``rand_signed_constant``  σ_layer · (random ±1): the control for ``signed_constant``.

Mask-0 actions (pruned positions; ``frozen`` is what they hold throughout training).  Zhou's
code freezes a weight at the value it started the previous round with, and its variants set
that value to 0 where the magnitude shrank, so a zeroed weight is 0 in every later round:

``zero``                  0, and they stay 0 (Frankle & Carbin).
``freeze_init``           frozen at their ``rewind_point`` values.
``freeze_init_zero_mask`` Zhou's variant 1: pruned weights that were *zeroed* are 0, the other
                          pruned weights are frozen at ``rewind_point``.  Zhou et al. argue that
                          pruning "large final" weights works because it moves weights that
                          were heading to zero all the way there; this tests that reading.
``freeze_init_zero_all``  variant 2: every zeroed weight is 0, kept ones included (the kept
                          ones still train, starting from 0 again every round); pruned ones as
                          in variant 1.

*Zeroed* means: the magnitude shrank during the previous round (|prev_final| < |prev_start|),
or the weight started the previous round at exactly 0 (an earlier round zeroed it; a frozen
weight does not move, so the shrink test alone would bring it back to ``rewind_point``).  This
is Zhou's rule "0 where it shrank, else the previous start" whenever the previous start is the
rewind point or 0, which is every weight of a run with ``rewind`` and no late rewinding.

Result: ``weights = where(mask, kept values, frozen)``, except that ``freeze_init_zero_all``
also sets the zeroed kept positions to 0.  ``frozen`` is 0 at kept positions, so a masked
forward can use either ``where(mask, param, frozen)`` or ``param * mask + frozen``.
``trainable`` is the mask: only kept positions are moved by the optimiser.

All randomness comes from ``generator``: layers are visited in ``mask`` order; within a layer
the draws (a permutation, or random signs) cover the kept positions in row-major order.
``prev_start`` / ``prev_final`` may be ``None`` unless a ``*_zero_*`` mask-0 action needs them,
``fresh`` unless a ``*_reinit`` action does, and ``init_std`` unless a ``*signed_constant``
action does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["ActionError", "MASK1_ACTIONS", "MASK0_ACTIONS", "RoundStart", "round_start"]


class ActionError(ValueError):
    """A bad argument to :func:`round_start` (unknown action, missing or mismatched tensor)."""


@dataclass
class RoundStart:
    weights: dict[str, torch.Tensor]    # exact start value of every prunable weight
    frozen: dict[str, torch.Tensor]     # value of the pruned positions during training (0 at kept)
    trainable: dict[str, torch.Tensor]  # bool: positions the optimiser may move (== mask)


@dataclass
class _Layer:
    """Everything an action may look at for one prunable weight."""

    name: str
    mask: torch.Tensor                  # bool
    rewind_point: torch.Tensor
    prev_start: torch.Tensor | None
    prev_final: torch.Tensor | None
    fresh: torch.Tensor | None
    init_std: float | None
    generator: torch.Generator


def _sign(x: torch.Tensor) -> torch.Tensor:
    """-1, 0 or +1: sign(0) = 0 as in Zhou's ``np.sign`` (an exact 0 is a zeroed weight)."""
    return torch.sign(x)


def _need(layer: _Layer, field: str, action: str) -> torch.Tensor:
    value = getattr(layer, field)
    if value is None:
        raise ActionError(f"action {action!r} needs {field} for {layer.name!r}")
    return value


def _kept_permutation(layer: _Layer) -> torch.Tensor:
    """A permutation of the layer's kept positions, drawn from the generator."""
    n = int(layer.mask.sum())
    g = layer.generator
    return torch.randperm(n, generator=g, device=g.device).to(layer.mask.device)


def _scatter_kept(layer: _Layer, kept_values: torch.Tensor) -> torch.Tensor:
    """A tensor like rewind_point holding ``kept_values`` at the kept positions, 0 elsewhere."""
    out = torch.zeros_like(layer.rewind_point)
    out[layer.mask] = kept_values
    return out


# --------------------------------------------------------------------------- mask-1
# Each returns a full tensor whose kept positions hold the start values (other positions are
# ignored and overwritten by the mask-0 action).

def rewind(layer: _Layer) -> torch.Tensor:
    """Restart from the rewind point θ0 / θk: the ticket.

    Kept weights restart from the rewind point (θ0, or θk with late rewinding): the lottery ticket.
    """
    return layer.rewind_point.clone()


def random_reinit(layer: _Layer) -> torch.Tensor:
    """A fresh init draw: the random-reinit control.

    Kept weights get a fresh draw from the init distribution: Frankle & Carbin's random-reinit control.
    """
    return _need(layer, "fresh", "random_reinit").clone()


def random_reshuffle(layer: _Layer) -> torch.Tensor:
    """The layer's kept init values, shuffled.

    Kept weights get the layer's kept rewind values, permuted among the kept positions.
    """
    values = layer.rewind_point[layer.mask]
    return _scatter_kept(layer, values[_kept_permutation(layer)])


def signed_reinit(layer: _Layer) -> torch.Tensor:
    """A fresh init draw with the sign of θ0.

    Kept weights get a fresh init draw with the sign of θ0 (Zhou: the sign is what matters).
    """
    fresh = _need(layer, "fresh", "signed_reinit")
    return fresh.abs() * _sign(layer.rewind_point)


def signed_reshuffle(layer: _Layer) -> torch.Tensor:
    """Kept init magnitudes shuffled, sign of θ0 kept.

    Kept weights get the layer's kept magnitudes, permuted, with the sign of θ0.
    """
    magnitudes = layer.rewind_point[layer.mask].abs()
    signs = _sign(layer.rewind_point[layer.mask])
    return _scatter_kept(layer, magnitudes[_kept_permutation(layer)] * signs)


def signed_constant(layer: _Layer) -> torch.Tensor:
    """σ_layer · sign(θ0): Zhou's signed constant.

    Kept weights become σ_layer · sign(θ0), σ the layer's init std (Zhou's signed constant).
    """
    sigma = _need(layer, "init_std", "signed_constant")
    return float(sigma) * _sign(layer.rewind_point)


def rand_signed_constant(layer: _Layer) -> torch.Tensor:
    """±σ_layer with random signs (a control).

    Kept weights become ±σ_layer with random signs: the control of signed_constant.
    """
    sigma = _need(layer, "init_std", "rand_signed_constant")
    n = int(layer.mask.sum())
    g = layer.generator
    bits = torch.randint(0, 2, (n,), generator=g, device=g.device).to(layer.mask.device)
    signs = (bits * 2 - 1).to(layer.rewind_point.dtype)
    return _scatter_kept(layer, float(sigma) * signs)


MASK1_ACTIONS: dict[str, Callable[[_Layer], torch.Tensor]] = {
    "rewind": rewind,
    "random_reinit": random_reinit,
    "random_reshuffle": random_reshuffle,
    "signed_reinit": signed_reinit,
    "signed_reshuffle": signed_reshuffle,
    "signed_constant": signed_constant,
    "rand_signed_constant": rand_signed_constant,
}


# --------------------------------------------------------------------------- mask-0
# Each returns (frozen, zero_kept): ``frozen`` holds the values of the pruned positions (any
# value at kept positions is cleared by round_start); ``zero_kept`` is a bool tensor of kept
# positions to set to 0 at the start, or None.

def _zeroed(layer: _Layer, action: str) -> torch.Tensor:
    """Shrank during the previous round, or started it at 0 (zeroed before: stays 0)."""
    start = _need(layer, "prev_start", action)
    final = _need(layer, "prev_final", action)
    return (final.abs() < start.abs()) | (start == 0)


def zero(layer: _Layer) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Pruned weights are 0 and stay 0.

    Pruned weights are set to 0 and stay 0 (standard pruning).
    """
    return torch.zeros_like(layer.rewind_point), None


def freeze_init(layer: _Layer) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Pruned weights frozen at their init value.

    Pruned weights are frozen at their rewind-point value instead of zeroed (Zhou's mask-0 = init).
    """
    return layer.rewind_point.clone(), None


def freeze_init_zero_mask(layer: _Layer) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Frozen at init; zeroed ones go to 0 (Zhou's variant 1).

    Pruned weights that shrank in the previous round (or were zeroed before) are 0, the other
    pruned weights stay frozen at the rewind point.
    """
    zeroed = _zeroed(layer, "freeze_init_zero_mask")
    return torch.where(zeroed, torch.zeros_like(layer.rewind_point), layer.rewind_point), None


def freeze_init_zero_all(layer: _Layer) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Every zeroed weight goes to 0, kept ones too (Zhou v2).

    Every weight that shrank (or was zeroed before) is 0, kept ones included; the other pruned
    weights stay frozen at the rewind point.
    """
    zeroed = _zeroed(layer, "freeze_init_zero_all")
    frozen = torch.where(zeroed, torch.zeros_like(layer.rewind_point), layer.rewind_point)
    return frozen, zeroed & layer.mask


MASK0_ACTIONS: dict[str, Callable[[_Layer], tuple]] = {
    "zero": zero,
    "freeze_init": freeze_init,
    "freeze_init_zero_mask": freeze_init_zero_mask,
    "freeze_init_zero_all": freeze_init_zero_all,
}


# --------------------------------------------------------------------------- entry point

def _check_shapes(name: str, reference: torch.Tensor, tensors: dict) -> None:
    for label, table in tensors.items():
        if table is None:
            continue
        if name not in table:
            raise ActionError(f"{label} has no entry for prunable weight {name!r}")
        if tuple(table[name].shape) != tuple(reference.shape):
            raise ActionError(
                f"mismatched shapes for {name!r}: mask {tuple(reference.shape)}, "
                f"{label} {tuple(table[name].shape)}"
            )


def _entry_like(table: dict[str, torch.Tensor] | None, name: str, like: torch.Tensor) -> torch.Tensor | None:
    """`table[name]` on `like`'s device and dtype, or None when there is no table."""
    return None if table is None else table[name].detach().to(device=like.device, dtype=like.dtype)


def round_start(
    *,
    mask1: str,
    mask0: str,
    mask: dict[str, torch.Tensor],
    rewind_point: dict[str, torch.Tensor],
    prev_start: dict[str, torch.Tensor] | None,
    prev_final: dict[str, torch.Tensor] | None,
    fresh: dict[str, torch.Tensor] | None,
    init_std: dict[str, float] | None,
    generator: torch.Generator,
) -> RoundStart:
    """Start weights, frozen values and trainable positions of every prunable weight."""
    if mask1 not in MASK1_ACTIONS:
        raise ActionError(
            f"unknown mask-1 action {mask1!r}; allowed: {', '.join(MASK1_ACTIONS)}"
        )
    if mask0 not in MASK0_ACTIONS:
        raise ActionError(
            f"unknown mask-0 action {mask0!r}; allowed: {', '.join(MASK0_ACTIONS)}"
        )
    set_kept = MASK1_ACTIONS[mask1]
    set_pruned = MASK0_ACTIONS[mask0]

    weights, frozen, trainable = {}, {}, {}
    for name, m in mask.items():
        m = m.detach().to(torch.bool)
        _check_shapes(
            name,
            m,
            {
                "rewind_point": rewind_point,
                "prev_start": prev_start,
                "prev_final": prev_final,
                "fresh": fresh,
            },
        )
        point = rewind_point[name].detach()
        device = point.device
        m = m.to(device)

        layer = _Layer(
            name=name,
            mask=m,
            rewind_point=point,
            prev_start=_entry_like(prev_start, name, point),
            prev_final=_entry_like(prev_final, name, point),
            fresh=_entry_like(fresh, name, point),
            init_std=None if init_std is None else init_std.get(name),
            generator=generator,
        )
        kept_values = set_kept(layer)
        frozen_values, zero_kept = set_pruned(layer)
        frozen_values = torch.where(m, torch.zeros_like(frozen_values), frozen_values)
        start = torch.where(m, kept_values, frozen_values)
        if zero_kept is not None:
            start = torch.where(zero_kept, torch.zeros_like(start), start)
        weights[name] = start
        frozen[name] = frozen_values
        trainable[name] = m.clone()
    return RoundStart(weights=weights, frozen=frozen, trainable=trainable)
