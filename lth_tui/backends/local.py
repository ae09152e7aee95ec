"""The local backend: runner child processes on this machine, `jobs` at a time, one GPU slot each.

A run that may use a GPU gets the least-loaded GPU slot at the moment it starts (a free one
while any is free) through CUDA_VISIBLE_DEVICES, rather than a slot fixed before the sweep
began: with runs of unequal length a fixed rotation starts runs on a busy GPU while another
sits idle.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine.process import pid_start
from engine.threads import CAP_ENV
from lth_tui.backends.runfiles import (
    end_state,
    mark_never_started,
    open_runner_log,
    runner_command,
    runner_env,
    update_status,
    wants_gpu,
)

Launch = Callable[[Path, dict[str, str]], Any]


def gpu_slots() -> list[str]:
    """The GPUs runs may be put on: the entries of CUDA_VISIBLE_DEVICES when it is set, else every GPU torch sees."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [entry.strip() for entry in visible.split(",") if entry.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def launch_runner(run_dir: Path, env: dict[str, str]) -> subprocess.Popen:
    """A runner child in its own session: Ctrl-C at the terminal reaches only the sweep, which
    passes it on as SIGTERM, so the runner checkpoints instead of dying mid-step."""
    with open_runner_log(run_dir) as log:
        return subprocess.Popen(runner_command(run_dir), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=runner_env(env), start_new_session=True, close_fds=True)


class LocalBackend:
    """`jobs` runner children at a time on this machine."""

    name = "local"

    def __init__(self, jobs: int, slots: Sequence[str] = (), *, launch: Launch = launch_runner,
                 holder: int | None = None) -> None:
        self.jobs = jobs
        self.slots = list(slots)
        self.load = {slot: 0 for slot in self.slots}
        self.launch = launch
        self.holder = os.getpid() if holder is None else holder
        self.pending: list[Path] = []
        self.active: dict[Path, tuple[Any, str | None]] = {}
        self.states: dict[Path, str] = {}
        self.errors: dict[Path, str] = {}  # a local run's failure is all in its run dir
        self.cancelled = False
        # at most an even share of the cores per child (engine/threads.py's cap; the child's
        # "auto" policy may take fewer, and the user's OMP_NUM_THREADS still wins there)
        self.threads = {CAP_ENV: str(max(1, (os.cpu_count() or 1) // jobs))}

    def submit(self, run_dirs: Sequence[Path]) -> None:
        for run_dir in run_dirs:
            self.pending.append(Path(run_dir))
            self.states[Path(run_dir)] = "queued"

    def poll(self) -> dict[Path, str]:
        for run_dir, (proc, slot) in list(self.active.items()):
            if proc.poll() is not None:
                self.states[run_dir] = end_state(run_dir)
                if slot is not None:
                    self.load[slot] -= 1
                del self.active[run_dir]
        while self.pending and len(self.active) < self.jobs and not self.cancelled:
            self._start(self.pending.pop(0))
        return dict(self.states)

    def free_slot(self) -> str:
        """The least-loaded slot, the first of them on a tie."""
        return min(self.slots, key=lambda slot: (self.load[slot], self.slots.index(slot)))

    def _start(self, run_dir: Path) -> None:
        slot = self.free_slot() if self.slots and wants_gpu(run_dir) else None
        env = dict(self.threads)
        placement: dict[str, Any] = {"backend": self.name, "node": socket.gethostname()}
        if slot is not None:
            env["CUDA_VISIBLE_DEVICES"] = slot
            placement["cuda_visible_devices"] = slot
            self.load[slot] += 1
        update_status(run_dir, **placement)
        proc = self.launch(run_dir, env)
        # As engine.runner.spawn does: the child records its pid only after importing torch,
        # and until then no reader may take the run for one whose runner is gone.
        update_status(run_dir, state="running", pid=proc.pid, host=socket.gethostname(), error=None,
                      runner_start=pid_start(proc.pid))
        self.active[run_dir] = (proc, slot)
        self.states[run_dir] = "running"

    def cancel(self) -> None:
        import signal

        self.cancelled = True
        for run_dir in self.pending:
            mark_never_started(run_dir, self.holder)
            self.states[run_dir] = "cancelled"
        self.pending.clear()
        for proc, _ in self.active.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    def close(self) -> None:
        """Waits for any child still running (a caller that stopped polling early); starts none."""
        for proc, _ in self.active.values():
            proc.wait()
