"""Mask overlap: how much two masks keep the same weights (Jaccard index), over stored masks.

Jaccard(A, B) = |A ∩ B| / |A ∪ B| over the kept positions, pooled over all prunable layers
("all") and per layer ("layers"); two empty masks count as identical (1.0). Each result also
carries "chance": the Jaccard expected of two independent random masks with the same
densities p and q, pq / (p + q - pq), so an overlap can be read against what random pruning
would give (IMP masks of consecutive rounds are nested, so their overlap is simply the
density ratio; across trials and criteria it is the interesting figure).

Everything here is a pure function of the masks in a run store (round-<r>/mask.safetensors):
consecutive rounds of a trial, the same round across trials, and the same round across runs
(e.g. the criteria of a sweep).

Masks are read as numpy arrays (safetensors.numpy), so `lth-tui export` and the app's overlap
views never import torch; counts are integers, so the figures do not depend on the library.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from engine.layout import MASK, RunLayout
from engine.store import StoreError

__all__ = ["between_runs", "between_trials", "consecutive_rounds", "jaccard", "load_mask", "run_overlaps"]


def _chance(p: float, q: float) -> float:
    union = p + q - p * q
    return 1.0 if union == 0 else p * q / union


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int, int]:
    return (int(np.count_nonzero(a & b)), int(np.count_nonzero(a | b)),
            int(np.count_nonzero(a)), int(np.count_nonzero(b)))


def _bool(mask: Any) -> np.ndarray:
    """A mask as a numpy bool array (numpy arrays, CPU torch tensors and lists are accepted)."""
    return np.asarray(mask).astype(bool, copy=False)


def jaccard(mask_a: dict[str, Any], mask_b: dict[str, Any]) -> dict[str, Any]:
    """{"all": pooled Jaccard, "layers": {name: Jaccard}, "chance": pooled chance level,
    "kept_a", "kept_b", "total"} over the layers both masks have (shapes must agree)."""
    names = [n for n in mask_a if n in mask_b]
    if not names:
        raise ValueError("the two masks share no layer")
    inter = union = kept_a = kept_b = total = 0
    layers = {}
    for name in names:
        a, b = _bool(mask_a[name]), _bool(mask_b[name])
        if a.shape != b.shape:
            raise ValueError(f"{name}: mask shapes {tuple(a.shape)} and {tuple(b.shape)} differ")
        i, u, ka, kb = _pair(a, b)
        layers[name] = 1.0 if u == 0 else i / u
        inter, union, kept_a, kept_b, total = inter + i, union + u, kept_a + ka, kept_b + kb, total + a.size
    return {"all": 1.0 if union == 0 else inter / union, "layers": layers,
            "chance": _chance(kept_a / total, kept_b / total), "kept_a": kept_a, "kept_b": kept_b, "total": total}


def load_mask(run_dir: Path | str, trial: int, round_: int) -> dict[str, np.ndarray] | None:
    """round-<r>/mask.safetensors of a trial as numpy bool arrays, or None when absent."""
    from safetensors.numpy import load_file

    path = RunLayout(run_dir).mask(trial, round_)
    if not path.is_file():
        return None
    try:
        return {n: m.astype(bool, copy=False) for n, m in load_file(str(path)).items()}
    except Exception as exc:  # safetensors raises several types for damaged headers
        raise StoreError(f"{path.name} is damaged: {exc}") from None


def _trials(run_dir: Path) -> list[int]:
    return RunLayout(run_dir).trials_on_disk()


def _rounds_with_mask(run_dir: Path, trial: int) -> list[int]:
    return [r for r, d in RunLayout(run_dir).rounds_on_disk(trial) if (d / MASK).is_file()]


def consecutive_rounds(run_dir: Path | str, trial: int = 0) -> list[dict[str, Any]]:
    """[{"rounds": [r-1, r], **jaccard}] for each pair of stored consecutive rounds of a trial."""
    rounds = _rounds_with_mask(Path(run_dir), trial)
    out = []
    for r0, r1 in zip(rounds, rounds[1:]):
        if r1 != r0 + 1:
            continue
        out.append({"rounds": [r0, r1], **jaccard(load_mask(run_dir, trial, r0), load_mask(run_dir, trial, r1))})
    return out


def between_trials(run_dir: Path | str, round_: int) -> dict[str, Any]:
    """Every pair of trials at one round: {"round", "pairs": [{"trials": [a, b], **jaccard}],
    "mean", "chance_mean"} (mean None with fewer than two trials there)."""
    trials = [t for t in _trials(Path(run_dir)) if load_mask(run_dir, t, round_) is not None]
    masks = {t: load_mask(run_dir, t, round_) for t in trials}
    pairs = [{"trials": [a, b], **jaccard(masks[a], masks[b])} for a, b in combinations(trials, 2)]
    mean = sum(p["all"] for p in pairs) / len(pairs) if pairs else None
    chance = sum(p["chance"] for p in pairs) / len(pairs) if pairs else None
    return {"round": round_, "pairs": pairs, "mean": mean, "chance_mean": chance}


def run_overlaps(run_dir: Path | str) -> dict[str, Any]:
    """All overlaps inside one run: {"consecutive": {trial: [...]}, "between_trials": {round: {...}}}
    (JSON-ready; dict keys are strings)."""
    run_dir = Path(run_dir)
    trials = _trials(run_dir)
    consecutive = {str(t): consecutive_rounds(run_dir, t) for t in trials}
    rounds = sorted({r for t in trials for r in _rounds_with_mask(run_dir, t)})
    across = {str(r): between_trials(run_dir, r) for r in rounds} if len(trials) > 1 else {}
    return {"consecutive": consecutive, "between_trials": across}


def between_runs(run_dirs: list[Path | str], round_: int, trial: int = 0) -> dict[str, Any]:
    """The pooled Jaccard of every pair of runs at one round and trial: {"runs": [ids],
    "round", "trial", "matrix": [[...]], "chance": [[...]], "weights_remaining": [...]}; a run
    without that round has None in its row and column (the diagonal is 1.0 where present)."""
    masks = [load_mask(d, trial, round_) for d in run_dirs]
    n = len(masks)
    matrix: list[list[float | None]] = [[None] * n for _ in range(n)]
    chance: list[list[float | None]] = [[None] * n for _ in range(n)]
    density: list[float | None] = []
    for m in masks:
        if m is None:
            density.append(None)
        else:
            density.append(sum(int(np.count_nonzero(v)) for v in m.values()) / sum(v.size for v in m.values()))
    for i in range(n):
        for j in range(i, n):
            if masks[i] is None or masks[j] is None:
                continue
            result = jaccard(masks[i], masks[j])
            matrix[i][j] = matrix[j][i] = result["all"]
            chance[i][j] = chance[j][i] = result["chance"]
    return {"runs": [Path(d).name for d in run_dirs], "round": round_, "trial": trial, "matrix": matrix,
            "chance": chance, "weights_remaining": density}
