"""Benchmarks 8 and 9: start-up of the read-only commands and of the app, against yardsticks
measured in the same run.

8. `lth-tui runs` + `lth-tui export RUN --format json`, each a fresh process, against a fresh
   `python -c "import torch"`. Target: the two together in at most half the time of the import
   (they must not import torch at all; tests/test_readonly_commands.py checks that).
9. `lth-tui` from launch to its first painted Setup screen, against a minimal Textual app
   (Header, one Static, Footer) from launch to its first frame. Both run in a pseudo-terminal
   of 120×40; the clock stops when the screen's own text has come out of the terminal (the
   Setup screen's frame, which it paints before building its panels; the minimal app's
   Static). Target: ≤ 1.5× the minimal app. Shown beside it, not judged: the time until the
   Setup screen's panels and buttons are built (its Start button label is out).

Contenders are run in turn (A B A B ...), the median of each is taken, so a neighbour stealing
the CPU for a while hurts both sides alike. No torch is imported in this process.

    python benchmarks/bench_startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import platform
import pty
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MINIMAL_APP = """
from textual.app import App
from textual.widgets import Footer, Header, Static

class Minimal(App):
    def compose(self):
        yield Header()
        yield Static("minimal-first-frame")
        yield Footer()

Minimal().run()
"""
APP_MARKER = b"building the panels"  # the Setup screen's first frame (its panels come right after)
BUILT_MARKER = b"Start ^r"  # Setup's start button: the panels and buttons are built
MINIMAL_MARKER = b"minimal-first-frame"


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), "HOME": str(home),
            "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}


def first_frame_seconds(argv: list[str], marker: bytes, env: dict[str, str], timeout: float = 120.0,
                        then: bytes | None = None, seen_at: dict[str, float] | None = None) -> float:
    """Seconds from fork to `marker` appearing on a 120×40 pseudo-terminal; the child is then killed
    (after `then` has appeared too, when given: its time goes into `seen_at["then"]`)."""
    start = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec the program on the pty
        os.execvpe(argv[0], argv, env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    seen = b""
    found: dict[str, float] = {}
    try:
        while True:
            left = timeout - (time.perf_counter() - start)
            if left <= 0:
                raise RuntimeError(f"{argv}: no {marker!r} within {timeout:.0f} s")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                raise RuntimeError(f"{argv}: exited before painting {marker!r}") from None
            seen = (seen + chunk)[-65536:]
            now = time.perf_counter() - start
            if marker in seen and "first" not in found:
                found["first"] = now
            if then is not None and then in seen and "first" in found:
                seen_at["then"] = now
                return found["first"]
            if then is None and "first" in found:
                return found["first"]
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)


def process_seconds(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def alternate(contenders: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Median of each contender's own figure, run in turn after one untimed warm-up turn (disk cache)."""
    for fn in contenders.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for i in range(repeats):
        names = list(contenders) if i % 2 == 0 else list(reversed(contenders))
        for name in names:
            times[name].append(contenders[name]())
    return {name: statistics.median(v) for name, v in times.items()}


def make_run(runs_dir: Path, env: dict[str, str]) -> Path:
    """A small finished run (2 trials, masks stored) for `runs` and `export` to read."""
    subprocess.run([sys.executable, "-m", "lth_tui.cli", "--runs-dir", str(runs_dir), "run", "digits-quick", "--quiet",
                    "--set", "train.iterations=40", "--set", "train.eval_every=20", "--set", "prune.rounds=2",
                    "--trials", "2"], env={**env, "OMP_NUM_THREADS": "1"}, check=True, capture_output=True)
    return next(p for p in runs_dir.iterdir() if p.is_dir() and p.name != "groups")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu", help="ignored (start-up runs no model); accepted for run_all.py")
    args = p.parse_args(argv)
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        home, runs_dir = Path(tmp) / "home", Path(tmp) / "runs"
        home.mkdir()
        env = _env(home)
        run_dir = make_run(runs_dir, env)
        cli = [py, "-m", "lth_tui.cli", "--runs-dir", str(runs_dir)]
        figures = alternate({
            "read-only": lambda: (process_seconds([*cli, "runs"], env)
                                  + process_seconds([*cli, "export", str(run_dir), "--format", "json", "-o", "-"],
                                                    env)),
            "import torch": lambda: process_seconds([py, "-c", "import torch"], env),
        }, args.repeats)
        ratio = figures["read-only"] / figures["import torch"]
        print(f"### 8. read-only commands vs `import torch` ({platform.machine()}, python {platform.python_version()}, "
              f"median of {args.repeats})\n")
        print("| contender | seconds |\n|---|---:|")
        print(f"| `lth-tui runs` + `lth-tui export RUN --format json` | {figures['read-only']:.3f} |")
        print(f"| `python -c \"import torch\"` | {figures['import torch']:.3f} |")
        print(f"\nratio {ratio:.3f} (target ≤ 0.5): {'PASS' if ratio <= 0.5 else 'MISS'}\n", flush=True)

        minimal = Path(tmp) / "minimal_app.py"
        minimal.write_text(MINIMAL_APP, encoding="utf-8")
        built: list[float] = []

        def lth_tui() -> float:
            seen_at: dict[str, float] = {}
            first = first_frame_seconds([*cli], APP_MARKER, env, then=BUILT_MARKER, seen_at=seen_at)
            built.append(seen_at["then"])
            return first

        frames = alternate({
            "lth-tui": lth_tui,
            "minimal": lambda: first_frame_seconds([py, str(minimal)], MINIMAL_MARKER, env),
        }, args.repeats)
        ratio = frames["lth-tui"] / frames["minimal"]
        print(f"### 9. app launch to first painted Setup screen vs a minimal Textual app (120×40 pty, median of "
              f"{args.repeats})\n")
        print("| contender | seconds to first frame |\n|---|---:|")
        print(f"| `lth-tui` (Setup screen, first frame) | {frames['lth-tui']:.3f} |")
        print(f"| minimal Textual app (Header, Static, Footer) | {frames['minimal']:.3f} |")
        print(f"| `lth-tui`, Setup panels and buttons built (not judged) | {statistics.median(built[1:]):.3f} |")
        print(f"\nratio {ratio:.3f} (target ≤ 1.5): {'PASS' if ratio <= 1.5 else 'MISS'}\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
