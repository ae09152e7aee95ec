"""Two densities of a pruned net: what trains, and what the forward pass multiplies by.

Under the `zero` mask-0 action they are the same number. Under the freezing ones
(`freeze_init`, Zhou's variants 1 and 2) a pruned weight stops training but keeps a non-zero
value in every forward pass, so "weights remaining" (the trainable fraction) reads like a
sparsity that the network does not have. Every round therefore records both:

- ``weights_trainable`` (the same number as ``weights_remaining``, kept under its old name
  too) and ``layers`` per layer: the fraction of prunable weights the optimiser moves (mask = 1);
- ``weights_nonzero`` and ``layers_nonzero``: the fraction of prunable weights that are non-zero
  in the forward pass, i.e. kept (mask = 1) or pruned but frozen at a non-zero value. A kept
  weight counts as non-zero even at the instant variant 2 starts it at 0: it trains from there.
"""

from __future__ import annotations

import torch

__all__ = ["density_record", "mask_fractions", "nonzero_fractions"]


def mask_fractions(masks: dict[str, torch.Tensor]) -> tuple[float, dict[str, float], int, int]:
    """(overall trainable fraction, per-layer fractions, kept, total) of a mask; an expected mask
    (probabilities) counts its rounded-down sum, as the round records always have."""
    kept = {name: int(m.sum()) for name, m in masks.items()}
    total = {name: m.numel() for name, m in masks.items()}
    all_kept, all_total = sum(kept.values()), sum(total.values())
    return all_kept / all_total, {n: kept[n] / total[n] for n in masks}, all_kept, all_total


def nonzero_fractions(masks: dict[str, torch.Tensor], frozen: dict[str, torch.Tensor] | None
                      ) -> tuple[float, dict[str, float], int]:
    """(overall fraction, per-layer fractions, count) of weights kept or frozen at a non-zero value."""
    counts, totals = {}, {}
    for name, mask in masks.items():
        live = mask.bool()
        if frozen is not None and name in frozen:
            live = live | (frozen[name].to(live.device) != 0)
        counts[name], totals[name] = int(live.sum()), live.numel()
    total = sum(totals.values())
    return sum(counts.values()) / total, {n: counts[n] / totals[n] for n in masks}, sum(counts.values())


def density_record(masks: dict[str, torch.Tensor], frozen: dict[str, torch.Tensor] | None,
                   trainable: float) -> dict[str, object]:
    """The density keys of a round record / round_start event."""
    overall, layers, count = nonzero_fractions(masks, frozen)
    return {"weights_trainable": trainable, "weights_nonzero": overall, "layers_nonzero": layers, "nonzero": count}
