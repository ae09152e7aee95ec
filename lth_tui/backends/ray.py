"""The Ray backend: one Ray task per run dir on a cluster whose nodes share the runs dir.

Ray core only (tasks and resources), not Tune: a sweep's runs are ordinary run dirs and a
retry is a resume, which Tune's own trial directories and restore logic would fight. The
driver (`lth-tui run ... --backend ray`) validates and creates the run dirs here, checks that
the nodes see them, and submits `ray_task.run_dir_task` per run with the requested CPUs and
(fractional) GPUs. Results travel through the shared filesystem, never the object store.
"""

from __future__ import annotations

import importlib.util
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lth_tui.backends import BackendError
from lth_tui.backends.runfiles import end_state, mark_never_started, read_status_file, update_status, wants_gpu

INSTALL_HINT = '--backend ray needs Ray: pip install "lth-tui[ray]" (or pip install ray) on this machine and every node'
MAX_RETRIES = 3  # a task whose node or worker dies is retried this often; each retry resumes the run
PROBE_TIMEOUT = 120.0
STATUS_EVERY = 1.0  # how often the queued/running state of unfinished runs is re-read from the shared dir


def ray_available() -> bool:
    return importlib.util.find_spec("ray") is not None


def connect(address: str | None) -> bool:
    """Connects to the cluster at `address` (`auto`: the one this node belongs to), or starts a
    local Ray instance when there is none. True when this call connected, so the caller disconnects.

    A process that is already connected (a notebook, the tests) keeps its connection.
    """
    if not ray_available():
        raise BackendError(INSTALL_HINT)
    import ray

    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, log_to_driver=False, logging_level="WARNING", include_dashboard=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"at {address}" if address else "(a local instance)"
        raise BackendError(f"--address {address}: cannot connect to a Ray cluster {where}: {exc}") from None
    return True


def resources(gpus_per_run: float | None, cpus_per_run: float | None) -> tuple[float, float, list[dict[str, Any]]]:
    """(GPUs, CPUs) per run and the alive nodes one run fits on.

    Without --gpus-per-run a run takes one GPU when the cluster has any, none otherwise.
    """
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    any_gpu = any(n["Resources"].get("GPU", 0) for n in nodes)
    gpus = gpus_per_run if gpus_per_run is not None else (1.0 if any_gpu else 0.0)
    cpus = cpus_per_run if cpus_per_run is not None else 1.0
    fitting = [n for n in nodes if n["Resources"].get("GPU", 0) >= gpus and n["Resources"].get("CPU", 0) >= cpus]
    if not fitting:
        have = "; ".join(f"{n['NodeManagerAddress']}: {n['Resources'].get('CPU', 0):g} CPU, "
                         f"{n['Resources'].get('GPU', 0):g} GPU"
                         for n in nodes) or "no alive nodes"
        raise BackendError(f"no Ray node can hold one run ({gpus:g} GPU, {cpus:g} CPU; "
                           f"set --gpus-per-run / --cpus-per-run): {have}")
    return gpus, cpus, fitting


def check_runs_dir(runs_dir: Path, nodes: Sequence[dict[str, Any]], timeout: float = PROBE_TIMEOUT) -> None:
    """Refuses (BackendError) unless every node in `nodes` reads a file written here into
    `runs_dir` and writes one this machine reads back. Leaves nothing behind."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from lth_tui.backends import ray_task

    runs_dir = Path(runs_dir)
    created = not runs_dir.exists()
    runs_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    name = f".lth-tui-probe-{token[:12]}"
    (runs_dir / name).write_text(token, encoding="utf-8")
    answers: list[str] = []
    try:
        remote = ray.remote(ray_task.probe)
        refs = [remote.options(num_cpus=0, max_retries=0,
                               scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                .remote(str(runs_dir), name, token) for n in nodes]
        try:
            results = ray.get(refs, timeout=timeout)
        except ray.exceptions.GetTimeoutError:
            raise BackendError(f"the Ray nodes did not answer the runs-dir probe within {timeout:.0f} s") from None
        except ray.exceptions.RayError as exc:
            raise BackendError(f"a Ray node could not run lth-tui's probe (is lth-tui installed there?): "
                               f"{str(exc).strip().splitlines()[-1]}") from None
        problems = []
        for node, result in zip(nodes, results):
            where = f"node {result['host']} ({node['NodeManagerAddress']})"
            if result["problem"]:
                problems.append(f"{where}: {result['problem']}")
                continue
            answers.append(result["answer"])
            try:
                seen = (runs_dir / result["answer"]).read_text(encoding="utf-8")
            except OSError:
                seen = None
            if seen != f"{token} {result['host']}":
                problems.append(f"{where} wrote its answer there but this machine does not see it")
        if problems:
            raise BackendError(f"the runs dir {runs_dir} is not shared with every Ray node: {'; '.join(problems)}; "
                               "put --runs-dir on a filesystem every node mounts at the same path")
    finally:
        for file in (name, *answers):
            (runs_dir / file).unlink(missing_ok=True)
        if created:
            try:
                runs_dir.rmdir()  # only if it is still empty: we made it, and the sweep may not go ahead
            except OSError:
                pass


class RayBackend:
    """One Ray task per run dir; states from the task refs and the run dirs' status.json."""

    name = "ray"

    def __init__(self, *, gpus: float, cpus: float, owns_connection: bool, holder: int | None = None,
                 max_retries: int = MAX_RETRIES) -> None:
        import os

        self.gpus, self.cpus = gpus, cpus
        self.owns_connection = owns_connection
        self.holder = os.getpid() if holder is None else holder
        self.max_retries = max_retries
        self.refs: dict[Path, Any] = {}
        self.states: dict[Path, str] = {}
        self.errors: dict[Path, str] = {}
        self.cancelled = False
        self._status_read = 0.0

    def submit(self, run_dirs: Sequence[Path]) -> None:
        import ray

        from lth_tui.backends import ray_task

        remote = ray.remote(ray_task.run_dir_task)
        threads = max(1, int(self.cpus))
        for run_dir in run_dirs:
            run_dir = Path(run_dir)
            options = {"num_cpus": self.cpus, "num_gpus": self.gpus if wants_gpu(run_dir) else 0,
                       "max_retries": self.max_retries, "retry_exceptions": [ray_task.RunnerDied],
                       "name": f"lth-tui {run_dir.name}"}
            self.refs[run_dir] = remote.options(**options).remote(str(run_dir), threads)
            self.states[run_dir] = "queued"

    def poll(self) -> dict[Path, str]:
        import ray

        waiting = {ref: run_dir for run_dir, ref in self.refs.items() if self.states[run_dir] in ("queued", "running")}
        if waiting:
            ready, _ = ray.wait(list(waiting), num_returns=len(waiting), timeout=0)
            for ref in ready:
                self._finish(waiting.pop(ref), ref)
        if waiting and time.monotonic() - self._status_read >= STATUS_EVERY:
            self._status_read = time.monotonic()
            for run_dir in waiting.values():
                self.states[run_dir] = "queued" if read_status_file(run_dir).get("state") == "queued" else "running"
        return dict(self.states)

    def _finish(self, run_dir: Path, ref: Any) -> None:
        import ray

        try:
            ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            pass
        except ray.exceptions.RayError as exc:
            self.errors[run_dir] = str(exc).strip().splitlines()[-1]
        status = read_status_file(run_dir).get("state")
        if status == "queued":  # no runner ever started: nothing else will write this run's end
            if self.cancelled and mark_never_started(run_dir, self.holder):
                self.states[run_dir] = "cancelled"
                return
            update_status(run_dir, state="failed", pid=None,
                          error=f"Ray task: {self.errors.get(run_dir, 'ended without a runner')}",
                          finished=time.time())
            self.states[run_dir] = "failed"
            return
        self.states[run_dir] = end_state(run_dir)

    def cancel(self) -> None:
        """`ray.cancel` each unfinished task: a waiting one never starts, a running one raises
        KeyboardInterrupt in its task, which passes SIGTERM to the runner."""
        import ray

        self.cancelled = True
        for run_dir, ref in self.refs.items():
            if self.states[run_dir] in ("queued", "running"):
                ray.cancel(ref)

    def close(self) -> None:
        if self.owns_connection:
            import ray

            ray.shutdown()


def open_backend(address: str | None, gpus_per_run: float | None, cpus_per_run: float | None,
                 runs_dir: Path) -> RayBackend:
    """Connected, with the per-run resources settled and the runs dir proven shared; or BackendError
    (disconnected again) before anything of the sweep is written."""
    owns = connect(address)
    try:
        gpus, cpus, nodes = resources(gpus_per_run, cpus_per_run)
        check_runs_dir(runs_dir, nodes)
    except BaseException:
        if owns:
            import ray

            ray.shutdown()
        raise
    return RayBackend(gpus=gpus, cpus=cpus, owns_connection=owns)


def check_device(device: str, source: str) -> None:
    """A run on Ray uses the GPU Ray hands it (CUDA_VISIBLE_DEVICES), so `cuda:N` has no meaning there."""
    from engine.config import ConfigError

    if device not in ("auto", "cuda", "cpu"):
        raise ConfigError(source, "device", device,
                          "with --backend ray a run takes the GPU Ray gives it: auto, cuda or cpu")
