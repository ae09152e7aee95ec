"""The reproduction scripts keep working: their table helpers, and one script end to end on a tiny config."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "reproductions"))

from cli_driver import mean_std, nearest, per_round, percent  # noqa: E402


def test_mean_std_uses_the_sample_std_and_skips_missing_values():
    mean, std, n = mean_std([0.5, None, 0.7])
    assert (n, mean) == (2, pytest.approx(0.6))
    assert std == pytest.approx(math.sqrt(((0.5 - 0.6) ** 2 + (0.7 - 0.6) ** 2) / 1))
    assert mean_std([None]) is None
    assert percent(mean_std([0.25])) == "25.0"
    assert percent(None) == "–"


def test_nearest_reference_is_matched_on_a_log_scale_within_tolerance():
    reference = {1.0: "dense", 0.1: "ten", 0.02: "two"}
    assert nearest(reference, 0.107, tolerance=0.15) == "ten"
    assert nearest(reference, 0.05, tolerance=0.15) is None
    assert nearest(reference, None, tolerance=0.15) is None


def test_per_round_groups_trial_values_by_round():
    summary = {"trials": [{"rounds": [{"a": 1}, {"a": 2}]}, {"rounds": [{"a": 3}, {"b": 0}]}]}
    assert per_round(summary, "a") == [[1.0, 3.0], [2.0, None]]


def test_tickets_script_runs_end_to_end_through_the_cli(tmp_path):
    command = [sys.executable, str(ROOT / "reproductions" / "tickets_mnist1d.py"), "--preset", "digits-quick",
               "--trials", "1", "--jobs", "1", "--runs-dir", str(tmp_path),
               "--set", "prune.rounds=1", "--set", "train.iterations=20", "--set", "train.eval_every=10"]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
                               "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    table = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| round | weights % | ticket best %")
    assert [row.split(" | ")[1] for row in table[1:]] == ["100.0", "80.4"]
    assert len(list(tmp_path.glob("*digits-quick*"))) == 3
