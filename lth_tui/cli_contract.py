"""What every `lth-tui` subcommand shares with the shell: exit codes, one-line errors, RUN names.

Split out of lth_tui/cli.py so each group of commands (lth_tui/cli_start.py, cli_read.py,
cli_analysis.py and cli.py's own) keeps the same conventions without importing the dispatcher:
this module sits below them all and imports nothing heavy (read-only commands stay torch-free).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_PIPE", "RUN_FIELDS", "RUN_HELP",
           "bad_input", "err", "resolve_run_arg", "runs_dir_of", "usable_runs_dir"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_PIPE = 141  # what a shell reports for a command ended by a closed pipe (128 + SIGPIPE)


RUN_HELP = "a run dir, or a run id in the runs dir (a unique prefix, or the 6-hex suffix)"
RUN_FIELDS = ("run_id", "state", "preset", "criterion", "mask1", "mask0", "best_accuracy", "best_weights_remaining",
              "rounds_done", "group", "error")


def err(message: str) -> None:
    print(f"lth-tui: error: {message}", file=sys.stderr)


def bad_input(exc: Exception, where: object) -> int:
    """Reports input the run cannot take and gives the exit code for it.

    A ConfigError already names its file and key; other errors get the file they came from.
    """
    from engine.config import ConfigError

    err(str(exc) if isinstance(exc, ConfigError) else f"{where}: {exc}")
    return EXIT_BAD_INPUT


def runs_dir_of(args: argparse.Namespace) -> Path:
    from engine.store import default_runs_dir

    return Path(args.runs_dir).expanduser() if args.runs_dir else default_runs_dir()


def resolve_run_arg(args: argparse.Namespace) -> Path | None:
    """RUN_DIR as a path or a run id of the runs dir; None (after one error line) when it names none."""
    from lth_tui.run_ids import RunNotFound, resolve_run

    try:
        return resolve_run(args.run_dir, runs_dir_of(args))
    except RunNotFound as exc:
        err(str(exc))
        return None


def usable_runs_dir(runs_dir: Path | None, create: bool) -> Path:
    """The runs dir, checked: a folder (made when `create`) this user can write; else ConfigError."""
    from engine.config import ConfigError
    from engine.store import default_runs_dir

    path = Path(runs_dir) if runs_dir else default_runs_dir()
    label = "--runs-dir" if runs_dir else "runs dir"
    try:
        if path.exists() and not path.is_dir():
            raise ConfigError(label, None, None, f"{path} is not a directory")
        if create:
            path.mkdir(parents=True, exist_ok=True)
            if not os.access(path, os.W_OK | os.X_OK):
                raise ConfigError(label, None, None, f"{path} is not writable")
    except OSError as exc:
        raise ConfigError(label, None, None, f"{path} cannot be created ({exc.strerror})") from None
    return path
