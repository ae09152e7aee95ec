"""`lth-tui export --format tensorboard | ticket`: the exports that are folders or tensors, not reports.

Kept apart from lth_tui/export.py so the md / json / csv path never imports torch's model code
or tensorboardX; bad input exits 2 with one line, as every other command does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_OK, EXIT_BAD_INPUT = 0, 2
ARTIFACT_FORMATS = ("tensorboard", "ticket")
TICKET_ONLY = "--trial, --round and --weights apply to --format ticket only"


def _err(message: str) -> int:
    print(f"lth-tui: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def cmd_export_artifact(args: argparse.Namespace) -> int:
    """Writes a tensorboard folder or a ticket file; prints the path written."""
    from engine.layout import RunLayout
    from engine.store import StoreError, default_runs_dir
    from lth_tui.export import ExportError
    from lth_tui.sweeps import find_group, read_group

    if args.format != "ticket" and (args.trial, args.round_, args.weights) != (None, None, None):
        return _err(TICKET_ONLY)
    if args.output == "-":
        return _err(f"--format {args.format} cannot be written to standard output; give -o "
                    + ("DIR" if args.format == "tensorboard" else "FILE.safetensors"))
    group = find_group(args.run_dir, args.runs_dir or default_runs_dir())
    try:
        if args.format == "tensorboard":
            from lth_tui.export_tensorboard import export_tensorboard

            if group is not None:
                runs = [(Path(e["run_dir"]), dict(e.get("swept") or {})) for e in read_group(group)["runs"]]
                base = group
            else:
                if not RunLayout(args.run_dir).summary.is_file():
                    raise StoreError("summary.json is missing: not a run dir with a finished round, nor a sweep group")
                runs, base = [(Path(args.run_dir), None)], Path(args.run_dir)
            result = export_tensorboard(runs, Path(args.output) if args.output else base / "tensorboard")
        else:
            if group is not None:
                return _err(f"{args.run_dir}: a ticket is one run's network; give one run dir of the group")
            from engine.ticket import TicketError, write_ticket

            try:
                result = write_ticket(Path(args.run_dir), Path(args.output) if args.output else None,
                                      trial=0 if args.trial is None else args.trial, round_=args.round_,
                                      weights=args.weights or "final")
            except TicketError as exc:
                raise ExportError(str(exc)) from None
    except (StoreError, ExportError) as exc:
        return _err(f"{args.run_dir}: {exc}")
    print(result)
    return EXIT_OK
