"""summary.json, rebuilt from the per-round result files: the files on disk are the truth.

Pure of torch: a resumed, a batched and a mask-training run all summarise the same way, and
the curve's mean ± std is `engine.records.curve_points`, the one every reader shares.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.config import ExperimentConfig
from engine.experiments import total_rounds
from engine.layout import RunLayout
from engine.records import curve_points
from engine.store import read_result


def build_summary(run_dir: Path, config: ExperimentConfig, state: str) -> dict[str, Any]:
    """summary.json: the config, every trial's finished rounds in order, and the curve over trials."""
    layout = RunLayout(run_dir)
    trials = []
    for t in range(config.trials):
        rounds = [read_result(layout.round_dir(t, r))
                  for r in range(total_rounds(config)) if layout.result(t, r).is_file()]
        trials.append({"seed": config.seed + t, "rounds": rounds})
    curve = curve_points(record for trial in trials for record in trial["rounds"])
    return {"run_id": Path(run_dir).name, "state": state, "config": config.to_dict(), "trials": trials, "curve": curve}
