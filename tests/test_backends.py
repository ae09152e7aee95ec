"""The local backend's GPU-slot queue and cancel, with fake runner processes; backend options at the CLI."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.process import pid_start
from lth_tui.backends.local import LocalBackend, gpu_slots
from lth_tui.cli import main

ROOT = Path(__file__).resolve().parent.parent
TINY = ('name = "tiny"\ndescription = "tiny test preset"\ndevice = "cpu"\n[data]\nname = "digits"\nval_size = 200\n'
        '[model]\nhidden = [32]\n[train]\niterations = 40\neval_every = 20\nbatch_size = 50\n[prune]\nrounds = 1\n')


class FakeRunner:
    """Stands in for a runner child: ends when the test says so, writing the run's end state."""

    def __init__(self, run_dir: Path, env: dict[str, str]) -> None:
        self.run_dir, self.env = run_dir, env
        self.returncode: int | None = None
        self.pid = os.getpid()
        self.signals: list[int] = []

    def poll(self) -> int | None:
        return self.returncode

    def send_signal(self, signum: int) -> None:
        self.signals.append(signum)
        self.end("cancelled")

    def wait(self) -> int | None:
        return self.returncode

    def end(self, state: str = "done") -> None:
        status = json.loads((self.run_dir / "status.json").read_text())
        status["state"] = state
        (self.run_dir / "status.json").write_text(json.dumps(status))
        self.returncode = 0


def queued_runs(tmp_path: Path, devices: list[str]) -> list[Path]:
    """Run dirs as a sweep leaves them: config.toml with the device, status queued by this process."""
    out = []
    for index, device in enumerate(devices):
        run_dir = tmp_path / f"run-{index:02d}"
        run_dir.mkdir()
        (run_dir / "config.toml").write_text(f'device = "{device}"\n')
        (run_dir / "status.json").write_text(json.dumps({"state": "queued", "pid": os.getpid()}))
        out.append(run_dir)
    return out


def backend_with_fakes(jobs: int, slots: list[str]) -> tuple[LocalBackend, list[FakeRunner]]:
    started: list[FakeRunner] = []

    def launch(run_dir: Path, env: dict[str, str]) -> FakeRunner:
        started.append(FakeRunner(run_dir, env))
        return started[-1]

    return LocalBackend(jobs, slots, launch=launch), started


def test_a_run_starts_on_the_gpu_that_is_free_not_on_a_fixed_rotation(tmp_path):
    runs = queued_runs(tmp_path, ["auto"] * 4)
    backend, started = backend_with_fakes(2, ["0", "1"])
    backend.submit(runs)
    backend.poll()
    assert [r.env["CUDA_VISIBLE_DEVICES"] for r in started] == ["0", "1"]
    started[1].end()  # the run on GPU 1 is the short one
    backend.poll()
    # a rotation fixed up front (index % gpus) put the third run on GPU 0, busy, while GPU 1 idled
    assert started[2].env["CUDA_VISIBLE_DEVICES"] == "1"
    started[0].end()
    backend.poll()
    assert started[3].env["CUDA_VISIBLE_DEVICES"] == "0"
    status = json.loads((runs[2] / "status.json").read_text())
    assert status["backend"] == "local" and status["cuda_visible_devices"] == "1" and status["state"] == "running"
    assert status["runner_start"] == pid_start(started[2].pid)  # the pid is proven by its start time
    for runner in started[2:]:
        runner.end()
    assert set(backend.poll().values()) == {"done"}


@pytest.mark.parametrize("jobs, gpus", [(2, 2), (3, 2), (4, 3), (5, 2)])
def test_no_run_shares_a_gpu_slot_while_another_is_less_busy(tmp_path, jobs, gpus):
    """Runs of random lengths: every start goes to a slot with the fewest runs on it at that moment."""
    slots = [str(i) for i in range(gpus)]
    runs = queued_runs(tmp_path, ["auto", "cuda"] * 8)
    backend, started = backend_with_fakes(jobs, slots)
    backend.submit(runs)
    rng = random.Random(jobs * 10 + gpus)
    seen = 0
    while True:
        states = backend.poll()
        for runner in started[seen:]:  # the runs this poll started, in order
            others = [r for r in started
                      if r is not runner and r.returncode is None and started.index(r) < started.index(runner)]
            load = {slot: sum(1 for r in others if r.env["CUDA_VISIBLE_DEVICES"] == slot) for slot in slots}
            assert load[runner.env["CUDA_VISIBLE_DEVICES"]] == min(load.values()), (load, runner.env)
        seen = len(started)
        live = [r for r in started if r.returncode is None]
        assert len(live) <= jobs
        if not live:
            break
        rng.choice(live).end()
    assert set(states.values()) == {"done"} and len(started) == len(runs)


def test_cpu_runs_and_pinned_devices_take_no_gpu_slot(tmp_path):
    runs = queued_runs(tmp_path, ["cpu", "cuda:1", "auto"])
    backend, started = backend_with_fakes(3, ["0", "1"])
    backend.submit(runs)
    backend.poll()
    assert ["CUDA_VISIBLE_DEVICES" in r.env for r in started] == [False, False, True]
    assert started[2].env["CUDA_VISIBLE_DEVICES"] == "0"


def test_cancel_stops_running_runs_and_marks_waiting_ones_cancelled(tmp_path):
    runs = queued_runs(tmp_path, ["cpu"] * 3)
    backend, started = backend_with_fakes(1, [])
    backend.submit(runs)
    backend.poll()
    backend.cancel()
    states = backend.poll()
    assert started[0].signals == [signal.SIGTERM] and len(started) == 1
    assert states == {run: "cancelled" for run in runs}
    for run in runs[1:]:  # never started: cancelled and free (no holder), so resume takes them
        status = json.loads((run / "status.json").read_text())
        assert status["state"] == "cancelled" and status["pid"] is None


def test_gpu_slots_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3, 5")
    assert gpu_slots() == ["3", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpu_slots() == []


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


@pytest.mark.parametrize("flags, complaint", [
    (["--address", "auto"], "--address: only with --backend ray"),
    (["--gpus-per-run", "1", "--sweep", "seed=1,2"], "--gpus-per-run: only with --backend ray"),
    (["--backend", "ray", "--jobs", "2"], "--jobs: only for --backend local"),
    (["--backend", "ray", "--gpus-per-run", "1.5"], "--gpus-per-run 1.5"),
    (["--backend", "ray", "--cpus-per-run", "0"], "--cpus-per-run 0"),
    (["--backend", "ray", "--device", "cuda:1"], "with --backend ray a run takes the GPU Ray gives it"),
])
def test_backend_options_that_do_not_fit_exit_2_and_write_nothing(tiny, tmp_path, capsys, flags, complaint):
    runs = tmp_path / "runs"
    assert main(["run", str(tiny), "--runs-dir", str(runs), *flags]) == 2
    assert complaint in capsys.readouterr().err
    assert not runs.exists()


def test_backend_ray_without_the_extra_says_how_to_install(tiny, tmp_path, capsys, monkeypatch):
    import lth_tui.backends.ray as ray_backend

    monkeypatch.setattr(ray_backend, "ray_available", lambda: False)
    runs = tmp_path / "runs"
    assert main(["run", str(tiny), "--runs-dir", str(runs), "--sweep", "seed=1,2", "--backend", "ray"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install "lth-tui[ray]"' in err
    assert not runs.exists()


def test_read_only_commands_and_refused_options_never_import_ray(tiny, tmp_path):
    code = (
        "import sys\n"
        "from lth_tui.cli import main\n"
        f"main(['presets']); main(['runs', '--runs-dir', {str(tmp_path)!r}])\n"
        f"assert main(['run', {str(tiny)!r}, '--backend', 'ray', '--jobs', '2']) == 2\n"
        "assert 'ray' not in sys.modules, 'ray imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_ctrl_c_at_the_terminal_leaves_every_local_run_cancelled_with_a_checkpoint(tmp_path):
    """SIGINT to the sweep's whole process group, as a terminal sends it: the runners are in
    their own sessions, so only the sweep gets it and passes SIGTERM on (checkpoint, `cancelled`)."""
    import time

    from engine.run_index import run_info
    from engine.store import read_events

    path = tmp_path / "long.toml"
    path.write_text(TINY.replace("iterations = 40", "iterations = 5000"))
    runs = tmp_path / "runs"
    sweep = subprocess.Popen([sys.executable, "-m", "lth_tui.cli", "run", str(path), "--runs-dir", str(runs), "--quiet",
                              "--sweep", "seed=1,2,3", "--jobs", "2"], env={**os.environ, "PYTHONPATH": str(ROOT)},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            dirs = list(runs.glob("2*"))
            if len(dirs) == 3 and sum(1 for d in dirs if any(e["event"] == "eval" for e in read_events(d)[0])) == 2:
                break
            assert sweep.poll() is None, sweep.communicate()
            time.sleep(0.1)
        os.killpg(sweep.pid, signal.SIGINT)
        _, err = sweep.communicate(timeout=120)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 130, err
    dirs = sorted(runs.glob("2*"))
    assert [run_info(d).state for d in dirs] == ["cancelled"] * 3
    assert sum(1 for d in dirs if list(d.glob("trial-0/round-*/checkpoint.safetensors"))) == 2
