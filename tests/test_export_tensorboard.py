"""`lth-tui export --format tensorboard`: event files read back with an independent reader (tests/tfevents.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tfevents import read_folder

from engine.store import read_json, read_summary
from lth_tui.cli import main


def test_run_export_has_round_curves_and_the_sparsity_curve(analysis_runs, tmp_path, capsys):
    run = analysis_runs["imp"]  # 2 trials, 3 rounds
    out = tmp_path / "tb"
    assert main(["export", str(run), "--format", "tensorboard", "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    root = out / run.name
    summary = read_summary(run)
    for t in (0, 1):
        for r in (0, 1, 2):
            events = read_folder(root / f"trial-{t}" / f"round-{r}")
            assert events.file_version.startswith("brain.Event:")
            evals = read_json(run / f"trial-{t}" / f"round-{r}" / "evals.json")
            for key, tag in (("val_loss", "val/loss"), ("val_accuracy", "val/accuracy"),
                             ("test_accuracy", "test/accuracy")):
                assert events.scalars[tag] == [(e["iteration"], pytest.approx(e[key], rel=1e-6)) for e in evals]
            train = [(e["iteration"], pytest.approx(e["train_loss"], rel=1e-6))
                     for e in evals if e["train_loss"] is not None]
            assert events.scalars["train/loss"] == train and len(train) >= 2
    sparsity = read_folder(root / "sparsity")
    curve = summary["curve"]
    assert sparsity.scalars["sparsity/test_accuracy"] == [
        (round(10_000 * p["weights_remaining"]), pytest.approx(p["test_accuracy_mean"], rel=1e-6)) for p in curve]
    assert [s for s, _ in sparsity.scalars["sparsity/test_accuracy"]][0] == 10_000  # dense first
    assert sparsity.scalars["by_round/weights_remaining"] == [
        (p["round"], pytest.approx(p["weights_remaining"], rel=1e-6)) for p in curve]
    assert len(sparsity.scalars["sparsity/test_accuracy_std"]) == len(curve)
    assert 'criterion = "large_final"' in sparsity.texts["config/text_summary"]
    trial1 = read_folder(root / "trial-1" / "sparsity")
    rounds = summary["trials"][1]["rounds"]
    assert trial1.scalars["sparsity/test_accuracy"] == [
        (round(10_000 * rec["weights_remaining"]), pytest.approx(rec["test_accuracy_at_early_stop"], rel=1e-6))
        for rec in rounds]
    # A second export replaces the first: no doubled curves.
    assert main(["export", str(run), "--format", "tensorboard", "-o", str(out)]) == 0
    assert len(list((root / "sparsity").glob("events.out.tfevents.*"))) == 1
    assert sorted(p.name for p in out.iterdir()) == [run.name]  # the staging folder is gone


def test_group_export_writes_the_swept_keys_as_hparams(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LTH_TUI_DATA_DIR", str(tmp_path / "data"))
    preset = tmp_path / "tiny.toml"
    preset.write_text('name = "tiny"\ndescription = "d"\ndevice = "cpu"\n[data]\nname = "digits"\nval_size = 200\n'
                      '[model]\nhidden = [16]\n[train]\niterations = 20\neval_every = 10\nbatch_size = 50\n'
                      '[prune]\nrounds = 1\n')
    runs = tmp_path / "runs"
    assert main(["run", str(preset), "--runs-dir", str(runs), "--quiet", "--sweep",
                 "prune.criterion=large_final,random",
                 "--sweep", "model.hidden=[16],[8]"]) == 0
    group = Path(capsys.readouterr().out.strip().splitlines()[0])
    out = tmp_path / "tb"
    assert main(["export", group.name, "--runs-dir", str(runs), "--format", "tensorboard", "-o", str(out)]) == 0
    members = json.loads((group / "group.json").read_text())["runs"]
    assert len(members) == 4
    seen = set()
    for entry in members:
        run = Path(entry["run_dir"])
        events = read_folder(out / run.name)
        assert events.hparams == {"prune.criterion": entry["swept"]["prune.criterion"],
                                  "model.hidden": str(entry["swept"]["model.hidden"])}
        assert "hparam/best_test_accuracy" in events.metric_tags
        best = max(p["test_accuracy_mean"] for p in read_summary(run)["curve"])
        assert events.scalars["hparam/best_test_accuracy"] == [(0, pytest.approx(best, rel=1e-6))]
        assert (out / run.name / "sparsity").is_dir() and (out / run.name / "trial-0" / "round-1").is_dir()
        seen.add(tuple(events.hparams.values()))
    assert len(seen) == 4
    # Default output: the group folder.
    assert main(["export", str(group), "--format", "tensorboard"]) == 0
    assert (group / "tensorboard" / Path(members[0]["run_dir"]).name).is_dir()


def test_tensorboard_refuses_a_symlinked_output_and_bad_flags(analysis_runs, tmp_path, capsys):
    run = analysis_runs["imp"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "tb"
    link.symlink_to(elsewhere)
    assert main(["export", str(run), "--format", "tensorboard", "-o", str(link)]) == 2
    assert "symlink" in capsys.readouterr().err and not any(elsewhere.iterdir())
    assert main(["export", str(run), "--format", "tensorboard", "--round", "1", "-o", str(tmp_path / "x")]) == 2
    assert "--format ticket only" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nothing"), "--format", "tensorboard", "-o", str(tmp_path / "y")]) == 2
    assert "no such run dir" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_report_exports_never_load_tensorboardx_or_textual_serve(analysis_runs, tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    code = ("import sys\nfrom lth_tui.cli import main\n"
            f"assert main(['export', {str(analysis_runs['imp'])!r}, '--format', 'md', '-o', "
            f"{str(tmp_path / 'x.md')!r}]) == 0\n"
            f"assert main(['runs', '--runs-dir', {str(tmp_path)!r}]) == 0\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorboardX', 'textual_serve', 'aiohttp'))\n"
            "assert not bad, bad\n")
    result = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(root), "HOME": str(tmp_path),
                                                               "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_an_unknown_format_lists_every_format(tmp_path, capsys):
    assert main(["export", str(tmp_path), "--format", "xml"]) == 2
    err = capsys.readouterr().err.strip()
    assert "'xml' is not allowed" in err and "md, json, csv, png, tensorboard, ticket" in err
    assert not any(tmp_path.iterdir())
