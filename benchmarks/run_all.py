"""Runs every benchmark with its defaults, one after another, and prints (or saves) the tables.

    python benchmarks/run_all.py                         # CPU
    python benchmarks/run_all.py --device cuda -o gpu.md # on a GPU box, tables into gpu.md
    python benchmarks/run_all.py --only masked_step,prune_hooks -- --repeats 7

Arguments after `--` go to every script. Each script runs in its own process, so one
benchmark's warm caches or threads never flatter the next.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["masked_step", "prune_hooks", "dataloader", "imp_rounds", "app_overhead", "parallel_trials", "fast_paths",
           "startup", "threads", "sweep_batch"]
# Run only with --device cuda (or --only): on a CPU they have nothing to measure.
CUDA_SCRIPTS = ["cuda_graphs"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--only", default="", help=f"comma-separated subset of {','.join(SCRIPTS + CUDA_SCRIPTS)}")
    p.add_argument("-o", "--output", help="also write the tables to this Markdown file")
    args = p.parse_args(argv)
    known = SCRIPTS + CUDA_SCRIPTS
    chosen = args.only.split(",") if args.only else SCRIPTS + (CUDA_SCRIPTS if args.device.startswith("cuda") else [])
    unknown = [name for name in chosen if name not in known]
    if unknown:
        p.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    env = {**os.environ, "PYTHONPATH": str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    header = (f"# lth-tui benchmarks, {time.strftime('%Y-%m-%d %H:%M')}, device {args.device}, "
              f"{platform.node()}, python {platform.python_version()}\n")
    out = [header]
    print(header, flush=True)
    failed = []
    for name in chosen:
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, str(HERE / f"bench_{name}.py"), "--device", args.device, *extra],
                              env=env, capture_output=True, text=True)
        tables = "\n".join(line for line in proc.stdout.splitlines() if not line.startswith(("USDT", "ERROR:", "W1")))
        text = f"{tables}\n_(bench_{name}.py: {time.perf_counter() - started:.0f} s)_\n"
        if proc.returncode:
            failed.append(name)
            text += f"\n**bench_{name}.py failed (exit {proc.returncode})**\n```\n{proc.stderr[-3000:]}\n```\n"
        print(text, flush=True)
        out.append(text)
    if args.output:
        Path(args.output).write_text("\n".join(out), encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
