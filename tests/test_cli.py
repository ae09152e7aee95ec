"""The headless CLI as a user drives it: exit codes, messages, files written (or not)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.store import read_summary
from lth_tui.cli import main

ROOT = Path(__file__).resolve().parent.parent
TINY = ('name = "tiny"\ndescription = "tiny test preset"\ndevice = "cpu"\n[data]\nname = "digits"\nval_size = 200\n'
        '[model]\nhidden = [32]\n[train]\niterations = 40\neval_every = 20\nbatch_size = 50\nlr = 3e-3\n'
        '[prune]\nrounds = 2\nrate = { fc = 0.3, output = 0.2 }\n')


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def _run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "lth_tui.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300, cwd=cwd)


BAD = [
    ('[prune]\ncritrion = "movement"\n', "prune.critrion", "unknown key"),
    ('[train]\nlr = "fast"\n', "train.lr", "expected a number"),
    ('[prune]\ncriterion = "biggest"\n', "'biggest'", "large_final, small_final"),
    ('[model]\nname = "transformer"\n', "model.name", "conv2"),
    ('[data]\nname = "imagenet"\n', "data.name", "cifar10"),
    ('[prune]\nrate = { fc = 1.5 }\n', "prune.rate.fc", "0 <= rate < 1"),
    ('[prune\nrounds = 2\n', "TOML syntax error", "bad.toml"),
    ('[data]\nname = "mnist"\n', "--download", "--data-dir"),
    ('[model]\nname = "conv2"\n[data]\nname = "mnist1d"\n', "conv2", "mlp"),
    ('[data]\nval_size = 99999\n', "val_size", "between 0 and"),
    ('[prune]\nrewind_iteration = 5000\n', "prune.rewind_iteration", "below train.iterations"),
]


@pytest.mark.parametrize("text, must1, must2", BAD)
def test_bad_input_exits_2_names_the_problem_and_writes_nothing(tmp_path, text, must1, must2, monkeypatch, capsys):
    monkeypatch.setenv("LTH_TUI_DATA_DIR", str(tmp_path / "data"))
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    runs = tmp_path / "runs"
    code = main(["run", str(bad), "--runs-dir", str(runs)])
    err = capsys.readouterr().err
    assert code == 2
    assert must1 in err and must2 in err, err
    assert "bad.toml" in err or "mnist" in err
    assert not runs.exists() or not any(runs.iterdir())


def test_missing_file_unknown_preset_and_bad_set(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["run", str(tmp_path / "nope.toml"), "--runs-dir", str(runs)]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["run", "no-such-preset", "--runs-dir", str(runs)]) == 2
    assert "digits-quick" in capsys.readouterr().err
    assert main(["run", "digits-quick", "--set", "prune.criterion=biggest", "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert "digits-quick.toml with --set" in err and "prune.criterion" in err and "movement" in err
    assert not runs.exists()


def test_run_prints_the_run_dir_and_applies_overrides(tiny, tmp_path):
    result = _run_cli("run", str(tiny), "--runs-dir", str(tmp_path / "runs"), "--set", "prune.criterion=movement",
                      "--trials", "2")
    assert result.returncode == 0, result.stderr
    run_dir = Path(result.stdout.splitlines()[0])
    assert run_dir.parent == tmp_path / "runs" and "-tiny-" in run_dir.name
    assert 'criterion = "movement"' in (run_dir / "config.toml").read_text()
    summary = read_summary(run_dir)
    assert summary["state"] == "done" and len(summary["trials"]) == 2
    assert "it 40/40" in result.stderr


def test_runs_lists_states_and_damaged_dirs(tiny, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["run", str(tiny), "--runs-dir", str(runs), "--quiet"]) == 0
    damaged = runs / "20260101-000000-broken-abcdef"
    damaged.mkdir()
    (damaged / "status.json").write_text("{not json")
    capsys.readouterr()
    assert main(["runs", "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "done" in out and "damaged" in out and "tiny" in out


def test_export_every_format(tiny, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["run", str(tiny), "--runs-dir", str(runs), "--quiet", "--trials", "2"]) == 0
    run_dir = next(runs.iterdir())
    capsys.readouterr()
    assert main(["export", str(run_dir), "--format", "md"]) == 0
    md = (run_dir / "export.md").read_text()
    assert "| round | weights remaining %" in md and " ± " in md
    assert main(["export", str(run_dir), "--format", "csv", "-o", str(tmp_path / "r.csv")]) == 0
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert len(rows) == 6 and {r["trial"] for r in rows} == {"0", "1"}
    capsys.readouterr()
    assert main(["export", str(run_dir), "--format", "json", "-o", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["run_id"] == run_dir.name
    assert main(["export", str(run_dir), "--format", "png", "-o", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["export", str(run_dir), "--format", "pdf"]) == 2
    assert "md, json, csv, png" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nothing"), "--format", "md"]) == 2


def test_sweep_runs_the_cross_product_as_a_group(tiny, tmp_path, capsys):
    runs = tmp_path / "runs"
    code = main(["run", str(tiny), "--runs-dir", str(runs), "--quiet", "--set", "prune.rounds=1",
                 "--sweep", "prune.criterion=large_final,random", "--sweep", "prune.mask1=rewind,random_reinit",
                 "--jobs", "2"])
    assert code == 0
    (group,) = (runs / "groups").iterdir()
    members = json.loads((group / "group.json").read_text())["runs"]
    assert len(members) == 4
    combos = {(m["swept"]["prune.criterion"], m["swept"]["prune.mask1"]) for m in members}
    assert combos == {(c, a) for c in ("large_final", "random") for a in ("rewind", "random_reinit")}
    for m in members:
        status = json.loads((Path(m["run_dir"]) / "status.json").read_text())
        assert status["group"] == group.name and status["state"] == "done"
    capsys.readouterr()
    assert main(["export", group.name, "--runs-dir", str(runs), "--format", "md", "-o", "-"]) == 0
    md = capsys.readouterr().out
    assert md.count("| done |") == 4 and "criterion=random, mask1=random_reinit" in md


def test_bad_sweep_value_writes_nothing(tiny, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["run", str(tiny), "--runs-dir", str(runs), "--sweep", "prune.criterion=large_final,bogus"]) == 2
    err = capsys.readouterr().err
    assert "bogus" in err and "prune.criterion" in err
    assert not runs.exists()


def test_sweep_queues_its_later_runs_and_resume_respects_the_queue(tiny, tmp_path, capsys, monkeypatch):
    """A sequential sweep's runs wait as "queued" (not "interrupted": nobody may resume them
    behind the sweep's back); once the sweep is gone they are interrupted and resumable."""
    import lth_tui.cli_start as cli_start
    from engine.run_index import list_runs, run_info
    from lth_tui.cli_contract import EXIT_INTERRUPTED

    runs = tmp_path / "runs"
    seen = {}

    def first_then_ctrl_c(run_dir, *args, **kwargs):
        seen.update({info.path: info.state for info in list_runs(runs)})
        return EXIT_INTERRUPTED  # as if Ctrl-C stopped the first run: the sweep stops

    monkeypatch.setattr(cli_start, "execute_with_progress", first_then_ctrl_c)
    sweep = ["--sweep", "prune.criterion=large_final,random"]
    assert main(["run", str(tiny), "--runs-dir", str(runs), "--quiet", *sweep]) == 130
    monkeypatch.undo()
    assert sorted(seen.values()) == ["queued", "queued"]  # neither had started when the first was handed over
    (queued,) = [d for d in seen if "random" in (d / "config.toml").read_text()]
    status_before = (queued / "status.json").read_text()
    assert json.loads(status_before)["pid"] == os.getpid()  # the sweep (this process) holds the queue
    capsys.readouterr()
    assert main(["resume", str(queued)]) == 2
    assert "queued in a sweep that is still going" in capsys.readouterr().err
    assert (queued / "status.json").read_text() == status_before and not (queued / "events.jsonl").exists()

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    status = json.loads(status_before)
    status["pid"] = gone.pid  # the sweep's process has exited
    (queued / "status.json").write_text(json.dumps(status))
    assert run_info(queued).state == "interrupted"
    assert main(["resume", str(queued), "--quiet"]) == 0
    assert run_info(queued).state == "done"


def test_resume_refuses_a_non_run(tmp_path, capsys):
    assert main(["resume", str(tmp_path)]) == 2
    assert "not a resumable run dir" in capsys.readouterr().err


def test_presets_lists_shipped_presets():
    result = _run_cli("presets")
    assert result.returncode == 0
    for name in ("digits-quick", "mnist1d-lottery", "lenet-mnist", "resnet20-cifar10", "zhou-fc-mnist",
                 "zhou-supermask-mnist1d"):
        assert name in result.stdout


def test_headless_path_never_imports_textual(tiny, tmp_path):
    code = (
        "import sys\n"
        "from lth_tui.cli import main\n"
        f"assert main(['run', {str(tiny)!r}, '--runs-dir', {str(tmp_path / 'r')!r}, '--quiet']) == 0\n"
        f"main(['runs', '--runs-dir', {str(tmp_path / 'r')!r}])\n"
        "main(['presets'])\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'plotext')]\n"
        "assert not bad, bad\n"
        "import engine.runner, engine.store, engine.training\n"
        "assert 'textual' not in sys.modules\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("data, chance", [("digits", 0.1), ("mnist1d", 0.1)])
def test_same_sign_signed_constant_supermasks_beat_chance(tmp_path, data, chance):
    """Zhou et al.: large_final_same_sign masks on signed constants are far better than chance untrained."""
    preset = tmp_path / "sm.toml"
    preset.write_text(
        f'name = "sm"\ndevice = "cpu"\n[data]\nname = "{data}"\nval_size = 300\n[model]\nhidden = [128, 64]\n'
        '[train]\niterations = 300\neval_every = 100\nbatch_size = 100\nlr = 2e-3\n'
        '[prune]\nrounds = 3\nrate = { fc = 0.4, output = 0.2 }\ncriterion = "large_final_same_sign"\n'
        'mask1 = "signed_constant"\n')
    assert main(["run", str(preset), "--runs-dir", str(tmp_path / "runs"), "--quiet"]) == 0
    summary = read_summary(next((tmp_path / "runs").iterdir()))
    rounds = summary["trials"][0]["rounds"]
    assert rounds[0]["supermask_accuracy"] < chance + 0.15
    assert max(r["supermask_accuracy"] for r in rounds[1:]) > 3 * chance
