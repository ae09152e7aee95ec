"""One resume/stop guard (lth_tui.guards) for the app and the CLI: the same run is refused by
both, with the same words, for the same reason."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest
from conftest import FAST_PRESET

from engine.config import from_dict
from engine.process import RunLock
from engine.store import create_run, read_status
from lth_tui.cli import main
from lth_tui.guards import RESUMABLE, ResumeRefused, cancel_run, check_resume


def _with_state(run_dir: Path, **fields: object) -> None:
    status = {**read_status(run_dir), **fields}
    (run_dir / "status.json").write_text(json.dumps(status), encoding="utf-8")


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = create_run(from_dict(tomllib.loads(FAST_PRESET)), tmp_path / "runs", preset="fast")
    _with_state(run, state="cancelled")
    return run


def test_resume_rules_are_one_for_app_and_cli(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "cancelled" in RESUMABLE and "done" not in RESUMABLE
    assert check_resume(run_dir).status["state"] == "cancelled"
    # a lock held by another runner: refused by the app's check and by `lth-tui resume`
    lock = RunLock(run_dir)
    lock.acquire()
    try:
        with pytest.raises(ResumeRefused, match=f"{run_dir.name} is already being run by"):
            check_resume(run_dir, name=run_dir.name)
        assert main(["resume", str(run_dir)]) == 2
        assert f"{run_dir} is already being run by" in capsys.readouterr().err
    finally:
        lock.release()
    # its runner still alive (this very process, on this host): refused by both
    _with_state(run_dir, state="running", pid=os.getpid())
    with pytest.raises(ResumeRefused, match="is still running"):
        check_resume(run_dir)
    assert main(["resume", str(run_dir)]) == 2
    assert "is still running" in capsys.readouterr().err
    # done: nothing to do, not an error for the CLI
    _with_state(run_dir, state="done", pid=None)
    with pytest.raises(ResumeRefused) as refused:
        check_resume(run_dir)
    assert refused.value.done
    assert main(["resume", str(run_dir)]) == 0
    assert "already done; nothing to resume" in capsys.readouterr().out


def test_cancel_refuses_a_run_nothing_runs(run_dir: Path) -> None:
    with pytest.raises(RuntimeError, match="has no live runner to stop: it is cancelled"):
        cancel_run(run_dir)
    assert not (run_dir / "stop.request").exists()
