"""Read-only commands never import torch, and piped output ends quietly on a closed pipe.

`runs`, `export` (md, json, csv), `presets`, `--help` and their error paths read JSON, TOML
and (for mask overlaps) safetensors as numpy: importing torch would cost them seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

PROBE = """
import contextlib, io, json, sys
from lth_tui.cli import main
run_dir, runs_dir = sys.argv[1], sys.argv[2]
commands = [["presets"], ["--help"], ["runs", "--runs-dir", runs_dir],
            ["runs", "--runs-dir", run_dir + "/nothing-here"],
            ["export", run_dir, "--format", "json", "-o", "-"], ["export", run_dir, "--format", "md", "-o", "-"],
            ["export", run_dir, "--format", "csv", "-o", "-"], ["export", run_dir + "-missing", "--format", "json"],
            ["export", run_dir, "--format", "xml"], ["no-such-command"]]
codes = []
for argv in commands:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            codes.append(main(argv))
        except SystemExit as exc:
            codes.append(exc.code)
print(json.dumps({"codes": codes, "torch": sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))}))
"""


def _env(tmp_path: Path) -> dict[str, str]:
    return {"PYTHONPATH": str(REPO), "HOME": str(tmp_path), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def test_read_only_commands_never_import_torch(analysis_runs: dict[str, Path], tmp_path: Path) -> None:
    run_dir = analysis_runs["imp"]  # two trials, LMC files and masks: every section of the exports
    result = subprocess.run([sys.executable, "-c", PROBE, str(run_dir), str(run_dir.parent)], cwd=REPO,
                            capture_output=True, text=True, timeout=120, env=_env(tmp_path))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["codes"] == [0, 0, 0, 0, 0, 0, 0, 2, 2, 2]
    assert report["torch"] == []


@pytest.mark.parametrize("argv", [["presets"], ["--help"], ["runs"], ["export", "RUN", "--format", "md", "-o", "-"]])
def test_piped_output_ends_quietly_on_a_closed_pipe(argv: list[str], analysis_runs: dict[str, Path],
                                                     tmp_path: Path) -> None:
    """As `lth-tui presets | head -0`: the reader is gone before the first write."""
    argv = [str(analysis_runs["imp"]) if a == "RUN" else a for a in argv]
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run([sys.executable, "-m", "lth_tui.cli", "--runs-dir", str(analysis_runs["imp"].parent),
                                 *argv], cwd=REPO, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120,
                                env=_env(tmp_path))
    finally:
        os.close(write_end)
    assert result.stderr == ""  # no BrokenPipeError traceback, no "Exception ignored" at exit
    # 141 (128 + SIGPIPE) from our handler; rich's console (`runs`) ends a closed pipe with 1 itself
    assert result.returncode in (141, 1)
