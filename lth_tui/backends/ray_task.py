"""What runs on a Ray node: one run dir's runner as a child process, and the runs-dir probe.

The task is only a custodian: the runner child (`python -m engine.runner RUN_DIR`) has its
own CUDA context and its own SIGTERM path, writes everything to the run dir on the shared
filesystem, and the task returns nothing but the run's end state. Imported by Ray workers,
so it imports no torch (of the engine only the run store's pure-Python modules and `engine.process`).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from engine.layout import RunLayout
from engine.process import pid_start
from engine.store import StoreError, read_bytes
from lth_tui.backends.runfiles import (
    FINAL_STATES,
    open_runner_log,
    read_status_file,
    runner_command,
    runner_env,
    stop_child,
    update_status,
    wait_for_runner_exit,
)

PREVIOUS_RUNNER_WAIT = 300.0  # a runner's SIGTERM path finishes its step and writes one checkpoint
STOP_GRACE = 600.0
LOG_TAIL_LINES = 5


class RunnerDied(RuntimeError):
    """The runner exited without recording an end state (killed, out of memory): Ray retries the
    task, and the retry resumes the run from its last checkpoint."""


class RunDirUnusable(RuntimeError):
    """This node cannot use the run dir (not there, or a runner of it still alive here); not retried."""


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the worker dies (Linux), so a killed worker's runner
    checkpoints and stops instead of training on beside the retry."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def run_dir_task(run_dir: str, threads: int) -> str:
    """Runs (or, on a retry, resumes) the run in `run_dir` on this node; returns its end state.

    `ray.cancel` raises KeyboardInterrupt here: the runner gets SIGTERM, checkpoints and ends
    `cancelled`, and the task waits for that before it returns.
    """
    import ray

    path = Path(run_dir)
    host = socket.gethostname()
    if not RunLayout(path).config.is_file():
        raise RunDirUnusable(f"node {host} cannot see {run_dir} (no config.toml there)")
    if not wait_for_runner_exit(path, PREVIOUS_RUNNER_WAIT):
        raise RunDirUnusable(f"a runner of {run_dir} is still alive on {host} after {PREVIOUS_RUNNER_WAIT:.0f} s")
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    update_status(path, backend="ray", node=host, ray_task_id=ray.get_runtime_context().get_task_id(),
                  cuda_visible_devices=gpus)
    env = {"OMP_NUM_THREADS": str(max(1, threads)), "CUDA_VISIBLE_DEVICES": gpus}
    proc = None
    try:
        with open_runner_log(path) as log:
            proc = subprocess.Popen(runner_command(path), stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT,
                                    env=runner_env(env), close_fds=True, preexec_fn=_die_with_parent)
        # As engine.runner.spawn does: the child writes its pid only after importing torch.
        update_status(path, state="running", pid=proc.pid, host=host, error=None, runner_start=pid_start(proc.pid))
        while proc.poll() is None:
            time.sleep(0.5)  # short sleeps: Ray's cancel arrives between them as KeyboardInterrupt
    except KeyboardInterrupt:
        if proc is not None:
            stop_child(proc, STOP_GRACE)
    state = read_status_file(path).get("state")
    if state in FINAL_STATES:
        return state
    if proc is None:
        return "queued"  # cancelled before the runner started
    raise RunnerDied(f"the runner of {run_dir} on {host} exited with code {proc.returncode} and no end state"
                     f"{_log_tail(path)}")


def _log_tail(run_dir: Path) -> str:
    try:
        lines = read_bytes(RunLayout(run_dir).runner_log).decode("utf-8", errors="replace").splitlines()
    except StoreError:
        return ""
    return ("; runner.log ends: " + " | ".join(lines[-LOG_TAIL_LINES:])) if lines else ""


def probe(runs_dir: str, name: str, token: str) -> dict[str, Any]:
    """Reads the driver's probe file in `runs_dir` and writes an answer beside it.

    The driver then reads the answer, so both directions are proven: the node sees the
    driver's writes and the driver sees the node's.
    """
    host = socket.gethostname()
    folder = Path(runs_dir)
    result: dict[str, Any] = {"host": host, "problem": None, "answer": None}
    try:
        seen = (folder / name).read_text(encoding="utf-8")
    except FileNotFoundError:
        result["problem"] = ("no such directory there" if not folder.is_dir()
                             else "the probe file is not there (a different directory at that path)")
        return result
    except OSError as exc:
        result["problem"] = f"cannot read it: {exc}"
        return result
    if seen != token:
        result["problem"] = "the probe file there holds something else (a different directory at that path)"
        return result
    answer = f"{name}.{os.getpid()}.{host}"[:200]
    try:
        (folder / answer).write_text(f"{token} {host}", encoding="utf-8")
    except OSError as exc:
        result["problem"] = f"cannot write there: {exc}"
        return result
    result["answer"] = answer
    return result
