"""The experiment kinds a run can be: what differs between IMP and the mask-training experiments.

Like the criteria and models registries, `EXPERIMENTS` maps a config's `experiment` name to
an object; everything that asks "is this an IMP run?" asks it here instead. The module is pure
data and imports nothing of the engine at run time, so validation, the run store's readers and
the read-only commands use it without importing torch, and every engine module may import it
without making a cycle.

How a trial trains is named, not imported: `trial` (and `trials_together`) is a
"module:function" the runner imports when it runs one (engine/runner.py, `entry_point`), called
as `function(session, t)` (`function(session, trials)`) with the runner's RunSession. Adding an
experiment kind is its module (that function) and one line below.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from engine.config import ExperimentConfig, Schedule

__all__ = ["ANALYSES", "EXPERIMENTS", "Experiment", "ImpExperiment", "MaskTrainingExperiment", "experiment_of",
           "total_rounds"]

# The [analysis] switches; an experiment names those it supports.
ANALYSES = ("lmc", "successive")


@dataclass(frozen=True)
class Experiment(ABC):
    """One experiment kind: its name, and how its runs are laid out and run."""

    name: str
    trial: str  # "module:function" training all rounds of one trial, (session, t) -> None
    mask_training: ClassVar[bool]  # trains a mask over frozen weights: no pruning criterion, no rewind point
    analyses: frozenset[str] = frozenset()  # the [analysis] switches it supports (ANALYSES)
    # "module:function" training several trials round by round as one batched model,
    # (session, trials) -> None; None: its trials train one after another only
    trials_together: str | None = None

    @property
    def parallel_trials(self) -> bool:
        """Whether `parallel_trials` may batch its trials (engine/batched.py decides when it does)."""
        return self.trials_together is not None

    @abstractmethod
    def total_rounds(self, config: ExperimentConfig) -> int:
        """Rounds recorded per trial."""

    def round_iterations(self, config: ExperimentConfig, schedule: Schedule) -> int:
        """Iterations one round trains (the longest, where rounds differ)."""
        return schedule.iterations


@dataclass(frozen=True)
class ImpExperiment(Experiment):
    """Iterative magnitude pruning: round 0 dense, then train, prune, rewind."""

    mask_training: ClassVar[bool] = False

    def total_rounds(self, config: ExperimentConfig) -> int:
        """Round 0 (dense) plus one per pruning step, or one for oneshot."""
        if config.prune.rounds == 0:
            return 1
        return 2 if config.prune.strategy == "oneshot" else config.prune.rounds + 1


@dataclass(frozen=True)
class MaskTrainingExperiment(Experiment):
    """One training of a mask over frozen weights, cut into [supermask] rounds segments."""

    mask_training: ClassVar[bool] = True

    def total_rounds(self, config: ExperimentConfig) -> int:
        """The segments of the one training (supermask.rounds)."""
        return config.supermask.rounds

    def round_iterations(self, config: ExperimentConfig, schedule: Schedule) -> int:
        """The longest segment: train.iterations split in supermask.rounds, rounded up."""
        return -(-schedule.iterations // config.supermask.rounds)


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    ImpExperiment("imp",  # iterative magnitude pruning: train, prune, rewind (Frankle & Carbin)
                  trial="engine.runner:RunSession.trial", analyses=frozenset(ANALYSES),
                  trials_together="engine.runner:RunSession.trials_together"),
    MaskTrainingExperiment("supermask",  # a learned Bernoulli mask over frozen weights (Zhou et al.)
                           trial="engine.supermasks:run_supermask_trial"),
    MaskTrainingExperiment("edge-popup",  # the top-k scores of each layer over frozen weights (Ramanujan et al.)
                           trial="engine.supermasks:run_supermask_trial"),
)}


def experiment_of(config: ExperimentConfig) -> Experiment:
    """The kind of a validated config (an unknown name is validation's error, not a KeyError here)."""
    return EXPERIMENTS[config.experiment]


def total_rounds(config: ExperimentConfig) -> int:
    """Rounds trained per trial of this run."""
    return experiment_of(config).total_rounds(config)
