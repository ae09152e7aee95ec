"""Run dirs from someone else: every file type damaged every way, through runs, export,
resume and stop; symlinks, foreign pids, two resumes at once, divergence, heartbeats.

Each case must end in exit 0 (the damaged run listed as damaged, the others as usual) or in
exit 2 with one line naming the file; never a traceback, never a write through a link, never
a signal to a process that is not the run's own runner.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import torch
from conftest import FAST_PRESET
from safetensors.torch import save_file

from engine.config import from_dict
from engine.layout import RunLayout
from engine.process import (
    LOST_AFTER_SECONDS,
    RunLock,
    RunLocked,
    liveness,
    pid_start,
    proven_runner,
    request_stop,
)
from engine.run_index import list_runs
from engine.runner import execute
from engine.store import create_run, read_status, remove_stale_temps, write_json_atomic
from lth_tui.cli import main

ROOT = Path(__file__).resolve().parent.parent
TINY = tomllib.loads(FAST_PRESET)
TINY["train"].update(iterations=20, eval_every=10)
TINY["prune"]["rounds"] = 1


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished 2-round run, trained once for the module; tests copy it."""
    store = tmp_path_factory.mktemp("finished")
    run_dir = create_run(from_dict(TINY), store, preset="tiny")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert execute(run_dir) == "done"
    finally:
        torch.set_num_threads(threads)
    return run_dir


@pytest.fixture
def store(tmp_path: Path, finished: Path) -> Path:
    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copytree(finished, runs / "20990101-000000-healthy-aaaaaa")
    return runs


def _copy(store: Path, finished: Path, name: str) -> Path:
    target = store / f"20990101-000001-{name}-bbbbbb"
    shutil.copytree(finished, target)
    return target


class _Evil:
    """Unpickling this would create the marker file: a .safetensors must never be unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _damage(run_dir: Path, rel: str, how: str, tmp_path: Path) -> None:
    path = run_dir / rel
    original = path.read_bytes()
    if how == "truncated":
        path.write_bytes(original[: max(1, len(original) // 3)])
    elif how == "garbage":
        path.write_bytes(os.urandom(64) + b"\x00{[")
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "symlink":
        victim = tmp_path / "victim.txt"
        victim.write_text("keep me")
        path.unlink()
        path.symlink_to(victim)
    elif how == "pickle":
        path.write_bytes(pickle.dumps({"x": _Evil(tmp_path / "pwned")}))
    elif how == "wrong-shape":
        if rel.endswith(".safetensors"):
            save_file({"other.weight": torch.zeros(3, 3)}, str(path))
        else:
            path.write_text(json.dumps([1, "a", None]))
    elif how == "wrong-types":
        data = json.loads(original)
        if rel.endswith("status.json"):
            data.update(pid="abc", created="yesterday", host=7)
        elif rel.endswith("summary.json"):
            data.update(trials=[1, "a"], curve=[1, 2])
        elif rel.endswith("result.json"):
            data.update(weights_remaining="most", round="one")
        elif rel.endswith("evals.json"):
            data = [{"iteration": "x", "test_accuracy": "high"}]
        path.write_text(json.dumps(data))
    elif how == "wrong-lines":
        path.write_text('{"event": "eval", "trial": "a", "round": 0, "iteration": 1}\n[1, 2]\n{"event": 5}\n'
                        '{"event": "round_start", "trial": 0, "round": 0, "weights_remaining": "x"}\n')
    else:
        raise AssertionError(how)


JSON_DAMAGE = ("truncated", "garbage", "empty", "symlink", "wrong-shape", "wrong-types")
TENSOR_DAMAGE = ("truncated", "garbage", "empty", "symlink", "pickle", "wrong-shape")
CASES = ([(f, how) for f in ("status.json", "summary.json", "trial-0/round-1/result.json", "trial-0/round-1/evals.json")
          for how in JSON_DAMAGE]
         + [("config.toml", how) for how in ("truncated", "garbage", "empty", "symlink")]
         + [("events.jsonl", how) for how in ("truncated", "garbage", "symlink", "wrong-lines")]
         + [(f, how) for f in ("trial-0/init.safetensors", "trial-0/round-1/mask.safetensors",
                               "trial-0/round-1/final.safetensors", "trial-0/round-0/start.safetensors")
            for how in TENSOR_DAMAGE])


def _one_line_or_ok(code: int, err: str) -> None:
    assert code in (0, 1, 2), code
    assert "Traceback" not in err
    if code == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("lth-tui: error:"), err


@pytest.mark.parametrize("rel,how", CASES, ids=[f"{r}-{h}" for r, h in CASES])
def test_damaged_file_through_runs_export_resume_stop(store, finished, tmp_path, capsys, rel, how):
    run_dir = _copy(store, finished, "broken")
    if rel != "status.json":  # make the run resumable, so resume reads everything
        status = json.loads((run_dir / "status.json").read_text())
        write_json_atomic(run_dir / "status.json", {**status, "state": "cancelled"})
    _damage(run_dir, rel, how, tmp_path)
    capsys.readouterr()

    assert main(["runs", "--runs-dir", str(store)]) == 0
    assert "done" in capsys.readouterr().out
    infos = {i.run_id: i for i in list_runs(store)}
    assert infos["20990101-000000-healthy-aaaaaa"].state == "done"  # the others listed as usual
    broken = infos[run_dir.name]
    if rel in ("status.json", "summary.json", "config.toml") and not (rel == "config.toml" and how == "empty"):
        assert broken.state == "damaged" and rel in broken.error

    for fmt in ("md", "json", "csv"):
        code = main(["export", str(run_dir), "--format", fmt, "-o", str(tmp_path / f"out.{fmt}")])
        _one_line_or_ok(code, capsys.readouterr().err)

    code = main(["resume", str(run_dir), "--quiet"])
    captured = capsys.readouterr()
    _one_line_or_ok(code, captured.err)
    if how != "wrong-lines" and rel.startswith("trial-") and rel.endswith("result.json"):
        assert code == 2 and "trial-0/round-1/result.json" in captured.err and "delete trial-0/round-1" in captured.err
    if code == 1:  # the run ran and failed: its status says why, naming the file
        error = read_status(run_dir)["error"]
        # an empty config.toml is a valid all-defaults config: the stored weights then do not fit it
        assert (Path(rel).name if rel != "config.toml" else "init.safetensors") in error and "Traceback" not in error

    code = main(["stop", str(run_dir), "--timeout", "0"])
    _one_line_or_ok(code, capsys.readouterr().err)

    assert not (tmp_path / "pwned").exists()  # the pickle was never unpickled
    if how == "symlink":
        assert (tmp_path / "victim.txt").read_text() == "keep me"


def test_export_never_writes_through_a_planted_symlink(store, finished, tmp_path, capsys):
    run_dir = _copy(store, finished, "planted")
    bashrc = tmp_path / "bashrc"
    bashrc.write_text("# mine\n")
    (run_dir / "export.md").symlink_to(bashrc)
    config = (run_dir / "config.toml").read_text()
    evil = 'description = "ok\\nrm -rf ~ # <script>x</script> [a](http://x) | y"'
    (run_dir / "config.toml").write_text("\n".join(evil if line.startswith("description") else line
                                                   for line in config.splitlines()) + "\n")
    capsys.readouterr()
    assert main(["export", str(run_dir), "--format", "md"]) == 2
    err = capsys.readouterr().err
    assert "symlink" in err and len(err.strip().splitlines()) == 1
    assert bashrc.read_text() == "# mine\n"
    (run_dir / "export.md").unlink()
    assert main(["export", str(run_dir), "--format", "md"]) == 0
    text = (run_dir / "export.md").read_text()
    preset_line = next(line for line in text.splitlines() if line.startswith("- preset:"))
    assert "rm -rf" in preset_line  # the description stays on its own line...
    assert "\nrm -rf" not in text and "<script>" not in text and "[a](" not in text  # ...and inert
    assert not list(run_dir.glob(".*.tmp"))


@pytest.mark.parametrize("target", ["missing-folder/out.md", "a-folder"])
def test_export_into_a_missing_folder_or_onto_a_folder_exits_2(store, finished, tmp_path, capsys, target):
    (tmp_path / "a-folder").mkdir()
    run_dir = _copy(store, finished, "out")
    capsys.readouterr()
    assert main(["export", str(run_dir), "--format", "md", "-o", str(tmp_path / target)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and ("does not exist" in err or "folder" in err)


def _foreign_process() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


@pytest.mark.parametrize("case", ["other-host", "pid-minus-one", "pid-one", "live-stranger", "reused-pid", "huge-pid"])
def test_stop_never_signals_a_pid_not_proven_to_be_the_runner(store, finished, case, capsys):
    run_dir = _copy(store, finished, "foreign")
    stranger = _foreign_process()
    try:
        status = json.loads((run_dir / "status.json").read_text())
        status.update(state="running", host=socket.gethostname(), pid=stranger.pid,
                      runner_start=pid_start(stranger.pid),
                      heartbeat=None)
        if case == "other-host":
            status["host"] = "some-cluster-node"
        elif case == "pid-minus-one":
            status["pid"] = -1
        elif case == "pid-one":
            status["pid"] = 1
        elif case == "reused-pid":  # the pid is alive but started at another time: not our runner
            status["runner_start"] = status["runner_start"] + 12345
        elif case == "huge-pid":
            status["pid"] = 10 ** 30
        write_json_atomic(run_dir / "status.json", status)
        capsys.readouterr()
        code = main(["stop", str(run_dir), "--timeout", "0"])
        _one_line_or_ok(code, capsys.readouterr().err)
        time.sleep(0.2)
        assert stranger.poll() is None  # still alive: never signalled
        if case in ("other-host", "live-stranger"):
            assert RunLayout(run_dir).stop_request.is_file()  # asked politely instead
        if case not in ("huge-pid", "pid-minus-one"):  # such a pid makes status.json damaged: nothing to prove
            assert proven_runner(read_status(run_dir), run_dir) is None
    finally:
        stranger.kill()
        stranger.wait()


def test_proven_runner_is_signalled_and_a_reused_pid_looks_dead(tmp_path):
    """A process whose command line names the run dir and whose start time matches is proven."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", "import sys, time; time.sleep(60)", str(run_dir)])
    try:
        status = {"state": "running", "host": socket.gethostname(), "pid": proc.pid,
                  "runner_start": pid_start(proc.pid)}
        assert proven_runner(status, run_dir) == proc.pid
        assert liveness(status) == "alive"
        assert liveness({**status, "runner_start": status["runner_start"] + 1}) == "dead"
        assert proven_runner(status, tmp_path / "other") is None
    finally:
        proc.kill()
        proc.wait()
    assert liveness(status) == "dead"


def test_stale_heartbeat_is_lost_on_any_host(store, finished, capsys):
    run_dir = _copy(store, finished, "stale")
    status = json.loads((run_dir / "status.json").read_text())
    old = time.time() - LOST_AFTER_SECONDS - 5
    status.update(state="running", host="gone-node", pid=4242,
                  heartbeat={"time": old, "host": "gone-node", "pid": 4242, "pid_start": 1})
    write_json_atomic(run_dir / "status.json", status)
    assert {i.run_id: i.state for i in list_runs(store)}[run_dir.name] == "lost"
    status["heartbeat"]["time"] = time.time()
    write_json_atomic(run_dir / "status.json", status)
    assert {i.run_id: i.state for i in list_runs(store)}[run_dir.name] == "running"
    capsys.readouterr()
    assert main(["runs", "--runs-dir", str(store)]) == 0


def test_heartbeat_and_runner_start_are_written_and_the_lock_refuses_a_second_runner(store, finished):
    run_dir = _copy(store, finished, "locked")
    status = read_status(run_dir)
    beat = status["heartbeat"]
    assert beat["pid"] == status["pid"] and beat["host"] == socket.gethostname()
    assert status["runner_start"] == beat["pid_start"] and isinstance(beat["time"], float)
    write_json_atomic(run_dir / "status.json", {**status, "state": "cancelled"})
    with RunLock(run_dir):
        with pytest.raises(RunLocked, match=f"pid {os.getpid()}"):
            execute(run_dir)
        assert read_status(run_dir)["state"] == "cancelled"  # the refused runner wrote nothing


def _cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "lth_tui.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait(condition, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_two_resumes_at_once_train_once_and_stop_ends_it(tmp_path):
    """The second resume refuses with one line naming the holder; `lth-tui stop` then stops
    the first through stop.request / SIGTERM, and it ends cancelled after a checkpoint."""
    raw = tomllib.loads(FAST_PRESET)
    raw["train"].update(iterations=100000, eval_every=20)
    run_dir = create_run(from_dict(raw), tmp_path / "runs", preset="long")
    write_json_atomic(run_dir / "status.json", {**read_status(run_dir), "state": "cancelled"})
    first = _cli("resume", str(run_dir), "--quiet", "--checkpoint-every", "0")
    try:
        assert _wait(lambda: b'"eval"' in (run_dir / "events.jsonl").read_bytes() if (run_dir / "events.jsonl").exists()
                     else False)
        second = _cli("resume", str(run_dir), "--quiet")
        out, err = second.communicate(timeout=120)
        assert second.returncode == 2
        assert f"pid {first.pid}" in err and len(err.strip().splitlines()) == 1
        starts = [json.loads(line)["event"] for line in (run_dir / "events.jsonl").read_text().splitlines()]
        assert starts.count("run_start") == 1
        stopper = _cli("stop", str(run_dir), "--timeout", "120")
        out, err = stopper.communicate(timeout=180)
        assert stopper.returncode == 0, err
        assert "cancelled" in out
        first.wait(timeout=60)
        assert read_status(run_dir)["state"] == "cancelled"
        assert not RunLayout(run_dir).stop_request.exists()
        assert (run_dir / "trial-0" / "round-0" / "checkpoint.safetensors").is_file()
    finally:
        if first.poll() is None:
            first.send_signal(signal.SIGKILL)
            first.wait()


def test_a_stop_request_file_stops_a_runner_that_cannot_be_signalled(tmp_path):
    """The runner polls stop.request at every eval: how a run on another machine is stopped."""
    raw = tomllib.loads(FAST_PRESET)
    raw["train"].update(iterations=100000, eval_every=10)
    run_dir = create_run(from_dict(raw), tmp_path / "runs", preset="polled")
    seen = []

    def on_event(event: dict) -> None:
        seen.append(event["event"])
        if event["event"] == "eval" and len(seen) > 3:
            RunLayout(run_dir).stop_request.write_text('{"time": 0, "host": "elsewhere", "by": "test"}')

    assert execute(run_dir, on_event=on_event) == "cancelled"
    assert not RunLayout(run_dir).stop_request.exists()
    assert (run_dir / "trial-0" / "round-0" / "checkpoint.safetensors").is_file()


def test_divergence_ends_failed_with_the_evals_before_it_and_no_nan_in_json(tmp_path):
    raw = tomllib.loads(FAST_PRESET)
    raw["train"].update(optimizer="sgd", lr=1e6, iterations=200, eval_every=10)
    run_dir = create_run(from_dict(raw), tmp_path / "runs", preset="diverge")
    assert execute(run_dir) == "failed"
    error = read_status(run_dir)["error"]
    assert re.fullmatch(r"diverged at iteration \d+ of round \d+ of trial 0 \(loss nan\); lower train.lr", error), error
    evals = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert any(e["event"] == "eval" and e["iteration"] == 0 for e in evals)  # the evals before it are kept
    for path in [*run_dir.rglob("*.json"), run_dir / "events.jsonl"]:
        text = path.read_text()
        assert "NaN" not in text and "Infinity" not in text, path


def test_stale_temp_files_are_removed_on_resume_and_end(store, finished):
    run_dir = _copy(store, finished, "temps")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [run_dir / f".summary.json.{dead.pid}.1.tmp",
             run_dir / "trial-0" / "round-1" / f".mask.safetensors.{dead.pid}.tmp"]
    live = run_dir / f".status.json.{os.getpid() + 0}.7.tmp"
    for path in stale:
        path.write_text("half")
    write_json_atomic(run_dir / "status.json", {**read_status(run_dir), "state": "cancelled"})
    assert execute(run_dir) == "done"
    assert not any(p.exists() for p in stale)
    live.write_text("x")
    assert remove_stale_temps(run_dir) == 1  # this process's own leftovers go too


def test_damaged_checkpoint_names_the_file(store, finished, tmp_path):
    run_dir = _copy(store, finished, "ckpt")
    rdir = run_dir / "trial-0" / "round-1"
    for name in ("result.json", "evals.json", "final.safetensors"):
        (rdir / name).unlink()
    (rdir / "checkpoint.safetensors").write_bytes(pickle.dumps({"x": _Evil(tmp_path / "pwned")}))
    (rdir / "checkpoint.json").write_text("{}")
    write_json_atomic(run_dir / "status.json", {**read_status(run_dir), "state": "cancelled"})
    assert execute(run_dir) == "failed"
    error = read_status(run_dir)["error"]
    assert "round-1/checkpoint.safetensors" in error and "delete it" in error
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("args,words", [
    (["--set", "train.lr=inf"], ["train.lr", "finite"]),
    (["--set", "train.momentum=nan"], ["train.momentum", "finite"]),
    (["--set", "train.weight_decay=inf"], ["train.weight_decay", "finite"]),
    (["--set", "seed=9223372036854775808"], ["seed", "2^63-1"]),
    (["--set", "seed=-1"], ["seed", "2^63-1"]),
    (["--set", "train.milestones=[100000]", "--set", "train.schedule=multistep"], ["train.milestones", "beyond"]),
    (["--set", "model.hidden=[2000000000]"], ["parameters", "GiB"]),
    (["--set", "model.hidden=[4000000000000]"], ["model.hidden"]),
    (["--checkpoint-every", "-1"], ["--checkpoint-every"]),
    (["--checkpoint-every", "nan"], ["--checkpoint-every"]),
])
def test_bad_input_exits_2_with_one_line_and_no_run_dir(tmp_path, capsys, args, words):
    preset = tmp_path / "tiny.toml"
    preset.write_text(FAST_PRESET)
    runs = tmp_path / "runs"
    assert main(["run", str(preset), "--runs-dir", str(runs), *args]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and all(w in err for w in words), err
    assert not runs.exists()


def test_hostile_presets_and_runs_dirs_exit_2(tmp_path, capsys):
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 100000)
    afile = tmp_path / "afile"
    afile.write_text("")
    cases = [["run", str(deep)], ["run", "x" * 5000], ["run", str(deep), "--runs-dir", str(afile)],
             ["runs", "--runs-dir", str(afile)], ["stop", str(tmp_path / "nothing")]]
    for args in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and len(err) < 600, err


def test_request_stop_on_a_dead_local_runner_writes_nothing(store, finished):
    run_dir = _copy(store, finished, "dead")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_json_atomic(run_dir / "status.json", {**read_status(run_dir), "state": "running", "pid": dead.pid,
                                                "host": socket.gethostname(), "heartbeat": None})
    result = request_stop(run_dir)
    assert result.action == "not-running" and "interrupted" in result.detail
    assert not RunLayout(run_dir).stop_request.exists()
