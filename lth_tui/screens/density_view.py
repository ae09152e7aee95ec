"""The Run screen's second density: weights that are non-zero in the forward pass.

Under the freezing mask-0 actions pruned weights stop training but keep their values, so
the trainable fraction ("weights remaining") and the non-zero fraction differ (engine/density.py).
The Run screen draws the sparsity curve a second time at the non-zero density and shows both
numbers per layer; runs made before the key existed, and runs where the two agree, look as before.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from rich.text import Text

__all__ = ["accuracy_kind", "layer_cell", "nonzero_series"]


def accuracy_kind(model: Any) -> str:
    """What the curve's accuracy is: "at early stop", or "final (no hold-out)" for a run without one."""
    records = list(model.records.values())
    if records and all(rec.get("test_accuracy_at_early_stop") is None for rec in records):
        return "final (no hold-out)"
    return "at early stop"


def _differs(model: Any) -> bool:
    return any(rec.get("weights_nonzero") is not None
               and abs(rec["weights_nonzero"] - rec.get("weights_remaining", 0)) > 1e-12
               for rec in model.records.values())


def nonzero_series(model: Any, name: str, build: Callable[..., Any], color: str | None) -> Any:
    """The curve of figure `name` against the non-zero % of the forward pass, or None when it is the trainable curve."""
    if not _differs(model):
        return None
    return build(model, name, color, f"{model.label()} at non-zero % (forward pass)", x="weights_nonzero")


def layer_cell(model: Any, r: int, name: str | None, trainable: float) -> str | Text:
    """"trainable" or "trainable (nz non-zero)" in % for layer `name` (None: all weights) of round r."""
    if trainable != trainable:
        return ""
    text = f"{100 * trainable:.1f}"
    values = []
    for (_, rr), rec in model.records.items():
        if rr == r:
            value = rec.get("weights_nonzero") if name is None else (rec.get("layers_nonzero") or {}).get(name)
            if value is not None:
                values.append(value)
    if values and abs(statistics.fmean(values) - trainable) > 1e-12:
        text += f" (nz {100 * statistics.fmean(values):.1f})"
    return Text(text, style="bold") if name is None else text
