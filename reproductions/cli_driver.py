"""Drives the `lth-tui` CLI for the reproduction scripts and turns run stores into tables.

Every reproduction goes through the same commands a researcher types (`lth-tui run PRESET
--set ...`), so what is reproduced is the tool, not a private code path. Runs go to their own
runs dir (default `reproductions/runs/`, or `$LTH_TUI_RUNS_DIR`), several at a time, each with
one BLAS thread so that two runs on a 2-core box do not spin-wait on each other.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@dataclass
class Variant:
    """One run of a comparison: a label, a preset and its `--set` overrides."""

    label: str
    sets: dict[str, Any] = field(default_factory=dict)
    preset: str | None = None            # None: the script's --preset


@dataclass
class Finished:
    variant: Variant
    run_dir: Path
    seconds: float
    summary: dict[str, Any]


def common_arguments(description: str, *, trials: int, preset: str, jobs: int = 2) -> argparse.ArgumentParser:
    """The options every reproduction script takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--preset", default=preset, help=f"the preset every variant starts from (default {preset})")
    parser.add_argument("--runs-dir", type=Path,
                        default=Path(os.environ.get("LTH_TUI_RUNS_DIR", HERE / "runs")),
                        help="where the runs go (default reproductions/runs or $LTH_TUI_RUNS_DIR)")
    parser.add_argument("--trials", type=int, default=trials, help=f"seeds per variant (default {trials})")
    parser.add_argument("--jobs", type=int, default=jobs, help=f"runs at a time (default {jobs})")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto (default cpu)")
    parser.add_argument("--data-dir", help="MNIST / CIFAR-10 files (passed to `lth-tui run --data-dir`)")
    parser.add_argument("--download", action="store_true", help="let `lth-tui run` download missing datasets")
    parser.add_argument("--no-reuse", dest="reuse", action="store_false",
                        help="run every variant again even when the runs dir has a run of the same command")
    parser.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra override for every variant (e.g. prune.rounds=3 for a quick look)")
    return parser


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def lth_tui_command() -> list[str]:
    """The CLI of this checkout, run by the interpreter running this script."""
    return [sys.executable, "-m", "lth_tui.cli"]


INDEX = "reproductions-index.json"


def _index_key(command: list[str]) -> str:
    """What identifies a run for reuse: the `lth-tui run` arguments after the interpreter."""
    return json.dumps(command[len(lth_tui_command()):])


def _read_index(runs_dir: Path) -> dict[str, str]:
    try:
        index = json.loads((runs_dir / INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(index, dict):
        return {}
    return {k: v for k, v in index.items() if isinstance(k, str) and isinstance(v, str)}


def _remember(runs_dir: Path, command: list[str], run_dir: Path) -> None:
    index = _read_index(runs_dir)
    index[_index_key(command)] = run_dir.name
    tmp = runs_dir / f".{INDEX}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(index, indent=1), encoding="utf-8")
    os.replace(tmp, runs_dir / INDEX)


def _reusable(runs_dir: Path, command: list[str]) -> Path | None:
    """A run of this exact command in the runs dir: done, or still going (then wait for it)."""
    name = _read_index(runs_dir).get(_index_key(command))
    if not name or "/" in name:
        return None
    run_dir = runs_dir / name
    while True:
        try:
            state = json.loads((run_dir / "status.json").read_text(encoding="utf-8")).get("state")
        except (OSError, ValueError):
            return None
        if state == "done":
            return run_dir
        if state not in ("running", "queued"):
            return None
        time.sleep(10)


def run_variant(variant: Variant, args: argparse.Namespace) -> Finished:
    """Runs one variant to the end through `lth-tui run` (or reuses the same run) and reads its summary."""
    command = [*lth_tui_command(), "run", variant.preset or args.preset, "--quiet", "--runs-dir", str(args.runs_dir),
               "--trials", str(args.trials), "--device", args.device]
    if getattr(args, "data_dir", None):
        command += ["--data-dir", args.data_dir]
    if getattr(args, "download", False):
        command.append("--download")
    for key, value in variant.sets.items():
        command += ["--set", f"{key}={_toml_value(value)}"]
    for extra in args.extra:
        command += ["--set", extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    if args.device == "cpu":
        env.setdefault("OMP_NUM_THREADS", "1")
    start = time.perf_counter()
    args.runs_dir.mkdir(parents=True, exist_ok=True)
    run_dir = _reusable(args.runs_dir, command) if args.reuse else None
    if run_dir is None:
        proc = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"{variant.label}: `{' '.join(command)}` exited {proc.returncode}:\n"
                               f"{proc.stderr[-2000:]}")
        run_dir = Path(lines[0].strip())
        _remember(args.runs_dir, command, run_dir)
    seconds = _run_seconds(run_dir, time.perf_counter() - start)
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    print(f"  {variant.label}: {run_dir.name} in {seconds / 60:.1f} min", file=sys.stderr, flush=True)
    return Finished(variant, run_dir, seconds, summary)


def _run_seconds(run_dir: Path, fallback: float) -> float:
    """The run's own wall time (first to last event), so a reused run reports what it took."""
    try:
        lines = (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
        first, last = json.loads(lines[0]), json.loads(lines[-1])
        return float(last["time"]) - float(first["time"])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return fallback


def run_all(variants: Sequence[Variant], args: argparse.Namespace) -> list[Finished]:
    """Runs the variants `--jobs` at a time, in order of the list."""
    print(f"{len(variants)} runs x {args.trials} trials into {args.runs_dir}, {args.jobs} at a time", file=sys.stderr)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        try:
            return list(pool.map(lambda v: run_variant(v, args), variants))
        except RuntimeError as exc:
            sys.exit(f"reproduction failed: {exc}")


def per_round(summary: dict[str, Any], key: str) -> list[list[float | None]]:
    """key's value per round, one list of trial values per round index."""
    rounds: list[list[float | None]] = []
    for trial in summary.get("trials", []):
        for index, record in enumerate(trial.get("rounds", [])):
            while len(rounds) <= index:
                rounds.append([])
            value = record.get(key)
            rounds[index].append(float(value) if isinstance(value, (int, float)) else None)
    return rounds


def mean_std(values: Sequence[float | None]) -> tuple[float, float, int] | None:
    """Mean, sample std (0 for one value) and n over the values that exist."""
    present = [v for v in values if v is not None and math.isfinite(v)]
    if not present:
        return None
    std = statistics.stdev(present) if len(present) > 1 else 0.0
    return statistics.fmean(present), std, len(present)


def percent(stat: tuple[float, float, int] | None) -> str:
    if stat is None:
        return "–"
    mean, std, n = stat
    return f"{100 * mean:.1f} ± {100 * std:.1f}" if n > 1 else f"{100 * mean:.1f}"


def weights_column(summary: dict[str, Any], key: str = "weights_remaining") -> list[float | None]:
    """The mean of key over trials per round (weights are the same in every trial)."""
    column = []
    for values in per_round(summary, key):
        stat = mean_std(values)
        column.append(None if stat is None else stat[0])
    return column


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def accuracy_key(summary: dict[str, Any], preferred: Sequence[str]) -> str:
    """The first of the preferred round keys that this run store has values for (early-stop
    figures are null without a hold-out)."""
    for key in preferred:
        if any(record.get(key) is not None for trial in summary.get("trials", []) for record in trial.get("rounds",
                                                                                                          [])):
            return key
    raise KeyError(f"none of {list(preferred)} in the run's rounds")


def nearest(reference: dict[float, Any], weights: float | None, tolerance: float) -> Any:
    """The reference figure at the weights remaining closest to `weights`, if within tolerance (relative)."""
    if weights is None or not reference:
        return None
    best = min(reference, key=lambda w: abs(math.log(w) - math.log(weights)))
    return reference[best] if abs(math.log(best) - math.log(weights)) <= tolerance else None


def report(title: str, finished: Sequence[Finished], table: str, started: float,
           notes: Callable[[], str] | None = None) -> None:
    """Prints the table with the commands and wall times, ready for reproductions/README.md."""
    print(f"## {title}\n")
    print(table)
    print()
    for f in finished:
        print(f"- {f.variant.label}: `{f.run_dir.name}`, {f.seconds / 60:.1f} min")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (usage.ru_utime + usage.ru_stime) / 60
    print(f"\nWall time: {(time.perf_counter() - started) / 60:.1f} min; CPU time of the runs: {cpu:.1f} min "
          f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).")
    if notes is not None:
        print("\n" + notes())
