"""Benchmark 5: what running under the app costs, against the same run headless in-process.

The app creates a run dir (engine.store.create_run), starts `python -m engine.runner RUN_DIR`
as a detached child (engine.launch.spawn) and follows events.jsonl with
engine.store.read_events every 0.2 s (lth_tui/follower.py). Contenders, run in turn:

  headless     a fresh Python process calling engine.runner.execute(run_dir) in-process (what
               `lth-tui run` does): the baseline
  spawned      engine.launch.spawn(run_dir) (the app's launch path), waited for
  spawned+tail the same with a follower thread here reading events.jsonl every 0.2 s
  warm         execute(run_dir) inside this already warm process (no start-up at all; shown
               for scale, not judged)

Three figures each: round time (the rounds after the first, from their result.json: the
steady cost while a run trains), run time (run_start to run_end, from the events' own
timestamps; includes one-time work such as torch importing torch._dynamo when the first
optimizer is built) and wall time (launch to exit: adds Python, torch and dataset imports).
Target: the app's launch path costs ≤ 5% over headless.

    python benchmarks/bench_app_overhead.py [--device cuda] [--iterations 1000] [--repeats 3]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import harness  # noqa: F401  (puts the repo root on sys.path)

from engine.config import from_dict
from engine.launch import spawn
from engine.runner import execute
from engine.store import create_run, read_events, read_status

TARGET = 1.05
HEADLESS = "import sys; from engine.runner import execute; sys.exit(0 if execute(sys.argv[1]) == 'done' else 1)"


def run_seconds(run_dir: Path) -> float:
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    start = next(e["time"] for e in events if e["event"] == "run_start")
    end = next(e["time"] for e in reversed(events) if e["event"] == "run_end")
    return end - start


def later_rounds_seconds(run_dir: Path) -> float:
    records = [json.loads(p.read_text()) for p in run_dir.glob("trial-0/round-*/result.json")]
    return sum(r["seconds"] for r in records if r["round"] > 0)


def follow(run_dir: Path, stop: threading.Event, seen: list[int]) -> None:
    """What the app's follower does: read new events every 0.2 s (and the status)."""
    offset = 0
    while not stop.is_set():
        events, offset = read_events(run_dir, offset)
        seen[0] += len(events)
        try:
            read_status(run_dir)
        except Exception:
            pass
        stop.wait(0.2)


def main(argv=None) -> None:
    p = harness.parser(__doc__.splitlines()[0])
    p.set_defaults(repeats=3)
    p.add_argument("--iterations", type=int, default=1000, help="iterations per round")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    device = harness.setup(args)
    if args.threads:  # child processes read these at start-up: same thread count everywhere
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    os.environ["PYTHONPATH"] = str(harness.ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
    config = from_dict({"name": "app-overhead", "device": args.device, "data": {"name": "digits", "val_size": 300},
                        "model": {"name": "mlp", "hidden": [300, 100]},
                        "train": {"iterations": args.iterations, "eval_every": max(1, args.iterations // 10)},
                        "prune": {"rounds": args.rounds - 1}})
    names = ("headless", "spawned", "spawned+tail", "warm")
    walls: dict[str, list[float]] = {k: [] for k in names}
    runs: dict[str, list[float]] = {k: [] for k in names}
    rounds: dict[str, list[float]] = {k: [] for k in names}
    with tempfile.TemporaryDirectory() as tmp:
        def warm() -> Path:
            run_dir = create_run(config, Path(tmp), preset="bench")
            assert execute(run_dir) == "done"
            return run_dir

        def headless() -> Path:
            run_dir = create_run(config, Path(tmp), preset="bench")
            subprocess.run([sys.executable, "-c", HEADLESS, str(run_dir)], check=True, capture_output=True)
            return run_dir

        def spawned(tail: bool) -> Path:
            run_dir = create_run(config, Path(tmp), preset="bench")
            stop, seen = threading.Event(), [0]
            follower = threading.Thread(target=follow, args=(run_dir, stop, seen), daemon=True)
            if tail:
                follower.start()
            proc = spawn(run_dir)
            rc = proc.wait()
            stop.set()
            if tail:
                follower.join()
            assert rc == 0, (run_dir / "runner.log").read_text()
            return run_dir

        contenders = {"headless": headless, "spawned": lambda: spawned(False), "spawned+tail": lambda: spawned(True),
                      "warm": warm}
        warm()  # warm-up: dataset files, torch kernels, page cache
        for i in range(args.repeats):
            order = list(contenders) if i % 2 == 0 else list(reversed(contenders))
            for name in order:
                start = time.perf_counter()
                run_dir = contenders[name]()
                walls[name].append(time.perf_counter() - start)
                runs[name].append(run_seconds(run_dir))
                rounds[name].append(later_rounds_seconds(run_dir))
    tables = {"round time (rounds 1..)": rounds, "run time (run_start→run_end)": runs,
              "wall time (process start to exit)": walls}
    med = {what: {k: statistics.median(v) for k, v in t.items()} for what, t in tables.items()}
    rows = []
    for name in ("spawned", "spawned+tail"):
        for what, table in med.items():
            ratio = table[name] / table["headless"]
            rows.append([name, what, table["headless"], table[name], ratio, f"≤ {TARGET:.2f}",
                         harness.verdict(ratio, TARGET)])
    for what, table in med.items():
        rows.append(["(warm, in this process)", what, table["headless"], table["warm"],
                     table["warm"] / table["headless"],
                     "", "for scale"])
    harness.table(f"5. app launch path vs headless ({harness.machine(device)})",
                  ["launched as", "measure", "headless s", "launched s", "ratio", "target", "result"], rows,
                  [f"digits, MLP 300-100, {args.rounds} rounds × {args.iterations} iterations, 1 trial; "
                   f"median of {args.repeats}; headless = fresh process running execute() in-process"])


if __name__ == "__main__":
    main()
