"""The `lth-tui` command: the app with no arguments, headless subcommands otherwise.

The headless path imports rich but never textual (a test enforces it), so `lth-tui run`
starts fast and works on a box where the terminal cannot host the app.

The commands live by what they do: lth_tui/cli_parser.py (the argument grammar),
cli_start.py (`run`, sweeps), cli_read.py (`presets`, `runs`, `export`), cli_analysis.py
(`lmc`), cli_foreground.py (a run trained in this process) and cli_contract.py (exit codes,
errors, RUN names); this module dispatches and keeps the commands that control existing runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from lth_tui.cli_analysis import cmd_lmc
from lth_tui.cli_contract import EXIT_BAD_INPUT, EXIT_OK, EXIT_PIPE, bad_input, err, resolve_run_arg
from lth_tui.cli_foreground import check_checkpoint_every, execute_with_progress
from lth_tui.cli_parser import build_parser
from lth_tui.cli_read import cmd_export, cmd_presets, cmd_runs
from lth_tui.cli_start import cmd_run


def cmd_resume(args: argparse.Namespace) -> int:
    from engine.store import StoreError
    from lth_tui.guards import ResumeRefused, check_resume

    run_dir = resolve_run_arg(args)
    if run_dir is None:
        return EXIT_BAD_INPUT
    try:
        check_checkpoint_every(args.checkpoint_every)
    except ValueError as exc:
        return bad_input(exc, run_dir)
    try:
        check_resume(run_dir)
    except ResumeRefused as exc:
        if exc.done:
            print(str(exc))
            return EXIT_OK
        err(str(exc))
        return EXIT_BAD_INPUT
    except StoreError as exc:
        err(f"{run_dir} is not a resumable run dir: {exc}")
        return EXIT_BAD_INPUT
    return execute_with_progress(run_dir, args.quiet, args.checkpoint_every)


def cmd_stop(args: argparse.Namespace) -> int:
    """Stops each run: SIGTERM to a proven runner on this host, or a stop.request the runner
    polls (any host); then waits up to --timeout for it to checkpoint and end."""
    from engine.store import default_runs_dir
    from lth_tui.stopping import stop_runs

    try:
        if not args.timeout >= 0 or args.timeout == float("inf"):
            raise ValueError(f"--timeout {args.timeout} must be 0 or more seconds")
    except ValueError as exc:
        err(str(exc))
        return EXIT_BAD_INPUT
    return stop_runs(args.run_dirs, args.runs_dir or default_runs_dir(), args.timeout, print, err)


def cmd_serve(args: argparse.Namespace) -> int:
    from lth_tui.serve import serve

    return serve(args.host, args.port, runs_dir=args.runs_dir, public_url=args.public_url)


COMMANDS = {"run": cmd_run, "lmc": cmd_lmc, "resume": cmd_resume, "presets": cmd_presets, "runs": cmd_runs,
            "export": cmd_export, "stop": cmd_stop, "serve": cmd_serve}


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command; output piped into a reader that stops early (`| head`) ends quietly."""
    try:
        try:
            return _dispatch(argv)
        finally:
            sys.stdout.flush()  # inside the try: a closed pipe must fail here, not at interpreter exit
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_PIPE


def _dispatch(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:
        from lth_tui.app import run_app

        return run_app(runs_dir=args.runs_dir)
    return COMMANDS[args.command](args)


def _quiet_stdout() -> None:
    """Points stdout at /dev/null so Python's own flush at exit finds no closed pipe to complain about."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real stdout file descriptor (a test's StringIO): nothing to silence
        pass


if __name__ == "__main__":
    sys.exit(main())
