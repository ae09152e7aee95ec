"""Running one run in this process: Ctrl-C as "checkpoint and stop", the progress view, state -> exit code.

Split out of lth_tui/cli.py because `run`, a sequential sweep and `resume` all train in the
foreground and must treat Ctrl-C, --checkpoint-every and the final state the same way (`lmc`
shares the Ctrl-C flag).
The engine is imported only when a run starts.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

from lth_tui.cli_contract import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, err

__all__ = ["StopFlag", "check_checkpoint_every", "execute_with_progress"]


class StopFlag:
    """First Ctrl-C asks the run to checkpoint and stop; a second one aborts at once."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested

    def install(self) -> None:
        def on_sigint(signum: int, frame: Any) -> None:
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True

        signal.signal(signal.SIGINT, on_sigint)
        signal.signal(signal.SIGTERM, on_sigint)


def execute_with_progress(run_dir: Path, quiet: bool, checkpoint_every: float, data: Any = None,
                           stop: StopFlag | None = None) -> int:
    from engine.process import RunLocked
    from engine.runner import execute
    from engine.store import StoreError
    from lth_tui.progress import ProgressView

    if stop is None:
        stop = StopFlag()
        stop.install()
    print(run_dir, flush=True)
    view = ProgressView(enabled=not quiet)
    try:
        with view:
            state = execute(run_dir, on_event=view.on_event, should_stop=stop, checkpoint_seconds=checkpoint_every,
                            data=data)
    except (RunLocked, StoreError) as exc:  # raised before the run dir was touched
        err(f"{run_dir}: {exc}")
        return EXIT_BAD_INPUT
    if not quiet:
        view.print_summary(run_dir)
    print(f"{state}: {run_dir}", flush=True)
    if state == "cancelled":
        print(f"resume with: lth-tui resume {run_dir}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK if state == "done" else EXIT_FAILED


def check_checkpoint_every(seconds: float) -> None:
    import math

    from engine.config import ConfigError

    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError("--checkpoint-every", "--checkpoint-every", seconds, "seconds between checkpoints: 0 or more")
