"""`lth-tui run` (one run or a sweep): every input checked before a run dir exists, then trained.

Split out of lth_tui/cli.py: starting runs is the one path that loads the dataset and builds
the model up front (so a bad config, a missing file or a model too big for the device fails
with exit 2 and nothing written), then hands each run to the foreground runner or a backend.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import engine.threads  # noqa: F401  (imported first: its busy-core window spans the data load, no sleep)
from lth_tui.cli_contract import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, bad_input, err, usable_runs_dir
from lth_tui.cli_foreground import StopFlag, check_checkpoint_every, execute_with_progress

__all__ = ["check_model", "checked_data", "cmd_run", "cmd_sweep"]


def cmd_run(args: argparse.Namespace) -> int:
    from engine.config import ConfigError, load_config
    from engine.datasets import DatasetError
    from engine.device import resolve_device
    from engine.models import ModelError
    from engine.store import create_run
    from lth_tui.presets import find_preset

    overrides = list(args.overrides)
    if args.device:
        overrides.append(f"device={args.device}")
    if args.trials is not None:
        overrides.append(f"trials={args.trials}")
    if args.data_dir:
        overrides.append(f"data.dir={toml_string(args.data_dir)}")
    if args.download:
        overrides.append("data.download=true")
    from lth_tui.backends import check_options

    if not args.sweep and args.backend == "local" and (
            complaint := check_options("local", address=args.address, gpus_per_run=args.gpus_per_run,
                                       cpus_per_run=args.cpus_per_run, jobs=args.jobs)):
        err(complaint)
        return EXIT_BAD_INPUT
    path = None
    try:
        check_checkpoint_every(args.checkpoint_every)
        usable_runs_dir(args.runs_dir, create=False)
        if args.sweep or args.backend == "ray":
            return cmd_sweep(args, overrides)
        path = find_preset(args.preset)
        config = load_config(path, overrides)
        device = resolve_device(config.device)
        data = checked_data(config, str(path), device)
        runs_dir = usable_runs_dir(args.runs_dir, create=True)  # made only once the input is good
    except (ConfigError, DatasetError, ModelError) as exc:
        return bad_input(exc, path)
    try:
        run_dir = create_run(config, runs_dir, preset=path.stem)
    except OSError as exc:
        err(f"--runs-dir {runs_dir}: cannot create a run dir there ({exc.strerror})")
        return EXIT_BAD_INPUT
    return execute_with_progress(run_dir, args.quiet, args.checkpoint_every, data=data.to(device))


def checked_data(config: Any, source: str, device: Any = None) -> Any:
    """Loads the dataset and builds the model once, so bad input fails before a run dir exists."""
    from engine.config import resolve_schedule
    from engine.datasets import default_data_dir, load_dataset

    data_dir = Path(config.data.dir).expanduser() if config.data.dir else default_data_dir()
    data = load_dataset(config.data.name, val_size=config.data.val_size, data_dir=data_dir,
                        download=config.data.download, augment=config.data.augment)
    check_model(config, data, device)
    resolve_schedule(config, len(data.train_x), source)
    return data


def cmd_sweep(args: argparse.Namespace, overrides: list[str]) -> int:
    """Validates every combination, then runs them one after another, `--jobs` at a time, or on Ray."""
    from lth_tui.backends import BackendError, check_options

    on_ray = args.backend == "ray"
    if complaint := check_options(args.backend, address=args.address, gpus_per_run=args.gpus_per_run,
                                  cpus_per_run=args.cpus_per_run, jobs=args.jobs):
        err(complaint)
        return EXIT_BAD_INPUT
    if on_ray:
        from lth_tui.backends.ray import INSTALL_HINT, ray_available

        if not ray_available():
            err(INSTALL_HINT)
            return EXIT_BAD_INPUT

    from engine.config import ConfigError
    from engine.datasets import DatasetError
    from engine.device import resolve_device
    from engine.models import ModelError
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
        for config, _swept in combos:
            if on_ray:  # the device (and its memory) is the node's, not this machine's
                from lth_tui.backends.ray import check_device

                check_device(config.device, str(path))
                device = None
            else:
                device = resolve_device(config.device)
            key = (config.data.name, config.data.val_size, config.data.augment, config.data.dir)
            if key not in datasets:
                datasets[key] = checked_data(config, str(path), device)
            else:
                check_model(config, datasets[key], device)
        # absolute: the nodes' workers have another cwd; on Ray the probe makes it (and removes it on refusal)
        runs_dir = usable_runs_dir(args.runs_dir, create=not on_ray).absolute()
    except (ConfigError, DatasetError, ModelError) as exc:
        return bad_input(exc, path)
    backend: Any = None
    if on_ray:
        from lth_tui.backends.ray import open_backend

        try:
            backend = open_backend(args.address, args.gpus_per_run, args.cpus_per_run, runs_dir)
        except BackendError as exc:
            err(str(exc))
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
        stop = StopFlag()
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
                code = execute_with_progress(members[0], args.quiet, args.checkpoint_every, data=data, stop=stop)
            states.append(code)
            if stop.requested:  # Ctrl-C; a run stopped by `lth-tui stop` lets the sweep go on
                break
        code = max(states) if states else EXIT_OK
    else:
        from lth_tui.backends.follow import follow

        stop = StopFlag()
        stop.install()
        finished = follow(backend, run_dirs, stop, quiet=args.quiet)
        code = EXIT_INTERRUPTED if stop.requested else (EXIT_OK if all(s == "done" for s in finished) else EXIT_FAILED)
    print(f"group: {folder}  (lth-tui export {folder} --format md)", flush=True)
    return code


def check_model(config: Any, data: Any, device: Any = None) -> None:
    """Builds the model once so a model that cannot take this dataset, or does not fit the
    device's memory (estimated before allocating), fails before a run dir exists."""
    from engine.models import build_model, check_fits, estimate_parameters, model_options
    from engine.training import generator

    if device is not None:
        n = estimate_parameters(config.model.name, input_shape=data.input_shape, num_classes=data.num_classes,
                                hidden=config.model.hidden)
        check_fits(n * config.trials if config.parallel_trials is True else n, device,
                   what=f"model {config.model.name!r}")
    build_model(config.model.name, input_shape=data.input_shape, num_classes=data.num_classes,
                hidden=config.model.hidden, init=config.model.init, generator=generator(0, "check"),
                **model_options(config))


def toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
