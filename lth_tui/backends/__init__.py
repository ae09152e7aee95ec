"""Where a sweep's runs execute: child processes on this machine (`local`) or a Ray cluster (`ray`).

A backend gets run dirs the sweep has already validated and created (state `queued`), starts
one runner (`python -m engine.runner RUN_DIR`) per run dir, reports each run's state and
cancels on request. Nothing comes back through the backend itself: every figure a run
produces is in its run dir, so the progress bars, the app and `lth-tui runs` follow a run the
same way wherever it trains. Another scheduler (Slurm, say) is one more class with these four
methods. This package never imports ray or torch at import time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

BACKENDS = ("local", "ray")


class BackendError(RuntimeError):
    """The backend cannot take the sweep (missing extra, no cluster, runs dir not shared); the message says why."""


class Backend(Protocol):
    """Runs run dirs. States are `queued`, `running`, then the run's own end state from status.json."""

    name: str
    errors: dict[Path, str]  # why a run's task failed, where the backend knows more than the run dir says

    def submit(self, run_dirs: Sequence[Path]) -> None:
        """Hands the run dirs over; they start as the backend's resources allow."""

    def poll(self) -> dict[Path, str]:
        """Moves the queue on and returns the state of every submitted run."""

    def cancel(self) -> None:
        """No further run starts; running ones get SIGTERM (checkpoint, `cancelled`, resumable).
        Keep polling until every state is final."""

    def close(self) -> None:
        """Releases what the backend holds (a Ray connection); the runs themselves have ended."""


def check_options(backend: str, *, address: str | None, gpus_per_run: float | None, cpus_per_run: float | None,
                  jobs: int) -> str | None:
    """The complaint about backend options that do not fit together, or None."""
    if backend == "local":
        given = [flag for flag, value in (("--address", address), ("--gpus-per-run", gpus_per_run),
                                          ("--cpus-per-run", cpus_per_run)) if value is not None]
        if given:
            return f"{', '.join(given)}: only with --backend ray"
        return None
    if jobs != 1:
        return "--jobs: only for --backend local; on Ray as many runs go at once as the cluster has resources for"
    if gpus_per_run is not None and (gpus_per_run < 0 or (gpus_per_run > 1 and gpus_per_run != int(gpus_per_run))):
        return f"--gpus-per-run {gpus_per_run}: must be a fraction in [0, 1] (runs share a GPU) or a whole number"
    if cpus_per_run is not None and cpus_per_run <= 0:
        return f"--cpus-per-run {cpus_per_run}: must be above 0"
    return None
