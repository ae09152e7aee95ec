"""Runs (or resumes) the experiment described by a run dir, writing the run store as it goes.

Running and resuming are the same function: every round whose result.json exists is taken
from disk, every other round is recomputed from the stored weights with generators keyed by
(seed, trial, round, purpose), and a round interrupted mid-way continues from its checkpoint.
So a run killed with `kill -9` and resumed ends with the same masks and accuracies as one
that never stopped.

`python -m engine.runner RUN_DIR` is the child process the app launches (engine/launch.py's
`spawn`); SIGTERM there cancels cleanly (checkpoint, status "cancelled") so the run stays
resumable. What differs per experiment kind (rounds, how a trial trains, batched trials) is
engine/experiments.py's; the runner dispatches through it.
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine.actions import round_start
from engine.batched import parallel_trials_active
from engine.config import ConfigError, ExperimentConfig, Schedule, resolve_schedule
from engine.criteria import next_mask
from engine.datasets import Dataset, default_data_dir, load_dataset
from engine.device import resolve_device, speed_warnings
from engine.experiments import experiment_of, total_rounds
from engine.feeding import place_dataset
from engine.models import build_model, fresh_weights, init_std, layer_kinds, model_options
from engine.planning import check_stored_rounds, derive_round_seed, round_iterations, rounds_done
from engine.process import (
    Heartbeat,
    RunLock,
    RunLocked,
    clear_stop_request,
    heartbeat_fields,
    pid_start,
    stop_requested,
)
from engine.rounds import RoundStart, finish_round, start_round_event
from engine.store import (
    Diverged,
    RunWriter,
    StoreError,
    load_tensors_like,
    read_config,
    read_status,
    remove_stale_temps,
    save_tensors,
)
from engine.summary import build_summary
from engine.threads import apply_run_threads
from engine.training import Cancelled, RoundOutcome, TrainJob, generator, train_round

EventCallback = Callable[[dict[str, Any]], None]


@dataclass
class _Trial:
    """One trial between rounds: its model, θ0, and the tensors of its last finished round."""

    t: int
    seed: int
    model: torch.nn.Module
    theta0: dict[str, torch.Tensor]
    kinds: dict[str, str]
    rewind_path: Path
    prev: tuple[dict, dict, dict] | None = None


@dataclass
class _Pending:
    """A round set up and waiting for its training."""

    job: TrainJob
    start: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]
    frozen: dict[str, torch.Tensor] | None
    figures: RoundStart  # density figures of the mask (engine/rounds.py)


class RunSession:
    """State shared by the trials of one execution."""

    def __init__(self, run_dir: Path, config: ExperimentConfig, data: Dataset, schedule: Schedule,
                 writer: RunWriter, emit: EventCallback, should_stop: Callable[[], bool], checkpoint_seconds: float):
        self.dir, self.config, self.data, self.schedule = run_dir, config, data, schedule
        self.writer, self.emit, self.should_stop = writer, emit, should_stop
        self.checkpoint_seconds = checkpoint_seconds

    def open_trial(self, t: int) -> _Trial:
        """Trial t's model holding θ0 (drawn from its seed, or read back from init.safetensors)."""
        config, writer = self.config, self.writer
        seed = config.seed + t
        model = build_model(config.model.name, input_shape=self.data.input_shape, num_classes=self.data.num_classes,
                            hidden=config.model.hidden, init=config.model.init, generator=generator(seed, "init"),
                            **model_options(config))
        init_path = writer.layout.init(t)
        if init_path.is_file():
            model.load_state_dict(load_tensors_like(init_path, model.state_dict()))
        else:
            save_tensors(init_path, model.state_dict())
        theta0 = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return _Trial(t=t, seed=seed, model=model, theta0=theta0, kinds=layer_kinds(model),
                      rewind_path=writer.layout.rewind(t))

    def start_round(self, trial: _Trial, r: int) -> _Pending | None:
        """Mask and start weights of round r (files written, model loaded, round_start emitted),
        or None when the round is already on disk (its tensors become `trial.prev`)."""
        config, writer = self.config, self.writer
        t, seed, model, theta0, kinds = trial.t, trial.seed, trial.model, trial.theta0, trial.kinds
        k = self.schedule.rewind_iteration
        layout, rdir = writer.layout, writer.round_dir(t, r)
        if layout.result(t, r).is_file():
            state = model.state_dict()
            trial.prev = (load_tensors_like(layout.start(t, r), state),
                          load_tensors_like(layout.final(t, r), state),
                          load_tensors_like(layout.mask(t, r), {n: state[n] for n in kinds}))
            return None
        if r == 0:
            masks = {name: torch.ones_like(theta0[name], dtype=torch.bool) for name in kinds}
            start, frozen = theta0, None
        else:
            rewind_state = theta0 if k == 0 else load_tensors_like(trial.rewind_path, theta0)
            prev_start, prev_final, prev_mask = trial.prev
            masks = next_mask(criterion=config.prune.criterion, scope=config.prune.scope, rates=config.prune.rate,
                              kinds=kinds, mask={n: prev_mask[n].bool() for n in kinds},
                              w_init={n: prev_start[n] for n in kinds}, w_final={n: prev_final[n] for n in kinds},
                              generator=generator(seed, r, "prune"),
                              steps=config.prune.rounds if config.prune.strategy == "oneshot" else 1,
                              count=config.prune.count)
            begin = round_start(mask1=config.prune.mask1, mask0=config.prune.mask0, mask=masks,
                                rewind_point={n: rewind_state[n] for n in kinds},
                                prev_start={n: prev_start[n] for n in kinds},
                                prev_final={n: prev_final[n] for n in kinds},
                                fresh=fresh_weights(model, config.model.init, generator(seed, r, "fresh")),
                                init_std={n: init_std(model, n, config.model.init) for n in kinds},
                                generator=generator(seed, r, "actions"))
            start = {**rewind_state, **begin.weights}
            frozen = begin.frozen
        save_tensors(layout.mask(t, r), masks)
        save_tensors(layout.start(t, r), start)
        model.load_state_dict(start)
        figures = RoundStart(masks, frozen)
        start_round_event(self, t, r, figures)

        def on_eval(point: dict[str, Any], t: int = t, r: int = r) -> None:
            self.emit(writer.event("eval", trial=t, round=r, **point))

        rewind_path = trial.rewind_path
        job = TrainJob(data=self.data, config=config.train, schedule=self.schedule, masks=masks, frozen=frozen,
                       seed=derive_round_seed(seed, r), capture_at=k if (r == 0 and k > 0) else None,
                       on_capture=lambda state: save_tensors(rewind_path, state), on_eval=on_eval,
                       should_stop=self.should_stop, checkpoint_dir=rdir, checkpoint_seconds=self.checkpoint_seconds,
                       start_step=k if r > 0 else 0)  # late rewinding: θk trains on for iterations k..T
        return _Pending(job=job, start=start, masks=masks, frozen=frozen, figures=figures)

    def finish_round(self, trial: _Trial, r: int, pending: _Pending, outcome: RoundOutcome) -> None:
        """Round r's files, summary, status and round_end event, from the trained `trial.model`."""
        config, writer = self.config, self.writer
        t, model = trial.t, trial.model
        final_path = writer.layout.final(t, r)
        save_tensors(final_path, model.state_dict())
        record = {"round": r, **pending.figures.fields(),
                  "early_stop_iteration": outcome.early_stop_iteration, "val_loss_min": outcome.val_loss_min,
                  "test_accuracy_at_early_stop": outcome.test_accuracy_at_early_stop,
                  "test_accuracy_final": outcome.test_accuracy_final,
                  "supermask_accuracy": outcome.supermask_accuracy, "test_accuracy_best": outcome.test_accuracy_best,
                  "seconds": outcome.seconds, **outcome.extra}
        if config.analysis.lmc:  # linear mode connectivity of this round's training (engine/lmc.py)
            from engine.lmc import round_lmc

            lmc = round_lmc(self, t, r, pending.start, pending.masks, pending.frozen, model,
                            derive_round_seed(trial.seed, r))
            record.update(lmc_barrier=lmc["barrier"], lmc_stable=lmc["stable"])
        if config.analysis.successive and r > 0:  # round r-1's solution against this one (engine/successive.py)
            from engine.successive import round_fields, round_successive

            prev_start, prev_final, _ = trial.prev
            record.update(round_fields(round_successive(self, t, r, (prev_start, prev_final),
                                                        (pending.start, model.state_dict()),
                                                        pending.masks, model)))
        finish_round(self, t, r, record, outcome.evals)
        trial.prev = ({k_: v.cpu() for k_, v in pending.start.items()},
                      load_tensors_like(final_path, pending.start), pending.masks)

    def trial(self, t: int) -> None:
        """All rounds of trial t, one after another (trial-major)."""
        trial = self.open_trial(t)
        for r in range(total_rounds(self.config)):
            pending = self.start_round(trial, r)
            if pending is not None:
                self.finish_round(trial, r, pending, train_round(trial.model, pending.job))

    def trials_together(self, ts: list[int]) -> None:
        """Round r of every trial in `ts` as one batched training (round-major; engine/batched.py).

        The run store ends up file for file as with `trial`; a round already on disk for some
        trials is trained for the others only.
        """
        from engine.batched import train_rounds

        trials = [self.open_trial(t) for t in ts]
        for r in range(total_rounds(self.config)):
            pending = [(trial, p) for trial in trials if (p := self.start_round(trial, r)) is not None]
            if not pending:
                continue
            outcomes = train_rounds([trial.model for trial, _ in pending], [p.job for _, p in pending])
            for (trial, p), outcome in zip(pending, outcomes):
                self.finish_round(trial, r, p, outcome)

class _StopWatch:
    """should_stop for the training loops: the caller's flag, or a stop.request seen in the run dir.

    The file is looked at on every event the run emits (every eval, round start and end) and
    by the heartbeat thread, not on every training step.
    """

    def __init__(self, run_dir: Path, user: Callable[[], bool]) -> None:
        self.run_dir, self.user = run_dir, user
        self.requested = False

    def __call__(self) -> bool:
        return self.requested or self.user()

    def poll(self) -> None:
        if not self.requested and stop_requested(self.run_dir):
            self.requested = True

    def set(self) -> None:
        self.requested = True


def execute(run_dir: Path | str, *, on_event: EventCallback | None = None,
            should_stop: Callable[[], bool] | None = None,
            checkpoint_seconds: float = 60.0, data: Dataset | None = None) -> str:
    """Runs or resumes the run in `run_dir`; returns the final state (done, failed, cancelled).

    `data` lets a caller that already loaded the dataset (to check it before creating the run
    dir) hand it over instead of loading it twice. The run's lock (run.lock) is held
    throughout: a second runner raises RunLocked before it writes anything.
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    lock = RunLock(run_dir)
    lock.acquire()
    threads_before = torch.get_num_threads()
    try:
        return _execute_locked(run_dir, config, on_event, should_stop, checkpoint_seconds, data)
    finally:
        torch.set_num_threads(threads_before)  # a caller running several runs in one process gets its own back
        lock.release()


def _execute_locked(run_dir: Path, config: ExperimentConfig, on_event: EventCallback | None,
                    should_stop: Callable[[], bool] | None, checkpoint_seconds: float, data: Dataset | None) -> str:
    try:
        before = read_status(run_dir)["state"]
    except StoreError:
        before = None
    stop = _StopWatch(run_dir, should_stop or (lambda: False))
    if before == "queued" and stop_requested(run_dir):
        stop.set()  # stopped while waiting in its sweep: end cancelled without training
    else:
        clear_stop_request(run_dir)  # a request from before this runner is not for it
    remove_stale_temps(run_dir)
    writer = RunWriter(run_dir)
    user_emit = on_event or (lambda event: None)

    def emit(event: dict[str, Any]) -> None:
        stop.poll()
        user_emit(event)

    resumed = writer.layout.summary.exists() or bool(writer.layout.checkpoints_on_disk())
    writer.status(state="running", pid=os.getpid(), host=socket.gethostname(), error=None, started=time.time(),
                  runner_start=pid_start(os.getpid()), heartbeat=heartbeat_fields())
    heartbeat = Heartbeat(run_dir, writer.status, stop.set)
    heartbeat.start()
    try:
        if stop.requested:  # not stop(): the caller's flag is the training loops' to poll
            raise Cancelled("stopped before it started")
        check_stored_rounds(run_dir, config)
        device = resolve_device(config.device)
        if data is None:
            data_dir = Path(config.data.dir).expanduser() if config.data.dir else default_data_dir()
            data = load_dataset(config.data.name, val_size=config.data.val_size, data_dir=data_dir,
                                download=config.data.download, augment=config.data.augment)
        data = place_dataset(data, device)  # on the device, or a too-big training split pinned on the host
        schedule = resolve_schedule(config, len(data.train_x), str(writer.layout.config))
        kind = experiment_of(config)
        together = kind.parallel_trials and parallel_trials_active(config, device)
        threads = apply_run_threads(config, data, device, run_dir)  # engine/threads.py; None: OMP_NUM_THREADS
        writer.status(threads=threads or torch.get_num_threads())
        emit(writer.event("run_start", run_id=run_dir.name, resumed=resumed, device=str(device),
                          trials=config.trials, rounds=total_rounds(config),
                          iterations=round_iterations(config, schedule),
                          eval_every=schedule.eval_every, rounds_done=rounds_done(run_dir, config),
                          experiment=config.experiment, parallel_trials=together,
                          threads=torch.get_num_threads()))
        for message in speed_warnings(config, device):
            emit(writer.event("warning", message=message))
        run = RunSession(run_dir, config, data, schedule, writer, emit, stop, checkpoint_seconds)
        if together and kind.trials_together:  # round-major, all trials as one batched model (engine/batched.py)
            entry_point(kind.trials_together)(run, list(range(config.trials)))
        run_trial = entry_point(kind.trial)
        for t in range(0 if together else config.trials):
            run_trial(run, t)
        state, error = "done", None
    except Cancelled as exc:
        state, error = "cancelled", None
        user_emit(writer.event("run_end", state=state, reason=str(exc)))
    except (Diverged, StoreError, ConfigError) as exc:  # messages written for the user as they are
        state, error = "failed", str(exc)
        user_emit(writer.event("error", message=error))
    except Exception as exc:  # the run dir must record any failure, whatever raised it
        state, error = "failed", f"{type(exc).__name__}: {exc}"
        user_emit(writer.event("error", message=error, traceback=traceback.format_exc()))
    heartbeat.stop()
    try:
        writer.summary(build_summary(run_dir, config, state))
    except StoreError as exc:  # a damaged result.json: already the error above; keep the old summary
        error = error or str(exc)
    writer.status(state=state, error=error, finished=time.time())
    if state != "cancelled":
        user_emit(writer.event("run_end", state=state, error=error))
    writer.close()
    clear_stop_request(run_dir)
    remove_stale_temps(run_dir)
    return state


def entry_point(name: str) -> Callable[..., None]:
    """The function an experiment kind names ("module:attribute.path"), imported now: only a run needs it."""
    module, _, path = name.partition(":")
    target: Any = importlib.import_module(module)
    for part in path.split("."):
        target = getattr(target, part)
    return target


def main(argv: list[str] | None = None) -> int:
    """The child's entry point: runs RUN_DIR until done, failed or cancelled (SIGTERM)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m engine.runner RUN_DIR", file=sys.stderr)
        return 2
    stop = {"requested": False}

    def on_term(signum: int, frame: Any) -> None:
        stop["requested"] = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        state = execute(args[0], should_stop=lambda: stop["requested"])
    except (RunLocked, StoreError) as exc:  # nothing was written: say why in runner.log
        print(f"lth-tui runner: {exc}", file=sys.stderr)
        return 2
    return {"done": 0, "cancelled": 0}.get(state, 1)


if __name__ == "__main__":
    # As engine.runner, not __main__: the experiment registry names engine.runner's RunSession,
    # and one copy of the module keeps its classes one.
    sys.exit(importlib.import_module("engine.runner").main())
