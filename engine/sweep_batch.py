"""Runs of one sweep trained together on one device, as the trials of one run are (engine/batched.py).

A sweep over criteria × mask actions × seeds of a small network is dozens of runs whose every
round is the same architecture on the same data with the same schedule: on a GPU each alone
leaves the device idle. `execute_together` trains round r of every (run, trial) pair as one
batched model (`engine.batched.train_rounds`), round-major, and writes each run dir file for
file as `engine.runner.execute` would: its own masks (its own criterion and actions, applied
by its own RunSession), events, checkpoints, result.json, summary.json and status.json. Only
the arithmetic of the training steps is shared, so

* with the ``loop`` strategy (the default on a CPU) every run's numbers are bit-identical to
  running it alone;
* with ``bmm`` / ``vmap`` (the defaults on a GPU) they equal it up to float reassociation.

Runs can train together when `batch_key` of their configs is equal: the same model, data,
[train] config, schedule lengths and device, IMP without the LMC analysis or the single-run
fast paths (compile, channels-last, CUDA graphs). `groups` splits a sweep's run dirs into such sets.
A run dir's result.json of a batched round carries `batched_seconds` and `batched_trials`
(the pairs trained together), and its run_start event `batched_runs`.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from engine.batched import SMALL_MODELS, train_rounds
from engine.config import ExperimentConfig, resolve_schedule
from engine.datasets import Dataset, default_data_dir, load_dataset
from engine.device import resolve_device
from engine.experiments import experiment_of, total_rounds
from engine.feeding import place_dataset
from engine.process import Heartbeat, RunLock, clear_stop_request, heartbeat_fields, pid_start
from engine.runner import RunSession
from engine.store import RunWriter, read_config
from engine.summary import build_summary
from engine.threads import apply_run_threads
from engine.training import Cancelled

__all__ = ["batch_key", "batchable", "execute_together", "groups"]

RunEventCallback = Callable[[Path, dict[str, Any]], None]


def batchable(config: ExperimentConfig) -> bool:
    """Whether a run can train in a batch at all (what `engine.batched` supports)."""
    return (experiment_of(config).parallel_trials and config.parallel_trials is not False
            and config.model.name in SMALL_MODELS and not config.train.compile
            and not config.train.channels_last and not config.train.cuda_graphs
            and not config.analysis.lmc)


def batch_key(config: ExperimentConfig) -> tuple | None:
    """Runs whose keys are equal train together; None for a run that cannot be batched."""
    if not batchable(config):
        return None
    d, m = config.data, config.model
    return (config.device, d.name, d.val_size, d.augment, d.dir, m.name, tuple(m.hidden), m.init,
            repr(config.train), repr(config.prune.rewind_iteration))


def groups(run_dirs: list[Path]) -> list[list[Path]]:
    """The run dirs in sets that can train together (in order; a run that cannot is a set of one)."""
    sets: dict[Any, list[Path]] = {}
    for index, run_dir in enumerate(run_dirs):
        key = batch_key(read_config(run_dir))
        sets.setdefault(key if key is not None else ("alone", index), []).append(Path(run_dir))
    return list(sets.values())


def execute_together(run_dirs: list[Path | str], *, on_event: RunEventCallback | None = None,
                     should_stop: Callable[[], bool] | None = None, checkpoint_seconds: float = 60.0,
                     data: Dataset | None = None, strategy: str = "auto") -> dict[Path, str]:
    """Runs (or resumes) the runs in `run_dirs` together; returns each one's final state.

    They must share a `batch_key` (ValueError otherwise, before anything is written).
    """
    run_dirs = [Path(d) for d in run_dirs]
    configs = [read_config(d) for d in run_dirs]
    keys = {batch_key(c) for c in configs}
    if None in keys or len(keys) != 1:
        raise ValueError("runs train together only when they share model, data, [train] config and schedule "
                         "(engine.sweep_batch.batch_key)")
    locks: list[RunLock] = []
    try:
        for run_dir in run_dirs:  # each run's run.lock, as its own runner would hold it (RunLocked if taken)
            lock = RunLock(run_dir)
            lock.acquire()
            locks.append(lock)
        return _execute_locked(run_dirs, configs, on_event, should_stop, checkpoint_seconds, data, strategy)
    finally:
        for lock in locks:
            lock.release()


def _execute_locked(run_dirs: list[Path], configs: list[ExperimentConfig], on_event: RunEventCallback | None,
                    should_stop: Callable[[], bool] | None, checkpoint_seconds: float, data: Dataset | None,
                    strategy: str) -> dict[Path, str]:
    requested = {"stop": False}  # a stop.request in any of the runs stops the batch (all stay resumable)
    user_stop = should_stop or (lambda: False)

    def stop() -> bool:
        return requested["stop"] or user_stop()

    def on_stop() -> None:
        requested["stop"] = True

    for run_dir in run_dirs:
        clear_stop_request(run_dir)  # a request from before this runner is not for it
    writers = [RunWriter(d) for d in run_dirs]
    threads_before = torch.get_num_threads()
    heartbeats = []
    for run_dir, writer in zip(run_dirs, writers):
        writer.status(state="running", pid=os.getpid(), host=socket.gethostname(), error=None, started=time.time(),
                      runner_start=pid_start(os.getpid()), heartbeat=heartbeat_fields())
        heartbeats.append(Heartbeat(run_dir, writer.status, on_stop))
        heartbeats[-1].start()
    sessions: list[RunSession] = []
    try:
        config = configs[0]
        device = resolve_device(config.device)
        if data is None:
            data_dir = Path(config.data.dir).expanduser() if config.data.dir else default_data_dir()
            data = load_dataset(config.data.name, val_size=config.data.val_size, data_dir=data_dir,
                                download=config.data.download, augment=config.data.augment)
        data = place_dataset(data, device)
        threads = apply_run_threads(config, data, device, run_dirs[0])
        for run_dir, run_config, writer in zip(run_dirs, configs, writers):
            schedule = resolve_schedule(run_config, len(data.train_x), str(writer.layout.config))
            emit = _emitter(run_dir, on_event)
            writer.status(threads=threads or torch.get_num_threads())
            emit(writer.event("run_start", run_id=run_dir.name, resumed=writer.layout.summary.exists(),
                              device=str(device), trials=run_config.trials, rounds=total_rounds(run_config),
                              iterations=schedule.iterations, eval_every=schedule.eval_every,
                              experiment=run_config.experiment, parallel_trials=True, batched_runs=len(run_dirs),
                              threads=torch.get_num_threads()))
            sessions.append(RunSession(run_dir, run_config, data, schedule, writer, emit, stop, checkpoint_seconds))
        _train_round_major(sessions, strategy)
        state, error = "done", None
    except Cancelled as exc:
        state, error = "cancelled", None
        for run_dir, writer in zip(run_dirs, writers):
            _emitter(run_dir, on_event)(writer.event("run_end", state=state, reason=str(exc)))
    except Exception as exc:  # every run dir must record any failure of the shared training
        state, error = "failed", f"{type(exc).__name__}: {exc}"
        for run_dir, writer in zip(run_dirs, writers):
            _emitter(run_dir, on_event)(writer.event("error", message=error, traceback=traceback.format_exc()))
    for heartbeat in heartbeats:
        heartbeat.stop()
    for run_dir, run_config, writer in zip(run_dirs, configs, writers):
        clear_stop_request(run_dir)
        writer.summary(build_summary(run_dir, run_config, state))
        writer.status(state=state, error=error, finished=time.time())
        if state != "cancelled":
            _emitter(run_dir, on_event)(writer.event("run_end", state=state, error=error))
        writer.close()
    torch.set_num_threads(threads_before)
    return {run_dir: state for run_dir in run_dirs}


def _emitter(run_dir: Path, on_event: RunEventCallback | None) -> Callable[[dict[str, Any]], None]:
    if on_event is None:
        return lambda event: None
    return lambda event: on_event(run_dir, event)


def _train_round_major(sessions: list[RunSession], strategy: str) -> None:
    """Round r of every (run, trial) pair as one batched training, then round r + 1."""
    pairs = [(session, session.open_trial(t)) for session in sessions for t in range(session.config.trials)]
    for r in range(max(total_rounds(s.config) for s in sessions)):
        pending = [(session, trial, p) for session, trial in pairs
                   if r < total_rounds(session.config) and (p := session.start_round(trial, r)) is not None]
        if not pending:
            continue
        outcomes = train_rounds([trial.model for _, trial, _ in pending], [p.job for _, _, p in pending], strategy)
        for (session, trial, p), outcome in zip(pending, outcomes):
            session.finish_round(trial, r, p, outcome)
