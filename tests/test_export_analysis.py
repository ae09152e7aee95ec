"""The analysis parts of the exports (LMC, mask overlap, mask-training accuracies), checked
against figures recomputed here from the stored files: lmc*.json and the masks (numpy)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FAST_PRESET
from safetensors.numpy import load_file

from engine.lmc import run_lmc
from lth_tui.cli import main
from lth_tui.export import export_group, to_csv, to_json, to_markdown


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, analysis_runs: dict[str, Path]) -> dict[str, Path]:
    """The shared analysis runs, copied, plus one `lmc --rewind 0` result in the IMP run."""
    store = tmp_path_factory.mktemp("export-analysis")
    copies = {key: Path(shutil.copytree(run_dir, store / run_dir.name)) for key, run_dir in analysis_runs.items()}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_lmc(copies["imp"], 1, rewind_iteration=0, trial=1)
    finally:
        torch.set_num_threads(threads)
    return {**copies, "store": store}


def _jaccard(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> tuple[float, float]:
    """Pooled Jaccard and its chance level, recomputed with numpy."""
    inter = union = kept_a = kept_b = total = 0
    for name in a:
        x, y = a[name].astype(bool), b[name].astype(bool)
        inter += int((x & y).sum())
        union += int((x | y).sum())
        kept_a, kept_b, total = kept_a + int(x.sum()), kept_b + int(y.sum()), total + x.size
    p, q = kept_a / total, kept_b / total
    return inter / union, p * q / (p + q - p * q)


def _mask(run_dir: Path, t: int, r: int) -> dict[str, np.ndarray]:
    return load_file(str(run_dir / f"trial-{t}" / f"round-{r}" / "mask.safetensors"))


def _row(md: str, first_cells: str) -> list[str]:
    """The cells of the markdown table row that starts with `first_cells`."""
    line = next(line for line in md.splitlines() if line.startswith(first_cells))
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _pm(values: list[float], scale: float = 100.0, digits: int = 2) -> str:
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{scale * mean:.{digits}f}"
    return f"{scale * mean:.{digits}f} ± {scale * statistics.stdev(values):.{digits}f}"


def test_markdown_lmc_table_matches_the_lmc_files(runs: dict[str, Path]) -> None:
    run_dir = runs["imp"]
    md = to_markdown(run_dir)
    assert "## Linear mode connectivity" in md and "| round | weights remaining %" in md
    files = {p: json.loads(p.read_text()) for p in run_dir.glob("trial-*/round-*/lmc*.json")}
    md = md[md.index("## Linear mode connectivity"):md.index("## Mask overlap")]
    assert len(files) == 2 * 3 + 1
    for r in range(3):
        starts = [rec for rec in files.values() if rec["round"] == r and rec["rewind_iteration"] is None]
        assert len(starts) == 2
        cells = _row(md, f"| {r} | ")  # the round-start row comes first in its round
        assert cells[2].startswith("round start")
        assert cells[3] == _pm([rec["barrier"] for rec in starts])
        stable = sum(rec["stable"] for rec in starts)
        assert cells[4] == f"{stable}/2"
        assert cells[6] == "2"
    (k0,) = [rec for rec in files.values() if rec["rewind_iteration"] == 0]
    assert k0["round"] == 1 and k0["trial"] == 1
    line = next(line for line in md.splitlines() if line.startswith("| 1 |") and "| k=0 |" in line)
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    assert cells[3] == f"{100 * k0['barrier']:.2f}"
    assert cells[4] == ("yes" if k0["stable"] else "no") and cells[6] == "1"


def test_markdown_overlap_tables_match_numpy(runs: dict[str, Path]) -> None:
    run_dir = runs["imp"]
    md = to_markdown(run_dir)
    md = md[md.index("## Mask overlap"):]
    for a, b in ((0, 1), (1, 2)):
        cells = _row(md, f"| {a}→{b} |")
        values = [_jaccard(_mask(run_dir, t, a), _mask(run_dir, t, b)) for t in range(2)]
        assert [float(c) for c in cells[2:4]] == pytest.approx([v for v, _ in values], abs=6e-5)
        assert float(cells[5].split(" ± ")[0]) == pytest.approx(statistics.fmean(c for _, c in values), abs=6e-5)
    section = md[md.index("Between trials"):]
    for r in range(3):
        jac, chance = _jaccard(_mask(run_dir, 0, r), _mask(run_dir, 1, r))
        cells = _row(section, f"| {r} |")
        assert float(cells[2]) == pytest.approx(jac, abs=6e-5)
        assert float(cells[3]) == pytest.approx(chance, abs=6e-5)
        assert cells[4] == "1"
    # different seeds prune differently: across trials the overlap is below 1 after round 0
    assert float(_row(section, "| 2 |")[2]) < 0.99


def test_csv_and_json_carry_the_analysis(runs: dict[str, Path]) -> None:
    run_dir = runs["imp"]
    rows = list(csv.DictReader(io.StringIO(to_csv(run_dir))))
    assert len(rows) == 6
    for row in rows:
        result = json.loads((run_dir / f"trial-{row['trial']}" / f"round-{row['round']}" / "result.json").read_text())
        assert float(row["lmc_barrier"]) == pytest.approx(result["lmc_barrier"])
        assert row["lmc_stable"] == str(result["lmc_stable"])
    data = json.loads(to_json(run_dir))
    assert data["run_id"] == run_dir.name  # still summary.json at the top level
    assert len(data["lmc"]) == 7 and {rec["rewind_iteration"] for rec in data["lmc"]} == {None, 0}
    consecutive = data["mask_overlap"]["consecutive"]["0"]
    jac, _ = _jaccard(_mask(run_dir, 0, 1), _mask(run_dir, 0, 2))
    assert consecutive[1]["rounds"] == [1, 2] and consecutive[1]["all"] == pytest.approx(jac)
    # a run without the LMC option keeps its old columns
    sm_header = to_csv(runs["supermask"]).splitlines()[0].split(",")
    assert "lmc_barrier" not in sm_header and sm_header[-2:] == ["expected_mask_accuracy", "sampled_mask_accuracy"]


def test_supermask_markdown_has_expected_and_sampled_columns(runs: dict[str, Path]) -> None:
    run_dir = runs["supermask"]
    md = to_markdown(run_dir)
    header = _row(md, "| round | weights remaining (trainable) %")
    assert header[-3:] == ["expected mask acc %", "sampled mask acc %", "n"]
    assert "mask training: supermask" in md and "## Linear mode connectivity" not in md
    for r in range(3):
        result = json.loads((run_dir / "trial-0" / f"round-{r}" / "result.json").read_text())
        cells = _row(md, f"| {r} | ")  # the curve table comes first
        assert cells[-3] == f"{100 * result['expected_mask_accuracy']:.2f}"
        assert cells[-2] == f"{100 * result['sampled_mask_accuracy']:.2f}"
    assert "## Mask overlap" in md  # the learned masks of consecutive segments


def test_group_markdown_has_the_overlap_matrix(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    preset = tmp_path / "fast.toml"
    preset.write_text(FAST_PRESET.replace('iterations = 60', 'iterations = 40'))
    store = tmp_path / "runs"
    assert main(["run", str(preset), "--runs-dir", str(store), "--quiet",
                 "--sweep", "prune.criterion=large_final,random,movement"]) == 0
    (group,) = (store / "groups").iterdir()
    members = [Path(m["run_dir"]) for m in json.loads((group / "group.json").read_text())["runs"]]
    md = export_group(group, "md", "-")
    assert md.count("| done |") == 3  # the group table is as before
    assert "Mask overlap between the runs at round 2" in md
    for i, a in enumerate(members):
        label = json.loads((group / "group.json").read_text())["runs"][i]["swept"]["prune.criterion"]
        cells = _row(md, f"| {i + 1} | criterion={label} |")
        for j, b in enumerate(members):
            if i == j:
                assert cells[3 + j] == "1"
                continue
            jac, chance = _jaccard(_mask(a, 0, 2), _mask(b, 0, 2))
            value, bracket = cells[3 + j].split(" (")
            assert float(value) == pytest.approx(jac, abs=6e-5)
            assert float(bracket.rstrip(")")) == pytest.approx(chance, abs=6e-5)
    data = json.loads(export_group(group, "json", "-"))
    assert data["mask_overlap"]["round"] == 2 and len(data["mask_overlap"]["matrix"]) == 3
