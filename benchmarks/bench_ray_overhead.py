"""12. The same small sweep through `--backend ray` vs `--backend local --jobs N`, wall time end to end.

Both sides are the headless CLI in a fresh process (validation, run dirs, N runner children
at a time, progress read from the run dirs). The Ray side connects to a local Ray instance
this script starts once with N CPUs (a cluster is started once and serves many sweeps); its
extra work is the connection, the runs-dir probe and one task per run. One more row times a
sweep that starts its own local instance (no --address), Ray's start-up included.

    python benchmarks/bench_ray_overhead.py [--runs 4] [--jobs 2] [--iterations 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRESET = ('name = "bench-sweep"\ndescription = "bench"\ndevice = "cpu"\n[data]\nname = "digits"\nval_size = 200\n'
          '[model]\nhidden = [64]\n[train]\niterations = {iterations}\neval_every = 50\nbatch_size = 50\n'
          '[prune]\nrounds = 2\n')


def sweep(preset: Path, runs_dir: Path, runs: int, extra: list[str]) -> tuple[float, float]:
    """(wall seconds of the CLI, median seconds one runner spent from its start to its end)."""
    seeds = ",".join(str(s) for s in range(1, runs + 1))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "lth_tui.cli", "run", str(preset), "--runs-dir", str(runs_dir),
                           "--quiet",
                           "--sweep", f"seed={seeds}", *extra], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"sweep {' '.join(extra)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    spans = []
    for run_dir in runs_dir.glob("2*"):
        status = json.loads((run_dir / "status.json").read_text())
        spans.append(status["finished"] - status["started"])
    shutil.rmtree(runs_dir)
    return wall, statistics.median(spans)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=4)
    p.add_argument("--jobs", type=int, default=2, help="runs at a time: local --jobs, and the Ray instance's CPUs")
    p.add_argument("--iterations", type=int, default=200, help="per round (3 rounds per run)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu", help="accepted for run_all.py; the runs are CPU runs")
    args = p.parse_args()
    # a throwaway single-machine instance: no usage report sent, no auth token left in ~/.ray
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    work = Path(tempfile.mkdtemp(prefix="lthbench-", dir="/tmp"))
    preset = work / "bench-sweep.toml"
    preset.write_text(PRESET.format(iterations=args.iterations))
    begin = time.perf_counter()
    ray.init(num_cpus=args.jobs, num_gpus=0, object_store_memory=100 * 1024 * 1024, _temp_dir=str(work / "ray"),
             include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    cluster_start = time.perf_counter() - begin
    address = ray.get_runtime_context().gcs_address
    contenders = {
        "local": ["--jobs", str(args.jobs)],
        "ray": ["--backend", "ray", "--address", address, "--cpus-per-run", "1", "--gpus-per-run", "0"],
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    try:
        for i in range(args.repeats + 1):  # the first turn warms the page cache and Ray's workers: untimed
            names = list(contenders) if i % 2 == 0 else list(reversed(contenders))
            for name in names:
                result = sweep(preset, work / f"runs-{name}", args.runs, contenders[name])
                if i:
                    times[name].append(result)
    finally:
        ray.shutdown()
    fresh = sweep(preset, work / "runs-fresh", args.runs,
                  ["--backend", "ray", "--cpus-per-run", "1", "--gpus-per-run", "0"])
    shutil.rmtree(work, ignore_errors=True)

    local_wall = statistics.median(w for w, _ in times["local"])
    ray_wall = statistics.median(w for w, _ in times["ray"])
    rows = [
        ["local, --jobs", f"{local_wall:.1f}", f"{statistics.median(s for _, s in times['local']):.1f}", "1.000"],
        ["ray, running local instance", f"{ray_wall:.1f}", f"{statistics.median(s for _, s in times['ray']):.1f}",
         f"{ray_wall / local_wall:.3f}"],
        ["ray, own fresh instance (once)", f"{fresh[0]:.1f}", f"{fresh[1]:.1f}", f"{fresh[0] / local_wall:.3f}"],
    ]
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from harness import table

    table(f"12. sweep on Ray vs local ({os.cpu_count()} cores, ray {ray.__version__})",
          ["backend", "sweep wall s (median)", "one runner s (median)", "wall / local"], rows,
          notes=[f"{args.runs} runs (digits, MLP 64, 3 rounds of {args.iterations} iterations), {args.jobs} at a time, "
                 f"one thread each; {args.repeats} timed turns per side, alternating, after one untimed turn",
                 f"starting the local Ray instance the ray rows connect to took {cluster_start:.1f} s "
                 "(not in the rows)",
                 "'one runner' is status.json finished - started of each run: the same work on both sides"])
    print(f"ratio ray/local: {ray_wall / local_wall:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
