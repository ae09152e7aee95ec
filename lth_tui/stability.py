"""Successive-round connectivity and stability studies, read from the run store (no torch).

Two views share this module, the exports (lth_tui/export.py) and the app
(lth_tui/components/successive.py, lth_tui/screens/group.py):

* per run: the `successive.json` of every round (engine/successive.py) pooled over trials,
  barrier and distances against weights remaining;
* per sweep group: for a sweep over `train.batch_size`, `train.warmup_iterations`,
  `prune.rewind_iteration` (or any key) of runs with `analysis.lmc`, the instability (the LMC
  barrier, Frankle et al. 2020) against the swept value, and the final ticket curve of every
  value: "which batch size makes IMP stable at θ0" in one table and one plot.

Everything here is a pure function of JSON files; a damaged file is skipped, never fatal.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from engine.records import MeanStd, SuccessiveRecord, mean_std
from engine.schema import is_number as _number
from engine.store import read_successive
from lth_tui.untrusted import md_text, one_line

__all__ = ["SUCCESSIVE_FIGURES", "read_successive", "stability_markdown", "stability_study", "successive_markdown",
           "successive_rounds"]


# (figure, label, how to read it from a record, scale for display)
SUCCESSIVE_FIGURES = (
    ("barrier", "barrier % (projected, test)", lambda rec: rec["projected"]["barrier"], 100.0),
    ("barrier_train", "barrier % (projected, train)", lambda rec: rec["projected"].get("barrier_train"), 100.0),
    ("barrier_unprojected", "barrier % (unprojected, test)", lambda rec: rec["unprojected"]["barrier"], 100.0),
    ("l2", "L2 distance (projected)", lambda rec: rec["projected"]["l2"], 1.0),
    ("cosine", "cosine (projected)", lambda rec: rec["projected"].get("cosine"), 1.0),
    ("l2_unprojected", "L2 distance (unprojected)", lambda rec: rec["unprojected"]["l2"], 1.0),
    ("angular", "angular distance (Maene)", lambda rec: rec.get("angular_distance"), 1.0),
    ("rewind_distance", "L2 from its rewind point",
     lambda rec: (rec.get("distance_from_rewind") or {}).get("current", {}).get("l2"), 1.0),
)


def successive_rounds(records: list[SuccessiveRecord]) -> list[dict[str, Any]]:
    """Per round, pooled over trials: {"round", "weights_remaining", "n", <figure>: MeanStd}
    (engine.records.mean_std: (None, None, 0) where no trial has the figure)."""
    by_round: dict[int, list[SuccessiveRecord]] = {}
    for rec in records:
        by_round.setdefault(rec["round"], []).append(rec)
    out = []
    for r, recs in sorted(by_round.items()):
        row: dict[str, Any] = {"round": r, "weights_remaining": statistics.fmean(x["weights_remaining"] for x in recs),
                               "n": len(recs)}
        for key, _, read, _ in SUCCESSIVE_FIGURES:
            row[key] = mean_std([read(x) for x in recs])
        out.append(row)
    return out


def _pm(stat: MeanStd, scale: float, digits: int) -> str:
    mean, std, n = stat
    if n == 0:
        return "–"
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}" if n > 1 else f"{scale * mean:.{digits}f}"


def successive_markdown(run_dir: Path | str) -> list[str]:
    """The "Successive rounds" section of a run's Markdown export ([] when it has none)."""
    rows = successive_rounds(read_successive(run_dir))
    if not rows:
        return []
    lines = ["", "## Successive rounds", "",
             "Error barrier on the straight line from round r−1's solution to round r's (Maene et al. 2021, "
             "section 4.3; Paul et al. 2023): projected (r−1's weights under round r's mask) and as they are; the "
             "highest error on the line minus the mean of its ends. L2 distance and cosine similarity between the two "
             "solutions over every trainable parameter; each solution's L2 distance from its rewind point (the "
             "round's start); angular: Maene's 2·∠/π between the two over round r's kept weights. Mean ± std "
             "over trials.", "",
             "| round | weights remaining % | barrier % test | barrier % train | unprojected barrier % | L2 | cosine | "
             "unprojected L2 | angular | L2 from rewind point | n |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['round']} | {100 * row['weights_remaining']:.2f} | {_pm(row['barrier'], 100, 2)} | "
                     f"{_pm(row['barrier_train'], 100, 2)} | {_pm(row['barrier_unprojected'], 100, 2)} | "
                     f"{_pm(row['l2'], 1, 4)} | {_pm(row['cosine'], 1, 4)} | {_pm(row['l2_unprojected'], 1, 4)} | "
                     f"{_pm(row['angular'], 1, 4)} | "
                     f"{_pm(row['rewind_distance'], 1, 4)} | {row['n']} |")
    return lines


# -- stability studies (sweep groups) -------------------------------------------------------------


def _value_key(value: Any) -> tuple[int, float, str]:
    """Sort swept values numerically when they are numbers or lengths ("10ep"), else as text."""
    text = str(value)
    digits = text.rstrip("itep")
    try:
        return (0, float(digits), text)
    except ValueError:
        return (1, 0.0, text)


def stability_study(entries: list[tuple[dict[str, Any], dict[str, Any] | None]]) -> list[dict[str, Any]]:
    """One row per run of a group, ordered by swept value: {"swept", "label", "instability": per
    round (mean, std, n) of lmc_barrier, "dense": round 0's, "curve": [(weights, acc mean, acc
    std)], "final": the last round's accuracy, "successive": mean successive barrier over rounds}.
    `entries` are (group.json's run entry, the run's summary or None)."""
    rows = []
    for entry, summary in entries:
        swept = entry.get("swept") or {}
        curve = (summary or {}).get("curve") or []
        instability = {p["round"]: (p["lmc_barrier_mean"], p.get("lmc_barrier_std", 0.0), p.get("lmc_barrier_n", 1))
                       for p in curve if _number(p.get("lmc_barrier_mean"))}
        successive = [p["successive_barrier_mean"] for p in curve if _number(p.get("successive_barrier_mean"))]
        label = one_line(", ".join(f"{k.rpartition('.')[2]}={v}" for k, v in swept.items()), 200)
        rows.append({"swept": swept, "label": label,
                     "instability": instability, "dense": instability.get(0),
                     "curve": [(p["weights_remaining"], p["test_accuracy_mean"], p.get("test_accuracy_std", 0.0))
                               for p in curve if _number(p.get("test_accuracy_mean"))],
                     "final": curve[-1] if curve else None,
                     "successive": statistics.fmean(successive) if successive else None})
    return sorted(rows, key=lambda row: tuple(_value_key(v) for v in row["swept"].values()))


def stability_markdown(entries: list[tuple[dict[str, Any], dict[str, Any] | None]]) -> list[str]:
    """The "Stability study" section of a group's Markdown export ([] when no run has LMC results)."""
    rows = stability_study(entries)
    if not any(row["instability"] for row in rows):
        return []
    rounds = sorted({r for row in rows for r in row["instability"]})
    lines = ["", "## Stability study", "",
             "Instability (LMC error barrier %, two copies with different SGD noise; mean ± std over trials) against "
             "the swept value, per round, with the final ticket's accuracy and, where measured, the mean successive-"
             "round barrier.", "",
             "| swept | " + " | ".join(f"r{r}" for r in rounds)
             + " | last round acc % @ weights % | successive barrier % |",
             "|---|" + "---:|" * len(rounds) + "---:|---:|"]
    for row in rows:
        cells = [_pm(row["instability"][r], 100, 2) if r in row["instability"] else "–" for r in rounds]
        final = row["final"]
        last = ("–" if final is None
                else f"{100 * final['test_accuracy_mean']:.2f} @ {100 * final['weights_remaining']:.2f}")
        succ = "–" if row["successive"] is None else f"{100 * row['successive']:.2f}"
        lines.append(f"| {md_text(row['label'], 200)} | " + " | ".join(cells) + f" | {last} | {succ} |")
    return lines
