"""The `lth-tui` command: the app with no arguments, headless subcommands otherwise.

The headless path imports rich but never textual (a test enforces it), so `lth-tui run`
starts fast and works on a box where the terminal cannot host the app.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any, Sequence

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_PIPE = 141  # what a shell reports for a command ended by a closed pipe (128 + SIGPIPE)


RUN_HELP = "a run dir, or a run id in the runs dir (a unique prefix, or the 6-hex suffix)"
RUN_FIELDS = ("run_id", "state", "preset", "criterion", "mask1", "mask0", "best_accuracy", "best_weights_remaining",
              "rounds_done", "group", "error")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lth-tui", description="Lottery-ticket experiments: the app, or headless commands.")
    parser.add_argument("--runs-dir", type=Path, default=None, help="run store (default $LTH_TUI_RUNS_DIR or ~/.local/share/lth-tui/runs)")
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
                     help="run the cross product of values as one group, e.g. --sweep prune.criterion=large_final,random (repeatable)")
    run.add_argument("--jobs", type=int, default=1, help="sweep runs in parallel (each on the least busy GPU when it starts)")
    run.add_argument("--backend", choices=("local", "ray"), default="local",
                     help="where sweep runs execute: local child processes, or a Ray cluster (pip install \"lth-tui[ray]\")")
    run.add_argument("--address", help="Ray cluster: auto (the one this node is in), HOST:PORT, ray://...; default: start a local one")
    run.add_argument("--gpus-per-run", type=float, metavar="G", help="Ray: GPUs per run, fractions pack runs onto one GPU (default 1 if the cluster has GPUs)")
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

    lmc = sub.add_parser("lmc", help="linear mode connectivity of a stored round: train two copies, measure the error barrier")
    lmc.add_argument("run_dir", help=RUN_HELP)
    lmc.add_argument("--runs-dir", type=Path, default=argparse.SUPPRESS)
    lmc.add_argument("--round", dest="round_", type=int, default=None, help="the round whose mask is used")
    lmc.add_argument("--rewind", type=int, default=None, metavar="K",
                     help="start the copies from θK and train iterations K..T (default: the round's own start)")
    lmc.add_argument("--trial", type=int, default=None, help="the trial (default 0; with --successive: every trial)")
    lmc.add_argument("--successive", action="store_true",
                     help="instead: barrier and distances between every round's solution and the one before it (no training)")

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
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: reach it over an SSH tunnel)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--public-url", default=None,
                       help="the URL the browser uses, when it differs from http://HOST:PORT (a proxy)")
    serve.add_argument("--runs-dir", type=Path, default=argparse.SUPPRESS)
    return parser


def _err(message: str) -> None:
    print(f"lth-tui: error: {message}", file=sys.stderr)


def _bad_input(exc: Exception, where: object) -> int:
    """Reports input the run cannot take and gives the exit code for it.

    A ConfigError already names its file and key; other errors get the file they came from.
    """
    from engine.config import ConfigError

    _err(str(exc) if isinstance(exc, ConfigError) else f"{where}: {exc}")
    return EXIT_BAD_INPUT


class _StopFlag:
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


def _execute_with_progress(run_dir: Path, quiet: bool, checkpoint_every: float, data: Any = None,
                           stop: _StopFlag | None = None) -> int:
    from engine.process import RunLocked
    from engine.runner import execute
    from engine.store import StoreError

    from lth_tui.progress import ProgressView

    if stop is None:
        stop = _StopFlag()
        stop.install()
    print(run_dir, flush=True)
    view = ProgressView(enabled=not quiet)
    try:
        with view:
            state = execute(run_dir, on_event=view.on_event, should_stop=stop, checkpoint_seconds=checkpoint_every,
                            data=data)
    except (RunLocked, StoreError) as exc:  # raised before the run dir was touched
        _err(f"{run_dir}: {exc}")
        return EXIT_BAD_INPUT
    if not quiet:
        view.print_summary(run_dir)
    print(f"{state}: {run_dir}", flush=True)
    if state == "cancelled":
        print(f"resume with: lth-tui resume {run_dir}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK if state == "done" else EXIT_FAILED


def cmd_run(args: argparse.Namespace) -> int:
    from engine.config import ConfigError, load_config
    from engine.datasets import DatasetError
    from engine.models import ModelError
    from engine.device import resolve_device
    from engine.store import create_run

    from lth_tui.presets import find_preset

    overrides = list(args.overrides)
    if args.device:
        overrides.append(f"device={args.device}")
    if args.trials is not None:
        overrides.append(f"trials={args.trials}")
    if args.data_dir:
        overrides.append(f"data.dir={_toml_string(args.data_dir)}")
    if args.download:
        overrides.append("data.download=true")
    from lth_tui.backends import check_options

    if not args.sweep and args.backend == "local" and (
            complaint := check_options("local", address=args.address, gpus_per_run=args.gpus_per_run,
                                       cpus_per_run=args.cpus_per_run, jobs=args.jobs)):
        _err(complaint)
        return EXIT_BAD_INPUT
    path = None
    try:
        _check_checkpoint_every(args.checkpoint_every)
        _usable_runs_dir(args.runs_dir, create=False)
        if args.sweep or args.backend == "ray":
            return cmd_sweep(args, overrides)
        path = find_preset(args.preset)
        config = load_config(path, overrides)
        device = resolve_device(config.device)
        data = _checked_data(config, str(path), device)
        runs_dir = _usable_runs_dir(args.runs_dir, create=True)  # made only once the input is good
    except (ConfigError, DatasetError, ModelError) as exc:
        return _bad_input(exc, path)
    try:
        run_dir = create_run(config, runs_dir, preset=path.stem)
    except OSError as exc:
        _err(f"--runs-dir {runs_dir}: cannot create a run dir there ({exc.strerror})")
        return EXIT_BAD_INPUT
    return _execute_with_progress(run_dir, args.quiet, args.checkpoint_every, data=data.to(device))


def _check_checkpoint_every(seconds: float) -> None:
    import math

    from engine.config import ConfigError

    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError("--checkpoint-every", "--checkpoint-every", seconds, "seconds between checkpoints: 0 or more")


def _usable_runs_dir(runs_dir: Path | None, create: bool) -> Path:
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


def _checked_data(config: Any, source: str, device: Any = None) -> Any:
    """Loads the dataset and builds the model once, so bad input fails before a run dir exists."""
    from engine.config import resolve_schedule
    from engine.datasets import default_data_dir, load_dataset

    data_dir = Path(config.data.dir).expanduser() if config.data.dir else default_data_dir()
    data = load_dataset(config.data.name, val_size=config.data.val_size, data_dir=data_dir,
                        download=config.data.download, augment=config.data.augment)
    _check_model(config, data, device)
    resolve_schedule(config, len(data.train_x), source)
    return data


def cmd_sweep(args: argparse.Namespace, overrides: list[str]) -> int:
    """Validates every combination, then runs them one after another, `--jobs` at a time, or on Ray."""
    from lth_tui.backends import BackendError, check_options

    on_ray = args.backend == "ray"
    if complaint := check_options(args.backend, address=args.address, gpus_per_run=args.gpus_per_run,
                                  cpus_per_run=args.cpus_per_run, jobs=args.jobs):
        _err(complaint)
        return EXIT_BAD_INPUT
    if on_ray:
        from lth_tui.backends.ray import INSTALL_HINT, ray_available

        if not ray_available():
            _err(INSTALL_HINT)
            return EXIT_BAD_INPUT

    from engine.config import ConfigError
    from engine.datasets import DatasetError
    from engine.models import ModelError
    from engine.device import resolve_device
    from engine.store import create_run

    from lth_tui.presets import find_preset
    from lth_tui.sweeps import add_run, create_group, expand, parse_axis

    path = args.preset
    try:
        if args.jobs < 1:
            raise ConfigError("--jobs", "--jobs", args.jobs, "must be at least 1")
        path = find_preset(args.preset)
        axes = [parse_axis(option) for option in args.sweep]
        combos = expand(path, overrides, axes)
        datasets: dict[tuple, Any] = {}
        for config, swept in combos:
            if on_ray:  # the device (and its memory) is the node's, not this machine's
                from lth_tui.backends.ray import check_device

                check_device(config.device, str(path))
                device = None
            else:
                device = resolve_device(config.device)
            key = (config.data.name, config.data.val_size, config.data.augment, config.data.dir)
            if key not in datasets:
                datasets[key] = _checked_data(config, str(path), device)
            else:
                _check_model(config, datasets[key], device)
        # absolute: the nodes' workers have another cwd; on Ray the probe makes it (and removes it on refusal)
        runs_dir = _usable_runs_dir(args.runs_dir, create=not on_ray).absolute()
    except (ConfigError, DatasetError, ModelError) as exc:
        return _bad_input(exc, path)
    backend: Any = None
    if on_ray:
        from lth_tui.backends.ray import open_backend

        try:
            backend = open_backend(args.address, args.gpus_per_run, args.cpus_per_run, runs_dir)
        except BackendError as exc:
            _err(str(exc))
            return EXIT_BAD_INPUT
    elif args.jobs > 1:
        from lth_tui.backends.local import LocalBackend, gpu_slots

        backend = LocalBackend(args.jobs, gpu_slots())
    group_id, folder = create_group(runs_dir, path.stem, axes)
    run_dirs = []
    for config, swept in combos:
        run_dir = create_run(config, runs_dir, preset=path.stem, group=group_id, queued_by=os.getpid())
        add_run(folder, run_dir, swept)
        run_dirs.append(run_dir)
    print(folder, flush=True)
    if backend is None:
        from lth_tui.sweep_runs import batched_sets

        states = []
        stop = _StopFlag()
        stop.install()
        configs = {run_dir: config for run_dir, (config, _) in zip(run_dirs, combos)}
        for members in batched_sets(run_dirs, configs):
            config = configs[members[0]]
            key = (config.data.name, config.data.val_size, config.data.augment, config.data.dir)
            data = datasets[key].to(resolve_device(config.device))
            if len(members) > 1:
                from lth_tui.sweep_runs import execute_together_with_progress

                code = execute_together_with_progress(members, args.quiet, args.checkpoint_every, data, stop)
            else:
                code = _execute_with_progress(members[0], args.quiet, args.checkpoint_every, data=data, stop=stop)
            states.append(code)
            if stop.requested:  # Ctrl-C; a run stopped by `lth-tui stop` lets the sweep go on
                break
        code = max(states) if states else EXIT_OK
    else:
        from lth_tui.backends.follow import follow

        stop = _StopFlag()
        stop.install()
        finished = follow(backend, run_dirs, stop, quiet=args.quiet)
        code = EXIT_INTERRUPTED if stop.requested else (EXIT_OK if all(s == "done" for s in finished) else EXIT_FAILED)
    print(f"group: {folder}  (lth-tui export {folder} --format md)", flush=True)
    return code


def _check_model(config: Any, data: Any, device: Any = None) -> None:
    """Builds the model once so a model that cannot take this dataset, or does not fit the
    device's memory (estimated before allocating), fails before a run dir exists."""
    from engine.models import build_model, check_fits, estimate_parameters, model_options
    from engine.training import generator

    if device is not None:
        n = estimate_parameters(config.model.name, input_shape=data.input_shape, num_classes=data.num_classes,
                                hidden=config.model.hidden)
        check_fits(n * config.trials if config.parallel_trials is True else n, device, what=f"model {config.model.name!r}")
    build_model(config.model.name, input_shape=data.input_shape, num_classes=data.num_classes,
                hidden=config.model.hidden, init=config.model.init, generator=generator(0, "check"),
                **model_options(config))


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _runs_dir(args: argparse.Namespace) -> Path:
    from engine.store import default_runs_dir

    return Path(args.runs_dir).expanduser() if args.runs_dir else default_runs_dir()


def _resolve(args: argparse.Namespace) -> Path | None:
    """RUN_DIR as a path or a run id of the runs dir; None (after one error line) when it names none."""
    from lth_tui.run_ids import RunNotFound, resolve_run

    try:
        return resolve_run(args.run_dir, _runs_dir(args))
    except RunNotFound as exc:
        _err(str(exc))
        return None


def cmd_resume(args: argparse.Namespace) -> int:
    from engine.store import StoreError

    from lth_tui.guards import ResumeRefused, check_resume

    run_dir = _resolve(args)
    if run_dir is None:
        return EXIT_BAD_INPUT
    try:
        _check_checkpoint_every(args.checkpoint_every)
    except ValueError as exc:
        return _bad_input(exc, run_dir)
    try:
        check_resume(run_dir)
    except ResumeRefused as exc:
        if exc.done:
            print(str(exc))
            return EXIT_OK
        _err(str(exc))
        return EXIT_BAD_INPUT
    except StoreError as exc:
        _err(f"{run_dir} is not a resumable run dir: {exc}")
        return EXIT_BAD_INPUT
    return _execute_with_progress(run_dir, args.quiet, args.checkpoint_every)


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
    from engine.store import list_runs

    try:
        runs_dir = _usable_runs_dir(args.runs_dir, create=False)
    except ValueError as exc:
        return _bad_input(exc, args.runs_dir)
    infos = list_runs(runs_dir)
    if args.json:
        import json

        records = [{"path": str(i.path), **{f: getattr(i, f) for f in RUN_FIELDS}} for i in infos]
        print(json.dumps(records, indent=1))
        return EXIT_OK
    if not sys.stdout.isatty():
        for info in infos:
            print("\t".join(_field(getattr(info, f)) for f in RUN_FIELDS))
        return EXIT_OK
    if not infos:
        print(f"no runs in {runs_dir}")
        return EXIT_OK
    _runs_table(runs_dir, infos)
    return EXIT_OK


def _field(value: Any) -> str:
    text = "" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)
    return " ".join(text.split())  # a tab or newline in an error message must not split the line


def _runs_table(runs_dir: Path, infos: list[Any]) -> None:
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
            line.append(f"  {what}" + (f"  best {acc}% at {wr}% weights" if acc else "") + f"  {info.rounds_done} rounds")
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
        _err(f"--format {args.format!r} is not allowed; formats: {', '.join((*FORMATS, *ARTIFACT_FORMATS))}")
        return EXIT_BAD_INPUT
    output = Path(args.output) if args.output and args.output != "-" else args.output
    try:
        group = find_group(args.run_dir, args.runs_dir or default_runs_dir())
    except (StoreError, OSError) as exc:
        _err(f"{args.run_dir}: {exc}")
        return EXIT_BAD_INPUT
    run_dir = None if group is not None else _resolve(args)
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
        _err(f"{run_dir or group}: {exc}")
        return EXIT_BAD_INPUT
    if isinstance(result, Path):
        print(result)
    else:
        sys.stdout.write(result)
    return EXIT_OK


def cmd_lmc(args: argparse.Namespace) -> int:
    """Instability of one round (Frankle et al. 2020): barrier = max error rise over the ends' mean."""
    from engine.config import ConfigError
    from engine.datasets import DatasetError
    from engine.lmc import run_lmc
    from engine.store import StoreError
    from engine.training import Cancelled

    run_dir = _resolve(args)
    if run_dir is None:
        return EXIT_BAD_INPUT
    if args.successive:
        return _successive(args, run_dir)
    if args.round_ is None:
        return _bad_input(ValueError("lmc needs --round R (or --successive for every round)"), run_dir)
    stop = _StopFlag()
    stop.install()
    try:
        record = run_lmc(run_dir, args.round_, rewind_iteration=args.rewind, trial=args.trial or 0, should_stop=stop)
    except (ConfigError, StoreError, DatasetError) as exc:
        return _bad_input(exc, run_dir)
    except Cancelled:
        print("lmc cancelled; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED

    curve = record.get("curve", [])
    for point in curve:
        print(f"alpha {point['alpha']:.3f}  error {100 * point['error']:.2f}%")
    verdict = "stable" if record.get("stable") else "unstable"
    print(f"barrier {100 * record['barrier']:.2f}% ({verdict}, threshold {100 * record.get('threshold', 0.02):.0f}%)")
    return EXIT_OK


def _successive(args: argparse.Namespace, run_dir: Path) -> int:
    """Successive-round connectivity of a stored run (engine/successive.py): one line per round."""
    from engine.config import ConfigError
    from engine.datasets import DatasetError
    from engine.store import StoreError
    from engine.successive import run_successive
    from engine.training import Cancelled

    if args.round_ is not None or args.rewind is not None:
        return _bad_input(ValueError("--successive measures every round; it takes no --round or --rewind"), run_dir)

    def show(rec: dict) -> None:
        proj, unproj = rec["projected"], rec["unprojected"]
        print(f"trial {rec['trial']} round {rec['round']} ({100 * rec['weights_remaining']:.2f}% weights): "
              f"barrier {100 * proj['barrier']:.2f}% test / {100 * proj['barrier_train']:.2f}% train projected, "
              f"{100 * unproj['barrier']:.2f}% test unprojected; L2 {proj['l2']:.4g}, cosine {proj['cosine'] or 0:.4f}", flush=True)

    stop = _StopFlag()
    stop.install()
    try:
        records = run_successive(run_dir, args.trial, should_stop=stop, on_round=show)
    except (ConfigError, StoreError, DatasetError) as exc:
        return _bad_input(exc, run_dir)
    except Cancelled:
        print("successive analysis cancelled; the rounds printed above were written", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not records:
        print("no pair of finished rounds to compare yet (round 1 onwards)", file=sys.stderr)
    return EXIT_OK


def cmd_stop(args: argparse.Namespace) -> int:
    """Stops each run: SIGTERM to a proven runner on this host, or a stop.request the runner
    polls (any host); then waits up to --timeout for it to checkpoint and end."""
    from engine.store import default_runs_dir

    from lth_tui.stopping import stop_runs

    try:
        if not args.timeout >= 0 or args.timeout == float("inf"):
            raise ValueError(f"--timeout {args.timeout} must be 0 or more seconds")
    except ValueError as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT
    return stop_runs(args.run_dirs, args.runs_dir or default_runs_dir(), args.timeout, print, _err)


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
    args = _parser().parse_args(argv)
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
