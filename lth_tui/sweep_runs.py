"""A sweep's runs trained together on one device (engine/sweep_batch.py), from the headless CLI.

`lth-tui run PRESET --sweep ...` (one job at a time) hands every set of runs that share model,
data and training to `engine.sweep_batch.execute_together` when batching is wanted: on a GPU
(`parallel_trials = "auto"`, as for the trials of one run) or wherever every run of the set
says `parallel_trials = true`. Other runs train one after another as before.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lth_tui.progress import ProgressView

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


def _wanted(config: Any) -> bool:
    from engine.device import resolve_device

    if config.parallel_trials is True:
        return True
    return config.parallel_trials == "auto" and resolve_device(config.device).type == "cuda"


def batched_sets(run_dirs: list[Path], configs: dict[Path, Any]) -> list[list[Path]]:
    """The run dirs in the order they run: a set that trains together, or one run alone."""
    from engine.sweep_batch import batch_key

    sets: dict[Any, list[Path]] = {}
    for index, run_dir in enumerate(run_dirs):
        config = configs[run_dir]
        key = batch_key(config) if _wanted(config) else None
        sets.setdefault(key if key is not None else ("alone", index), []).append(run_dir)
    return list(sets.values())


def execute_together_with_progress(run_dirs: list[Path], quiet: bool, checkpoint_every: float, data: Any,
                                   stop: Callable[[], bool]) -> int:
    """One progress bar (the runs go in lockstep: the first run's events drive it), then each run's state."""
    from engine.sweep_batch import execute_together

    print(f"training {len(run_dirs)} runs together:", flush=True)
    for run_dir in run_dirs:
        print(run_dir, flush=True)
    view = ProgressView(enabled=not quiet)

    def on_event(run_dir: Path, event: dict[str, Any]) -> None:
        if run_dir == run_dirs[0]:
            view.on_event(event)

    with view:
        states = execute_together(run_dirs, on_event=on_event, should_stop=stop, checkpoint_seconds=checkpoint_every,
                                  data=data)
    for run_dir, state in states.items():
        print(f"{state}: {run_dir}", flush=True)
    if "cancelled" in states.values():
        return EXIT_INTERRUPTED
    return EXIT_OK if all(state == "done" for state in states.values()) else EXIT_FAILED
