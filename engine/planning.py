"""Round planning: how many iterations a round trains, the seeds of a round, what is done on disk.

Seeds are derived from (seed, round, purpose), never drawn, which is what makes a resumed run
end with the masks of one that never stopped; every module that replays a round (runner,
LMC, sweeps) asks here.
"""

from __future__ import annotations

from pathlib import Path

from engine.config import ExperimentConfig, Schedule
from engine.experiments import experiment_of, total_rounds
from engine.layout import RunLayout
from engine.store import read_result
from engine.training import derive_seed


def round_iterations(config: ExperimentConfig, schedule: Schedule) -> int:
    """Iterations one round trains: the schedule, or the longest segment of a mask-training run."""
    return experiment_of(config).round_iterations(config, schedule)


def derive_round_seed(seed: int, round_: int) -> int:
    """The seed of one round's data order and augmentation."""
    return derive_seed(seed, round_, "train")


def rounds_done(run_dir: Path, config: ExperimentConfig) -> int:
    """Finished rounds on disk, over all trials (status.json's rounds_done)."""
    layout = RunLayout(run_dir)
    return sum(1 for t in range(config.trials) for r in range(total_rounds(config)) if layout.result(t, r).is_file())


def check_stored_rounds(run_dir: Path, config: ExperimentConfig) -> None:
    """Reads back every finished round's result.json, so a damaged one stops a resume before it
    trains, with a message naming the file and how to recover (StoreError)."""
    for t in range(config.trials):
        for r in range(total_rounds(config)):
            path = RunLayout(run_dir).result(t, r)
            if path.is_file() or path.is_symlink():
                read_result(path.parent)
