"""The `lth-tui` argument grammar: every subcommand, flag and help line, in one argparse builder.

Split out of lth_tui/cli.py so the command-line surface can be read and reviewed in one place,
apart from what the commands do; it imports only argparse (and the shared RUN help texts).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lth_tui.cli_contract import RUN_FIELDS, RUN_HELP

__all__ = ["build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lth-tui",
                                     description="Lottery-ticket experiments: the app, or headless commands.")
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help="run store (default $LTH_TUI_RUNS_DIR or ~/.local/share/lth-tui/runs)")
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run a preset or config file headless")
    run.add_argument("preset", help="preset name (see `lth-tui presets`) or path to a .toml file")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override any dotted config key, e.g. --set prune.criterion=movement (repeatable)")
    run.add_argument("--runs-dir", type=Path, default=argparse.SUPPRESS)
    run.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    run.add_argument("--trials", type=int, help="number of seeds")
    run.add_argument("--data-dir", help="where MNIST / Fashion-MNIST / CIFAR-10 files are (or go, with --download)")
    run.add_argument("--download", action="store_true", help="download torchvision datasets that are missing")
    run.add_argument("--checkpoint-every", type=float, default=60.0, metavar="SECONDS",
                     help="mid-round checkpoint interval (default 60)")
    run.add_argument("--quiet", action="store_true", help="no progress bar; print only the run dir")
    run.add_argument("--sweep", action="append", default=[], metavar="KEY=V1,V2",
                     help="run the cross product of values as one group, "
                          "e.g. --sweep prune.criterion=large_final,random (repeatable)")
    run.add_argument("--jobs", type=int, default=1,
                     help="sweep runs in parallel (each on the least busy GPU when it starts)")
    run.add_argument("--backend", choices=("local", "ray"), default="local",
                     help="where sweep runs execute: local child processes, "
                          "or a Ray cluster (pip install \"lth-tui[ray]\")")
    run.add_argument("--address",
                     help="Ray cluster: auto (the one this node is in), HOST:PORT, ray://...; "
                          "default: start a local one")
    run.add_argument("--gpus-per-run", type=float, metavar="G",
                     help="Ray: GPUs per run, fractions pack runs onto one GPU (default 1 if the cluster has GPUs)")
    run.add_argument("--cpus-per-run", type=float, metavar="C", help="Ray: CPUs per run (default 1)")

    resume = sub.add_parser("resume", help="continue a killed or cancelled run")
    resume.add_argument("run_dir", help=RUN_HELP)
    resume.add_argument("--runs-dir", type=Path, default=argparse.SUPPRESS)
    resume.add_argument("--checkpoint-every", type=float, default=60.0, metavar="SECONDS")
    resume.add_argument("--quiet", action="store_true")

    stop = sub.add_parser("stop", help="ask runs to checkpoint and stop (they stay resumable)")
    stop.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN", help="a run dir, or a run id in the runs dir")
    stop.add_argument("--runs-dir", type=Path, default=argparse.SUPPRESS)
    stop.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                      help="how long to wait for each run to checkpoint and end (default 60; 0: do not wait)")

    sub.add_parser("presets", help="list presets with one-line descriptions")

    lmc = sub.add_parser("lmc", help="linear mode connectivity of a stored round: "
                                     "train two copies, measure the error barrier")
    lmc.add_argument("run_dir", help=RUN_HELP)
    lmc.add_argument("--runs-dir", type=Path, default=argparse.SUPPRESS)
    lmc.add_argument("--round", dest="round_", type=int, default=None, help="the round whose mask is used")
    lmc.add_argument("--rewind", type=int, default=None, metavar="K",
                     help="start the copies from θK and train iterations K..T (default: the round's own start)")
    lmc.add_argument("--trial", type=int, default=None, help="the trial (default 0; with --successive: every trial)")
    lmc.add_argument("--successive", action="store_true",
                     help="instead: barrier and distances between every round's solution and the one before it "
                          "(no training)")

    runs = sub.add_parser("runs", help="list runs with state and best accuracy",
                          description="A table on a terminal; piped, one run a line with tab-separated fields: "
                                      + ", ".join(RUN_FIELDS) + ".")
    runs.add_argument("--runs-dir", type=Path, default=argparse.SUPPRESS)
    runs.add_argument("--json", action="store_true", help="a JSON list of the runs, every field")

    export = sub.add_parser("export", help="write a run's (or a sweep group's) summary as md, json, csv, png or "
                            "TensorBoard event files, or a round's ticket as a standalone model")
    export.add_argument("run_dir", help=RUN_HELP + ", or a sweep group (its id or folder)")
    export.add_argument("--runs-dir", type=Path, default=argparse.SUPPRESS)
    export.add_argument("--format", required=True, help="md | json | csv | png | tensorboard | ticket")
    export.add_argument("-o", "--output", help="file to write (default RUN_DIR/export.FORMAT; - for stdout); "
                        "tensorboard: a folder (default RUN_DIR/tensorboard)")
    export.add_argument("--force", action="store_true", help="overwrite the file if it exists")
    export.add_argument("--trial", type=int, default=None, help="ticket: the trial (default 0)")
    export.add_argument("--round", dest="round_", type=int, default=None, help="ticket: the round (default the last)")
    export.add_argument("--weights", default=None, help="ticket: final (trained, default) | init (the round's start)")

    serve = sub.add_parser("serve", help="serve the app in a browser (textual-serve); localhost only by default")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1: reach it over an SSH tunnel)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--public-url", default=None,
                       help="the URL the browser uses, when it differs from http://HOST:PORT (a proxy)")
    serve.add_argument("--runs-dir", type=Path, default=argparse.SUPPRESS)
    return parser
