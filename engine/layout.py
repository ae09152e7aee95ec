"""Where every file of a run dir lives: the one place that builds run-store paths.

The layout is the run-store contract of design.md ("Run store"); readers and writers ask a
`RunLayout` for a path instead of spelling `f"trial-{t}/round-{r}"` themselves, so a change of
layout is one edit and a typo is impossible. Pure Python (no torch): the read-only commands use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CONFIG = "config.toml"
STATUS = "status.json"
EVENTS = "events.jsonl"
SUMMARY = "summary.json"
SUCCESSIVE = "successive.json"
RUN_LOCK = "run.lock"
STOP_REQUEST = "stop.request"
RUNNER_LOG = "runner.log"
INIT = "init.safetensors"
REWIND = "rewind.safetensors"
MASK = "mask.safetensors"
START = "start.safetensors"
FINAL = "final.safetensors"
RESULT = "result.json"
EVALS = "evals.json"
SCORES = "scores.safetensors"
CHECKPOINT = "checkpoint.safetensors"  # mid-round; its step and evals ride in the safetensors header
CHECKPOINT_META = "checkpoint.json"  # the same meta for people and "is there a checkpoint" checks
OPTIMIZER = "optimizer.safetensors"
OPTIMIZER_META = "optimizer.json"
GROUPS = "groups"
GROUP = "group.json"
EXPORT_STEM = "export"  # export.md / .json / .csv / .png, written beside a run's files or a group's
MARKERS = (CONFIG, STATUS, EVENTS, SUMMARY)  # any one of them makes a directory a run dir

_TRIAL = re.compile(r"trial-(\d{1,9})")
_ROUND = re.compile(r"round-(\d{1,9})")


def trial_name(trial: int) -> str:
    return f"trial-{trial}"


def round_name(round_: int) -> str:
    return f"round-{round_}"


def lmc_stem(rewind_iteration: int | None) -> str:
    """`lmc` for the round's own rewind point, `lmc-k<K>` for `lth-tui lmc --rewind K`."""
    return "lmc" if rewind_iteration is None else f"lmc-k{rewind_iteration}"


def parse_trial(name: str) -> int | None:
    """The t of a `trial-<t>` directory name, None for anything else."""
    m = _TRIAL.fullmatch(name)
    return int(m.group(1)) if m else None


def parse_round(name: str) -> int | None:
    """The r of a `round-<r>` directory name, None for anything else."""
    m = _ROUND.fullmatch(name)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run dir; building a path never touches the disk."""

    dir: Path

    def __init__(self, run_dir: Path | str) -> None:
        object.__setattr__(self, "dir", Path(run_dir))

    @property
    def config(self) -> Path:
        return self.dir / CONFIG

    @property
    def status(self) -> Path:
        return self.dir / STATUS

    @property
    def events(self) -> Path:
        return self.dir / EVENTS

    @property
    def summary(self) -> Path:
        return self.dir / SUMMARY

    @property
    def successive(self) -> Path:
        return self.dir / SUCCESSIVE

    @property
    def lock(self) -> Path:
        return self.dir / RUN_LOCK

    @property
    def stop_request(self) -> Path:
        return self.dir / STOP_REQUEST

    @property
    def runner_log(self) -> Path:
        return self.dir / RUNNER_LOG

    def trial_dir(self, trial: int) -> Path:
        return self.dir / trial_name(trial)

    def init(self, trial: int) -> Path:
        return self.trial_dir(trial) / INIT

    def rewind(self, trial: int) -> Path:
        return self.trial_dir(trial) / REWIND

    def round_dir(self, trial: int, round_: int) -> Path:
        return self.trial_dir(trial) / round_name(round_)

    def mask(self, trial: int, round_: int) -> Path:
        return self.round_dir(trial, round_) / MASK

    def start(self, trial: int, round_: int) -> Path:
        return self.round_dir(trial, round_) / START

    def final(self, trial: int, round_: int) -> Path:
        return self.round_dir(trial, round_) / FINAL

    def result(self, trial: int, round_: int) -> Path:
        return self.round_dir(trial, round_) / RESULT

    def evals(self, trial: int, round_: int) -> Path:
        return self.round_dir(trial, round_) / EVALS

    def scores(self, trial: int, round_: int) -> Path:
        return self.round_dir(trial, round_) / SCORES

    def optimizer(self, trial: int, round_: int) -> Path:
        """A mask-training round's optimizer tensors (absent when the optimizer keeps none)."""
        return self.round_dir(trial, round_) / OPTIMIZER

    def optimizer_meta(self, trial: int, round_: int) -> Path:
        """A mask-training round's optimizer state without its tensors (always written)."""
        return self.round_dir(trial, round_) / OPTIMIZER_META

    def lmc(self, trial: int, round_: int, rewind_iteration: int | None = None) -> Path:
        return self.round_dir(trial, round_) / f"{lmc_stem(rewind_iteration)}.json"

    def lmc_end(self, trial: int, round_: int, end: str, rewind_iteration: int | None = None) -> Path:
        """One of the two trained ends (`end` "a" or "b") an LMC curve was measured between."""
        if end not in ("a", "b"):
            raise ValueError(f"an LMC end is 'a' or 'b', not {end!r}")
        return self.round_dir(trial, round_) / f"{lmc_stem(rewind_iteration)}-{end}.safetensors"

    def export(self, fmt: str) -> Path:
        """Where `lth-tui export --format FMT` writes without -o."""
        return export_file(self.dir, fmt)

    def lmc_files(self) -> list[Path]:
        """Every stored LMC record (lmc.json, lmc-k<K>.json) of every round, in path order."""
        return self._round_files("lmc*.json")

    def successive_files(self) -> list[Path]:
        """Every successive.json of every round, in path order."""
        return self._round_files(SUCCESSIVE)

    def checkpoints_on_disk(self) -> list[Path]:
        """Every round's mid-round checkpoint.json, in path order."""
        return self._round_files(CHECKPOINT_META)

    def masks_on_disk(self) -> list[Path]:
        """Every round's mask.safetensors, in path order."""
        return self._round_files(MASK)

    def _round_files(self, pattern: str) -> list[Path]:
        return sorted(p for p in self.dir.glob(f"trial-*/round-*/{pattern}")
                      if parse_trial(p.parent.parent.name) is not None and parse_round(p.parent.name) is not None)

    def trials_on_disk(self) -> list[int]:
        """The trials with a directory, in order (nothing is followed through a symlink)."""
        if not self.dir.is_dir():
            return []
        found = [parse_trial(p.name) for p in self.dir.iterdir() if p.is_dir() and not p.is_symlink()]
        return sorted(t for t in found if t is not None)

    def rounds_on_disk(self, trial: int) -> Iterator[tuple[int, Path]]:
        """(round, dir) for the rounds of a trial present on disk, in order."""
        base = self.trial_dir(trial)
        found = []
        if base.is_dir():
            for p in base.iterdir():
                r = parse_round(p.name)
                if r is not None and p.is_dir():
                    found.append((r, p))
        yield from sorted(found)

    def looks_like_run(self) -> bool:
        return any((self.dir / name).exists() for name in MARKERS)


def groups_dir(runs_dir: Path | str) -> Path:
    """<runs-dir>/groups: one folder per sweep group."""
    return Path(runs_dir) / GROUPS


def group_dir(runs_dir: Path | str, group_id: str) -> Path:
    return groups_dir(runs_dir) / group_id


def group_file(runs_dir: Path | str, group_id: str) -> Path:
    return group_dir(runs_dir, group_id) / GROUP


def export_file(folder: Path | str, fmt: str) -> Path:
    """export.<fmt> in a run dir or a group folder."""
    return Path(folder) / f"{EXPORT_STEM}.{fmt}"
