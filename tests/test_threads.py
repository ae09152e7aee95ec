"""The thread policy (engine/threads.py): `threads = "auto" | N`, the user's OMP_NUM_THREADS first."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
from conftest import merged

from engine import threads
from engine.config import ConfigError, from_dict
from engine.models import build_model
from engine.runner import execute
from engine.store import create_run, read_status

TINY = {"name": "tiny", "device": "cpu", "data": {"name": "digits", "val_size": 200},
        "model": {"name": "mlp", "hidden": [24]},
        "train": {"iterations": 20, "eval_every": 10, "batch_size": 40}, "prune": {"rounds": 1}}


def test_auto_takes_the_work_the_free_cores_and_the_cap() -> None:
    small, big = 0.5 * threads.FLOPS_PER_THREAD, 40 * threads.FLOPS_PER_THREAD
    assert threads.choose_threads("auto", work=small, cores=8, busy=0.0) == 1  # a small model: one thread
    assert threads.choose_threads("auto", work=big, cores=8, busy=0.0) == 8  # a big one: every free core
    assert threads.choose_threads("auto", work=3.2 * threads.FLOPS_PER_THREAD, cores=8, busy=0.0) == 3
    assert threads.choose_threads("auto", work=big, cores=8, busy=3.2) == 5  # busy cores are left alone
    assert threads.choose_threads("auto", work=big, cores=8, busy=1.0, live_threads=6) == 2  # live runs count
    assert threads.choose_threads("auto", work=big, cores=2, busy=2.0) == 1  # never below one
    assert threads.choose_threads("auto", work=big, cores=8, busy=0.0, cap=2) == 2  # a sweep's share
    assert threads.choose_threads(3, work=small, cores=8, busy=8.0) == 3  # a number is taken as it is


def test_busy_cores_leave_out_this_process_and_need_no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Over the window since import: 2 cores, 1.5 of them busy, 1.0 of that this process (loading
    the run) -> 0.5 busy elsewhere; a window that long is not slept again."""
    samples = iter([((250, 1200), 11.0, 101.0)])
    monkeypatch.setattr(threads, "_BASELINE", ((100, 1000), 10.0, 100.0))
    monkeypatch.setattr(threads, "_sample", lambda: next(samples))
    monkeypatch.setattr(threads.time, "monotonic", lambda: 101.0)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threads.time, "sleep", lambda s: pytest.fail("slept although the window was long enough"))
    assert threads.busy_cores() == pytest.approx(0.5)


def test_busy_cores_sleep_only_what_the_start_up_did_not_cover(monkeypatch: pytest.MonkeyPatch) -> None:
    """A runner that got here 0.1 s after import sleeps the other 0.15 s of the window, not 0.25 s."""
    slept: list[float] = []
    monkeypatch.setattr(threads, "_BASELINE", ((100, 1000), 10.0, 100.0))
    monkeypatch.setattr(threads, "_sample", lambda: ((250, 1200), 10.0, 100.25))
    monkeypatch.setattr(threads.time, "monotonic", lambda: 100.1)
    monkeypatch.setattr(threads.time, "sleep", slept.append)
    threads.busy_cores()
    assert slept == [pytest.approx(threads.SAMPLE_SECONDS - 0.1)]


def test_the_run_command_starts_the_window_before_it_loads_data() -> None:
    """`lth-tui run` imports engine.threads with its own module, before any dataset is loaded."""
    import subprocess
    import sys

    code = ("import sys, lth_tui.cli_start; print('engine.threads' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False"]


def test_flops_per_step_counts_linear_and_conv_layers() -> None:
    """Against the layers' sizes by hand: 6 x multiply-accumulates of one example x batch."""
    g = torch.Generator().manual_seed(0)
    lenet = build_model("lenet-300-100", input_shape=(1, 28, 28), num_classes=10, generator=g)
    assert threads.flops_per_step(lenet, (1, 28, 28), 60) == 6 * (784 * 300 + 300 * 100 + 100 * 10) * 60
    conv2 = build_model("conv2", input_shape=(3, 32, 32), num_classes=10, generator=g)
    convs = 32 * 32 * 64 * (3 * 9) + 32 * 32 * 64 * (64 * 9)  # two 3x3 convs, padding 1, 64 maps at 32x32
    fcs = 16 * 16 * 64 * 256 + 256 * 256 + 256 * 10
    assert threads.flops_per_step(conv2, (3, 32, 32), 2) == 6 * (convs + fcs) * 2


def _live(runs: Path, name: str, **status: object) -> None:
    run_dir = runs / name
    run_dir.mkdir(parents=True)
    (run_dir / "status.json").write_text(json.dumps({"state": "running", "host": socket.gethostname(),
                                                     "pid": os.getpid(), **status}))


def test_live_runs_of_the_store_count_with_the_threads_they_recorded(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _live(runs, "a", threads=3)
    _live(runs, "b")  # no threads recorded (an older runner): one
    _live(runs, "dead", pid=None, threads=4)  # not alive: nothing
    _live(runs, "elsewhere", host="another-host", threads=4)  # another machine's cores
    _live(runs, "done", state="done", threads=4)
    _live(runs, "me", threads=4)
    assert threads.live_run_threads(runs, exclude=runs / "me") == 4


def test_threads_is_a_machine_key_and_is_validated() -> None:
    assert from_dict(merged(TINY, threads=2)).threads == 2
    assert from_dict(merged(TINY, threads="4")).threads == 4  # a field's text
    assert from_dict(merged(TINY, threads="auto")).threads == "auto"
    assert from_dict(merged(TINY, threads=2)).config_hash() == from_dict(TINY).config_hash()
    for bad in (0, -1, True, "many", 1.5):
        with pytest.raises(ConfigError, match="threads"):
            from_dict(merged(TINY, threads=bad))


def test_the_users_omp_num_threads_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    run_dir = create_run(from_dict(merged(TINY, threads=2)), tmp_path / "runs", preset="tiny")
    data = type("D", (), {"input_shape": (1, 8, 8), "num_classes": 10})()
    assert threads.apply_run_threads(from_dict(merged(TINY, threads=2)), data, torch.device("cpu"), run_dir) is None
    assert torch.get_num_threads() == before


def test_a_run_records_its_threads_and_gives_the_callers_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    run_dir = create_run(from_dict(merged(TINY, threads=2)), tmp_path / "runs", preset="tiny")
    assert execute(run_dir) == "done"
    assert read_status(run_dir)["threads"] == 2
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert next(e for e in events if e["event"] == "run_start")["threads"] == 2
    assert torch.get_num_threads() == before
    auto = create_run(from_dict(TINY), tmp_path / "runs", preset="tiny")
    assert execute(auto) == "done"
    assert read_status(auto)["threads"] == 1  # a 24-unit MLP is worth one thread on any machine
