"""The read-only commands: `presets`, `runs` and `export`; instant, and torch-free for md/json/csv.

Split out of lth_tui/cli.py because these only read the run store and the presets (JSON, TOML,
masks as numpy): nothing here may import torch or textual at any point on their md/json/csv and
error paths (tests/test_readonly_commands.py), so their imports stay inside the functions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lth_tui.cli_contract import EXIT_BAD_INPUT, EXIT_OK, RUN_FIELDS, bad_input, err, resolve_run_arg, usable_runs_dir

__all__ = ["cmd_export", "cmd_presets", "cmd_runs"]


def cmd_presets(args: argparse.Namespace) -> int:
    from lth_tui.presets import list_presets

    presets = list_presets()
    width = max((len(p.name) for p in presets), default=10)
    for p in presets:
        text = p.error or p.description
        print(f"{p.name:<{width}}  {text}  [{p.source}]")
    return EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    """A table on a terminal; piped, whole ids and tab-separated fields (for cut, awk, xargs)."""
    from engine.run_index import list_runs

    try:
        runs_dir = usable_runs_dir(args.runs_dir, create=False)
    except ValueError as exc:
        return bad_input(exc, args.runs_dir)
    infos = list_runs(runs_dir)
    if args.json:
        import json

        records = [{"path": str(i.path), **{f: getattr(i, f) for f in RUN_FIELDS}} for i in infos]
        print(json.dumps(records, indent=1))
        return EXIT_OK
    if not sys.stdout.isatty():
        for info in infos:
            print("\t".join(field_text(getattr(info, f)) for f in RUN_FIELDS))
        return EXIT_OK
    if not infos:
        print(f"no runs in {runs_dir}")
        return EXIT_OK
    runs_table(runs_dir, infos)
    return EXIT_OK


def field_text(value: Any) -> str:
    text = "" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)
    return " ".join(text.split())  # a tab or newline in an error message must not split the line


def runs_table(runs_dir: Path, infos: list[Any]) -> None:
    """The whole id always (it is what the other commands take): a table on a wide terminal,
    else two lines a run, the id on the first."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    styles = {"running": "bold green", "done": "cyan", "failed": "bold red", "damaged": "bold red", "lost": "bold red",
              "interrupted": "bold yellow", "cancelled": "yellow"}

    def figures(info: Any) -> tuple[str, str]:
        acc = "" if info.best_accuracy is None else f"{100 * info.best_accuracy:.2f}"
        wr = "" if info.best_weights_remaining is None else f"{100 * info.best_weights_remaining:.1f}"
        return acc, wr

    if console.width < 120:
        console.print(Text(str(runs_dir), style="bold"))
        for info in infos:
            acc, wr = figures(info)
            line = Text("  ")
            line.append(info.state, style=styles.get(info.state, ""))
            what = "/".join(x for x in (info.criterion, info.mask1, info.mask0) if x)
            best = f"  best {acc}% at {wr}% weights" if acc else ""
            line.append(f"  {what}{best}  {info.rounds_done} rounds")
            if info.error:
                line.append(f"  {info.error}", style="red")
            console.print(Text(info.run_id, style="bold"), no_wrap=True, crop=False)
            console.print(line, overflow="ellipsis", no_wrap=True)
        return
    table = Table(title=str(runs_dir), title_justify="left")
    table.add_column("run", no_wrap=True)
    for column in ("state", "preset", "criterion", "mask-1", "mask-0", "best acc %", "at wt %", "rounds"):
        table.add_column(column, justify="right" if "%" in column or column == "rounds" else "left")
    for info in infos:
        acc, wr = figures(info)
        state = Text(f"{info.state}: {info.error}" if info.state in ("damaged", "lost") else info.state,
                     style=styles.get(info.state, ""))
        table.add_row(info.run_id, state, info.preset, info.criterion, info.mask1, info.mask0, acc, wr,
                      str(info.rounds_done))
    console.print(table)


def cmd_export(args: argparse.Namespace) -> int:
    from engine.store import StoreError, default_runs_dir
    from lth_tui.export import FORMATS, ExportError, export, export_group
    from lth_tui.export_artifacts import ARTIFACT_FORMATS, cmd_export_artifact
    from lth_tui.sweeps import find_group

    if args.format not in (*FORMATS, *ARTIFACT_FORMATS):
        err(f"--format {args.format!r} is not allowed; formats: {', '.join((*FORMATS, *ARTIFACT_FORMATS))}")
        return EXIT_BAD_INPUT
    output = Path(args.output) if args.output and args.output != "-" else args.output
    try:
        group = find_group(args.run_dir, args.runs_dir or default_runs_dir())
    except (StoreError, OSError) as exc:
        err(f"{args.run_dir}: {exc}")
        return EXIT_BAD_INPUT
    run_dir = None if group is not None else resolve_run_arg(args)
    if group is None and run_dir is None:
        return EXIT_BAD_INPUT
    if args.format in ARTIFACT_FORMATS or (args.trial, args.round_, args.weights) != (None, None, None):
        if run_dir is not None:
            args.run_dir = str(run_dir)  # a run id resolved in the runs dir, as for the other formats
        return cmd_export_artifact(args)
    try:
        if group is not None:
            result = export_group(group, args.format, output, overwrite=args.force)
        else:
            result = export(run_dir, args.format, output, overwrite=args.force)
    except (StoreError, ExportError) as exc:
        err(f"{run_dir or group}: {exc}")
        return EXIT_BAD_INPUT
    if isinstance(result, Path):
        print(result)
    else:
        sys.stdout.write(result)
    return EXIT_OK
