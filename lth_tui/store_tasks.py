"""The blocking reads and writes the screens' workers run: the runs list as the app shows it,
summaries for the compare view, deleting runs, writing a preset or an export.

Plain functions (no Textual), so each screen runs them in a worker of its own and tests call
them directly; none imports torch.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any


def read_run_infos(runs_dir: Path) -> list[Any]:
    """engine.run_index.list_runs, with a run dir whose child has not written its pid yet shown as
    running (starting), not interrupted."""
    from engine.run_index import list_runs
    from engine.store import StoreError, read_status
    from lth_tui.follower import runner_alive

    infos = list_runs(runs_dir)
    for info in infos:
        if info.state == "interrupted":
            try:
                if runner_alive(read_status(info.path)):
                    info.state = "running"
            except StoreError:
                pass
    return infos


def training_twins(infos: list[Any], config: Any) -> list[Any]:
    """Runs training (or queued) with the very same config: a second copy repeats their numbers."""
    from lth_tui.run_labels import differing_keys

    return [i for i in infos if i.state in ("running", "queued") and i.config
            and not differing_keys([i.config, config.to_dict()])]


def read_summaries(run_dirs: list[Path]) -> list[tuple[Path, Any, str]]:
    """(run dir, summary or None, problem) for each run; a damaged one is a problem, not a failure."""
    from engine.store import StoreError, read_summary

    out = []
    for run_dir in run_dirs:
        try:
            out.append((run_dir, read_summary(run_dir), ""))
        except StoreError as exc:
            out.append((run_dir, None, str(exc)))
    return out


def delete_runs(run_dirs: list[Path]) -> list[Path]:
    """Deletes the run dirs, none of them while any one has a live runner (checked first, for all)."""
    from engine.store import StoreError, read_status
    from lth_tui.follower import runner_alive

    for run_dir in run_dirs:
        try:
            status = read_status(run_dir)
        except StoreError:
            status = None
        if runner_alive(status, grace=False):
            raise RuntimeError(f"{run_dir.name} is running; cancel it first (nothing was deleted)")
    for run_dir in run_dirs:
        shutil.rmtree(run_dir)
    return run_dirs


def write_preset(target: Path, text: str) -> Path:
    """Writes a preset file atomically, then reads it back: what was saved must load."""
    from lth_tui.presets import load_preset

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    load_preset(str(target))
    return target


def write_export(run_dirs: list[Path], fmt: str, path: Path) -> Path:
    """One run in any format, or several side by side (md/csv table, png plot)."""
    from lth_tui.export import export
    from lth_tui.export_runs import export_runs

    path.parent.mkdir(parents=True, exist_ok=True)
    if len(run_dirs) > 1:
        return export_runs(run_dirs, fmt, path)
    return Path(export(run_dirs[0], fmt, path))


def check_model(config: Any) -> None:
    """Builds the model once (on the CPU) so a model that cannot take the dataset fails before a run dir exists."""
    from engine.catalog import DATASETS
    from engine.models import build_model, model_options
    from engine.training import generator

    spec = DATASETS[config.data.name]
    build_model(config.model.name, input_shape=spec.input_shape, num_classes=spec.num_classes,
                hidden=config.model.hidden, init=config.model.init, generator=generator(0, "check"),
                **model_options(config))


def create_checked_run(config: Any, runs_dir: Path, preset: str) -> Path:
    """The run dir of a run that can start: its model builds and its data is there (or will be
    downloaded); otherwise RuntimeError and no run dir."""
    from engine.store import create_run
    from lth_tui.setup_checks import data_problem

    check_model(config)
    problem = data_problem(config)
    if problem:
        raise RuntimeError(problem)
    return create_run(config, runs_dir, preset=preset)
