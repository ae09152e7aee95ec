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
