"""The headless paths never import textual: `lth-tui run` must start fast and work without a UI stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

PROBE = """
import contextlib, io, json, sys
import engine.runner, engine.store
from lth_tui.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    codes = [main(["presets"]), main(["runs", "--runs-dir", sys.argv[1]])]
textual = sorted(m for m in sys.modules if m == "textual" or m.startswith("textual."))
print(json.dumps({"codes": codes, "textual": textual, "out": out.getvalue()}))
"""


def test_headless_commands_never_import_textual(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "runs")], cwd=REPO, capture_output=True,
                            text=True, timeout=120,
                            env={"PYTHONPATH": str(REPO), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["codes"] == [0, 0]
    assert report["textual"] == []
    assert "digits-quick" in report["out"]
