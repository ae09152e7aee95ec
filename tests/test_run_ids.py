"""One vocabulary for runs: ids, prefixes and hash suffixes resolve in the runs dir for every
command; `runs` piped is whole ids tab-separated, `--json` every field; exports refuse to
overwrite without --force; labels tell runs of one config apart."""

from __future__ import annotations

import csv
import io
import json
import shutil
import tomllib
from pathlib import Path

import pytest
from conftest import FAST_PRESET

from engine.config import from_dict
from lth_tui.cli import main
from lth_tui.run_ids import RunNotFound, resolve_run
from lth_tui.run_labels import run_labels, short_ids


def _fake_runs(runs: Path, names: list[str]) -> list[Path]:
    out = []
    for name in names:
        (runs / name).mkdir(parents=True)
        (runs / name / "status.json").write_text('{"state": "done"}')
        out.append(runs / name)
    return out


def test_resolver_takes_ids_prefixes_suffixes_and_labels(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    a, b, c = _fake_runs(runs, ["20261201-072208-digits-quick-41d024", "20261201-073012-digits-quick-41d024",
                                "20261130-101010-lenet-mnist-9fe001"])
    assert resolve_run(a.name, runs) == a
    assert resolve_run("20261130", runs) == c  # a unique prefix
    assert resolve_run("9fe001", runs) == c  # the 6-hex suffix
    assert resolve_run("072208-41d024", runs) == a  # the app's short label
    assert resolve_run(str(b), tmp_path / "elsewhere") == b  # a path as before
    with pytest.raises(RunNotFound, match="matches 2 runs.*give more"):
        resolve_run("41d024", runs)
    with pytest.raises(RunNotFound, match="close matches: 20261201-072208-digits-quick-41d024"):
        resolve_run("20261201-072208-digits-quik-41d024", runs)
    with pytest.raises(RunNotFound, match="no run 'nothing'"):
        resolve_run("nothing", runs)


def test_every_run_command_resolves_ids_and_lists_close_matches(tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    _fake_runs(runs, ["20261201-072208-digits-quick-41d024"])
    for argv in (["export", "20261201-072208-digits-quik-41d024", "--format", "md"],
                 ["resume", "20261201-072208-digits-quik-41d024"],
                 ["lmc", "20261201-072208-digits-quik-41d024", "--round", "1"],
                 ["stop", "20261201-072208-digits-quik-41d024"]):
        assert main(["--runs-dir", str(runs), *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "close matches: 20261201-072208-digits-quick-41d024" in err, argv
    # found by its suffix, then refused for what it is (no summary), not "missing" as a path in the cwd
    assert main(["--runs-dir", str(runs), "export", "41d024", "--format", "md"]) == 2
    assert "summary.json" in capsys.readouterr().err


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """One trained fast run and a copy of it started "later": two runs of one config."""
    import torch

    from engine.runner import execute
    from engine.store import create_run

    store = tmp_path_factory.mktemp("ids") / "runs"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        first = create_run(from_dict(tomllib.loads(FAST_PRESET)), store, preset="fast")
        assert execute(first) == "done"
    finally:
        torch.set_num_threads(threads)
    parts = first.name.split("-")
    second = store / "-".join([parts[0], "235959", *parts[2:]])
    shutil.copytree(first, second)
    summary = json.loads((second / "summary.json").read_text())
    summary["run_id"] = second.name
    (second / "summary.json").write_text(json.dumps(summary))
    return [first, second]


def test_runs_piped_is_whole_ids_tab_separated_and_json(two_runs: list[Path], capsys) -> None:
    runs = two_runs[0].parent
    assert main(["runs", "--runs-dir", str(runs)]) == 0  # capsys: not a terminal
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    fields = [line.split("\t") for line in lines]
    assert {f[0] for f in fields} == {p.name for p in two_runs}
    assert fields[0][1:6] == ["done", "fast", "large_final", "rewind", "zero"]
    assert main(["runs", "--runs-dir", str(runs), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert {r["run_id"] for r in records} == {p.name for p in two_runs}
    assert records[0]["mask1"] == "rewind" and 0 < records[0]["best_accuracy"] <= 1


def test_export_refuses_to_overwrite_without_force(two_runs: list[Path], tmp_path: Path, capsys) -> None:
    target = tmp_path / "out.md"
    target.write_text("mine")
    runs = two_runs[0].parent
    assert main(["--runs-dir", str(runs), "export", two_runs[0].name, "--format", "md", "-o", str(target)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err and target.read_text() == "mine"
    assert main(["--runs-dir", str(runs), "export", two_runs[0].name[:15], "--format", "md", "-o", str(target),
                 "--force"]) == 0
    assert target.read_text().startswith(f"# {two_runs[0].name}")


def test_a_copied_dir_without_a_hash_suffix_is_labelled_by_its_name() -> None:
    """A user's copy named "copy-damaged" is not cut to its last six characters ("amaged")."""
    assert short_ids(["copy-damaged", "20261201-072208-digits-quick-41d024"]) == ["copy-damaged", "41d024"]
    assert short_ids(["a-much-longer-name-of-a-copied-run"]) == ["…a-copied-run"]


def test_labels_tell_runs_of_one_config_apart() -> None:
    raw = tomllib.loads(FAST_PRESET)
    same = from_dict(raw).to_dict()
    ids = ["20261201-072208-digits-quick-41d024", "20261201-073012-digits-quick-41d024"]
    assert short_ids(ids) == ["072208-41d024", "073012-41d024"]
    assert run_labels([(ids[0], same), (ids[1], same)]) == ["072208-41d024", "073012-41d024"]
    other = from_dict({**raw, "seed": 3, "prune": {**raw["prune"], "mask0": "freeze_init"}}).to_dict()
    labels = run_labels([(ids[0], same), ("20261201-080000-x-aaaaaa", other)])
    assert labels == ["41d024 mask0=zero seed=0", "aaaaaa mask0=freeze_init seed=3"]
    assert run_labels([(ids[0], same)]) == ["41d024 large_final/rewind/zero"]


def test_marked_runs_export_side_by_side(two_runs: list[Path], tmp_path: Path) -> None:
    from lth_tui.export_runs import export_runs

    md = export_runs(two_runs, "md", tmp_path / "both.md").read_text()
    assert "# 2 runs side by side" in md
    assert all(p.name in md for p in two_runs)
    short = short_ids([p.name for p in two_runs])
    assert f"| round | {short[0]} | {short[1]} |" in md
    rows = list(csv.DictReader(io.StringIO(export_runs(two_runs, "csv", tmp_path / "both.csv").read_text())))
    assert {r["run_id"] for r in rows} == {p.name for p in two_runs} and len(rows) == 6
