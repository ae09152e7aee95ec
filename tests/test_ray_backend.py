"""Sweeps on a local Ray cluster (2 CPUs, 2 GPU labels; tests/conftest.py `ray_cluster`).

Each run is a real runner child of a Ray task; the runs are tiny digits MLPs so the whole
file stays well under a few minutes on two shared cores.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import torch

from engine.config import from_dict
from engine.run_index import run_info
from engine.runner import execute
from engine.store import iter_round_dirs, load_tensors, read_events
from lth_tui.cli import main

ROOT = Path(__file__).resolve().parent.parent
TINY = ('name = "tiny"\ndescription = "tiny test preset"\ndevice = "auto"\n[data]\nname = "digits"\nval_size = 200\n'
        '[model]\nhidden = [32]\n[train]\niterations = {iterations}\neval_every = 20\nbatch_size = 50\nlr = 3e-3\n'
        '[prune]\nrounds = {rounds}\nrate = {{ fc = 0.3, output = 0.2 }}\n')


def preset(tmp_path: Path, iterations: int = 40, rounds: int = 2) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.format(iterations=iterations, rounds=rounds))
    return path


def group_runs(runs: Path) -> list[Path]:
    (group,) = (runs / "groups").iterdir()
    return [Path(m["run_dir"]) for m in json.loads((group / "group.json").read_text())["runs"]]


def status(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


def evals(run_dir: Path) -> list[dict]:
    return [e for e in read_events(run_dir)[0] if e["event"] == "eval"]


def _kill_worker_mid_run(runs: Path, killed: list[int], problems: list[str]) -> None:
    """Waits for the first evaluation of the run, then SIGKILLs the Ray worker holding its runner."""
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            for run_dir in runs.glob("2*"):
                if evals(run_dir):
                    pid = status(run_dir)["pid"]
                    worker = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
                    assert b"ray" in Path(f"/proc/{worker}/cmdline").read_bytes(), \
                        "the runner's parent is not a Ray worker"
                    os.kill(worker, signal.SIGKILL)
                    killed.append(worker)
                    return
            time.sleep(0.02)
        problems.append("the run never evaluated")
    except Exception as exc:  # reported by the test, not lost in the thread
        problems.append(repr(exc))


def test_a_task_killed_mid_run_is_retried_and_ends_with_the_masks_of_an_uninterrupted_run(ray_cluster, tmp_path,
                                                                                          one_thread):
    runs = tmp_path / "runs"
    path = preset(tmp_path, iterations=400, rounds=3)
    killed: list[int] = []
    problems: list[str] = []
    killer = threading.Thread(target=_kill_worker_mid_run, args=(runs, killed, problems))
    killer.start()
    code = main(["run", str(path), "--runs-dir", str(runs), "--quiet", "--sweep", "prune.criterion=large_final,random",
                 "--backend", "ray", "--gpus-per-run", "0.5"])
    killer.join()
    assert not problems and killed
    assert code == 0
    members = group_runs(runs)
    assert [status(d)["state"] for d in members] == ["done", "done"]
    restarted = [d for d in members if len([e for e in read_events(d)[0] if e["event"] == "run_start"]) == 2]
    assert len(restarted) == 1
    run_dir = restarted[0]
    starts = [e for e in read_events(run_dir)[0] if e["event"] == "run_start"]
    assert starts[1]["resumed"] and not starts[0]["resumed"]  # the retry was a resume, not a fresh start
    assert status(run_dir)["cuda_visible_devices"] in ("0", "1")  # half a GPU: one of them

    reference = tmp_path / "reference"
    from engine.store import create_run

    raw = tomllib.loads(path.read_text())
    raw["prune"]["criterion"] = tomllib.loads((run_dir / "config.toml").read_text())["prune"]["criterion"]
    ref_dir = create_run(from_dict(raw), reference, preset="reference")

    assert execute(ref_dir) == "done"
    rounds = [r for r, _ in iter_round_dirs(run_dir, 0)]
    assert rounds == [r for r, _ in iter_round_dirs(ref_dir, 0)] == [0, 1, 2, 3]
    for r in rounds:
        got, want = (load_tensors(d / "trial-0" / f"round-{r}" / "mask.safetensors") for d in (run_dir, ref_dir))
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)
        got, want = (json.loads((d / "trial-0" / f"round-{r}" / "result.json").read_text()) for d in (run_dir, ref_dir))
        assert got["test_accuracy_final"] == want["test_accuracy_final"]


def test_ctrl_c_leaves_every_run_cancelled_and_resumable_and_each_run_had_its_own_gpu(ray_cluster, tmp_path,
                                                                                      one_thread):
    runs = tmp_path / "runs"
    path = preset(tmp_path, iterations=3000, rounds=2)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # three runs of one CPU and one GPU each on 2 CPUs and 2 GPUs: two train at once, one waits
    sweep = subprocess.Popen([sys.executable, "-m", "lth_tui.cli", "run", str(path), "--runs-dir", str(runs), "--quiet",
                              "--sweep", "prune.criterion=large_final,random,movement", "--backend", "ray",
                              "--address", ray_cluster, "--gpus-per-run", "1"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            if (runs / "groups").is_dir() and len(list(runs.glob("2*"))) == 3 and \
                    sum(1 for d in runs.glob("2*") if evals(d)) == 2:
                break
            assert sweep.poll() is None, sweep.communicate()
            time.sleep(0.1)
        sweep.send_signal(signal.SIGINT)
        out, err = sweep.communicate(timeout=120)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 130, err
    members = group_runs(runs)
    assert [status(d)["state"] for d in members] == ["cancelled"] * 3
    assert [run_info(d).state for d in members] == ["cancelled"] * 3
    trained = [d for d in members if evals(d)]
    assert len(trained) == 2 and all(list(d.glob("trial-0/round-*/checkpoint.safetensors")) for d in trained)
    placed = [status(d) for d in trained]  # trained side by side: Ray gave them one GPU each
    assert sorted(s["cuda_visible_devices"] for s in placed) == ["0", "1"]
    assert {s["backend"] for s in placed} == {"ray"} and {s["node"] for s in placed} == {socket.gethostname()}
    assert len({s["ray_task_id"] for s in placed}) == 2 and all(len(s["ray_task_id"]) > 16 for s in placed)
    assert not list(runs.glob(".lth-tui-probe-*"))  # the probe left nothing behind
    # resumable: one of the interrupted runs picks up its checkpoint and finishes
    assert main(["resume", str(trained[0]), "--quiet"]) == 0
    assert status(trained[0])["state"] == "done"


def test_a_runs_dir_the_nodes_do_not_see_is_refused(ray_cluster, tmp_path, capsys, monkeypatch):
    """A node whose path holds its own local directory (not the shared one) fails the probe."""
    from lth_tui.backends import ray_task

    own_disk = str(tmp_path / "node-local-disk")
    os.mkdir(own_disk)

    def node_with_its_own_disk(runs_dir: str, name: str, token: str) -> dict:
        from lth_tui.backends import ray_task as on_the_node

        return on_the_node.probe(own_disk, name, token)

    monkeypatch.setattr(ray_task, "probe", node_with_its_own_disk)
    runs = tmp_path / "runs"
    assert main(["run", str(preset(tmp_path)), "--runs-dir", str(runs), "--sweep", "seed=1,2", "--backend", "ray"]) == 2
    err = capsys.readouterr().err
    assert f"the runs dir {runs} is not shared with every Ray node" in err
    assert "the probe file is not there" in err and err.count("\n") == 1
    assert not runs.exists() and not os.listdir(own_disk)
