"""Starting a run's runner as a detached child process: the app's (and the local backend's) launch path.

The child is `python -m engine.runner RUN_DIR` (engine/runner.py's `main`); it outlives the
app and a dropped SSH link. Liveness, the run lock and stop requests are engine/process.py's;
this module only starts the child and records its pid, which needs the run store's writer.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from engine.layout import RunLayout
from engine.process import RunLocked, lock_held, pid_start
from engine.store import RunWriter, open_log

__all__ = ["spawn"]


def spawn(run_dir: Path | str) -> subprocess.Popen:
    """Starts the runner as a detached child: it outlives the app and a dropped SSH link."""
    run_dir = Path(run_dir)
    holder = lock_held(run_dir)
    if holder:
        raise RunLocked(f"{run_dir.name} is already being run by {holder}; stop it first or wait for it")
    # The child imports the same engine as this process, whatever the cwd or a relative PYTHONPATH.
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
    log = open_log(RunLayout(run_dir).runner_log)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "engine.runner", str(run_dir)], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True, env=env)
    finally:
        log.close()
    # The child records its pid only after importing torch; writing it now means no reader
    # takes the run for an interrupted one (and resumes it twice) in the meantime.
    writer = RunWriter(run_dir)
    writer.status(state="running", pid=proc.pid, host=socket.gethostname(), error=None,
                  runner_start=pid_start(proc.pid))
    writer.close()
    return proc
