"""Maene et al. 2021, section 4.3 (and Paul et al. 2023) on MNIST-1D, on a CPU: is each IMP
round's solution linearly connected to the one before it, and is that special to magnitude
tickets?

Runs the `mnist1d-lottery` preset (MLP 500-500, 14 rounds of IMP, rewind to θ0) with
`analysis.successive = true` and 2 trials, once with magnitude pruning (large_final) and once
with random pruning (criterion random), as one sweep through the `lth-tui` CLI, then reads
the sweep's CSV export and prints, per round: weights remaining, test accuracy, and the
successive-round error barrier (projected onto round r's mask, test split) with the L2 distance
and cosine similarity between the two solutions, mean ± std over the trials.

    OMP_NUM_THREADS=1 python reproductions/maene_successive_mnist1d.py [--runs-dir DIR] [--rounds N]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRITERIA = ("large_final", "random")
FIGURES = (("test_accuracy_at_early_stop", "acc %", 100.0), ("successive_barrier", "barrier %", 100.0),
           ("successive_l2", "L2", 1.0), ("successive_cosine", "cos", 1.0))


def lth_tui(*args: str) -> str:
    """One `lth-tui` command of this checkout; its standard output (it must succeed)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    done = subprocess.run([sys.executable, "-m", "lth_tui.cli", *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"lth-tui {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def cell(values: list[float], scale: float) -> str:
    if not values:
        return "–"
    mean = statistics.fmean(values) * scale
    std = (statistics.stdev(values) if len(values) > 1 else 0.0) * scale
    digits = 2 if scale == 100.0 else 4
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def table(rows: list[dict[str, str]]) -> str:
    """Markdown: one line per round, magnitude and random side by side."""
    by = {}
    for row in rows:
        by.setdefault((int(row["round"]), row["prune.criterion"]), []).append(row)
    rounds = sorted({r for r, _ in by})
    head = ["round", "weights %"] + [f"{label} ({'magnitude' if c == 'large_final' else 'random'})"
                                     for c in CRITERIA for _, label, _ in FIGURES]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for r in rounds:
        weights = [float(x["weights_remaining"]) for c in CRITERIA for x in by.get((r, c), [])]
        cells = [str(r), f"{100 * statistics.fmean(weights):.2f}"]
        for c in CRITERIA:
            for key, _, scale in FIGURES:
                cells.append(cell([float(x[key]) for x in by.get((r, c), []) if x.get(key)], scale))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", type=Path, default=None, help="run store (default: lth-tui's)")
    parser.add_argument("--rounds", type=int, default=14, help="IMP rounds (the preset's 14 reach ~4%% weights)")
    args = parser.parse_args()
    started = time.time()
    where = ["--runs-dir", str(args.runs_dir)] if args.runs_dir else []
    out = lth_tui("run", "mnist1d-lottery", *where, "--device", "cpu", "--trials", "2",
                  "--set", "analysis.successive=true", "--set", f"prune.rounds={args.rounds}",
                  "--sweep", "prune.criterion=" + ",".join(CRITERIA), "--quiet")
    group = next(line.split()[1] for line in out.splitlines() if line.startswith("group: "))
    rows = list(csv.DictReader(io.StringIO(lth_tui("export", group, *where, "--format", "csv", "-o", "-"))))
    print(f"group: {group}")
    print(table(rows))
    print(f"wall time: {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
