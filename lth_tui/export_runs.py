"""Several runs exported side by side as one Markdown or CSV table, as a sweep group is.

The marked runs of the Runs screen are not a sweep, so their "axes" are the config keys whose
values differ between them (lth_tui.run_labels), and each run's row carries its own values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.store import read_config, read_status
from lth_tui.export import (
    ExportError,
    check_export_target,
    refuse_overwrite,
    side_by_side_csv,
    side_by_side_markdown,
    to_png,
)
from lth_tui.run_labels import differing_keys, flatten, run_labels
from lth_tui.untrusted import UnsafeTarget, write_file

__all__ = ["export_runs", "runs_group"]


def runs_group(run_dirs: list[Path]) -> dict[str, Any]:
    """A group.json-shaped dict of the runs: axes = the keys whose values differ between them."""
    configs = []
    for run_dir in run_dirs:
        try:
            configs.append(read_config(run_dir).to_dict())
        except Exception:  # a damaged member still gets its row (marked damaged by the table)
            configs.append({})
    keys = differing_keys(configs)
    flat = [flatten(c) for c in configs]
    axes = {key: sorted({str(f.get(key, "–")) for f in flat}) for key in keys}
    presets = []
    for run_dir in run_dirs:
        try:
            presets.append(str(read_status(run_dir).get("preset") or ""))
        except Exception:
            presets.append("")
    return {
        "title": f"# {len(run_dirs)} runs side by side",
        "group": "",
        "preset": ", ".join(sorted({p for p in presets if p})),
        "axes_word": "differing",
        "axes": axes,
        "runs": [{"run_dir": str(d), "swept": {k: f.get(k, "–") for k in keys}, "label": label}
                 for d, f, label in zip(run_dirs, flat, run_labels([(d.name, c) for d, c in zip(run_dirs, configs)]))],
    }


def export_runs(run_dirs: list[Path], fmt: str, output: Path, overwrite: bool = True) -> Path:
    """md and csv: one table of all the runs; png: their curves on one plot."""
    if fmt not in ("md", "csv", "png"):
        raise ExportError(f"{fmt} exports one run at a time; several runs export as md, csv or png")
    target = check_export_target(Path(output))  # never through a symlink, never into a folder
    refuse_overwrite(target, overwrite)
    if fmt == "png":
        to_png(run_dirs, target)
        return target
    group = runs_group(run_dirs)
    text = side_by_side_markdown(group) if fmt == "md" else side_by_side_csv(group)
    try:
        return write_file(target, text)
    except UnsafeTarget as exc:
        raise ExportError(str(exc)) from None
