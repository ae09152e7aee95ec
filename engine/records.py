"""Typed records of the run store and the one mean ± std over trials.

Every figure shown "mean ± std over trials" (summary.json's curve, the Run screen, exports,
stability tables) comes from `mean_std`, so a reader cannot disagree with the summary about
what a missing value or a single trial means. Pure Python: the read-only commands use it.
"""

from __future__ import annotations

import math
import statistics
from typing import Iterable, NamedTuple


class MeanStd(NamedTuple):
    """Mean, sample standard deviation (0 for one value) and count of the values present."""

    mean: float | None
    std: float | None
    n: int


def _present(value: object) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value))


def mean_std(values: Iterable[object]) -> MeanStd:
    """Over the finite numbers among `values` (None, NaN, text are absent, not zero); nothing present
    gives (None, None, 0)."""
    present = [float(v) for v in values if _present(v)]
    if not present:
        return MeanStd(None, None, 0)
    return MeanStd(statistics.fmean(present), statistics.stdev(present) if len(present) > 1 else 0.0, len(present))


# Round figures summarised as mean/std/n only when a run records them (LMC, mask training, successive).
OPTIONAL_FIGURES = ("lmc_barrier", "sampled_mask_accuracy", "expected_mask_accuracy", "test_accuracy_best",
                    "successive_barrier", "successive_barrier_train", "successive_barrier_unprojected", "successive_l2",
                    "successive_cosine", "rewind_distance")
# (round-record field, curve name): always present in a curve point, null without values
# (no hold-out, data.val_size = 0, leaves the early-stop figures null).
CORE_FIGURES = (("test_accuracy_at_early_stop", "test_accuracy"), ("test_accuracy_final", "test_accuracy_final"),
                ("early_stop_iteration", "early_stop_iteration"), ("supermask_accuracy", "supermask_accuracy"))


def curve_points(records: Iterable[dict]) -> list[dict]:
    """summary.json's `curve` from round records (any trials, any order): one point per round with
    mean weights remaining, `<figure>_mean`/`_std` and `n`; the vocabulary every reader uses."""
    by_round: dict[int, list[dict]] = {}
    for record in records:
        by_round.setdefault(record["round"], []).append(record)
    curve = []
    for r, recs in sorted(by_round.items()):
        point: dict = {"round": r, "weights_remaining": statistics.fmean(x["weights_remaining"] for x in recs), "n": len(recs)}
        for key in ("weights_trainable", "weights_nonzero"):  # engine/density.py; absent from older runs
            stats = mean_std(x.get(key) for x in recs)
            if stats.n:
                point[key] = stats.mean
        for key, out in CORE_FIGURES:
            stats = mean_std(x.get(key) for x in recs)
            point[f"{out}_mean"], point[f"{out}_std"] = stats.mean, stats.std
        for key in OPTIONAL_FIGURES:
            stats = mean_std(x.get(key) for x in recs)
            if stats.n:
                point[f"{key}_mean"], point[f"{key}_std"], point[f"{key}_n"] = stats.mean, stats.std, stats.n
        curve.append(point)
    return curve
