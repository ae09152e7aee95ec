"""Sweeps: the cross product of `--sweep key=v1,v2` options, run as one group.

Every combination is validated before any run dir is written, so a typo in the fourth value
does not leave three orphan runs. A group is a folder `<runs-dir>/groups/<group-id>/` with
group.json (the swept keys and the run dirs); each run also carries the group id in its
status.json, so the runs stay ordinary runs that any tool can read on its own.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import ConfigError, ExperimentConfig, all_keys, apply_overrides, from_dict, parse_value, read_toml
from engine.layout import GROUP, group_dir
from engine.store import read_group, write_json_atomic  # read_group: group.json, checked (engine/schema.py)


@dataclass(frozen=True)
class SweepAxis:
    key: str
    values: tuple[Any, ...]


def split_values(text: str) -> list[str]:
    """Splits on commas outside brackets, so `model.hidden=[100,100],[300,100]` gives two lists."""
    parts, depth, current = [], 0, []
    for char in text:
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts]


def parse_axis(option: str) -> SweepAxis:
    """One `--sweep key=v1,v2,...` option."""
    key, sep, text = option.partition("=")
    key = key.strip()
    if not sep or not key or not text.strip():
        raise ConfigError("--sweep", None, option, f"--sweep takes key=v1,v2,..., got {option!r}")
    if key not in all_keys():
        raise ConfigError("--sweep", key, text, f"unknown key; allowed: {', '.join(all_keys())}")
    values = split_values(text)
    if any(not v for v in values):
        raise ConfigError("--sweep", key, text, "empty value in the list")
    if len(set(values)) != len(values):
        raise ConfigError("--sweep", key, text, "a value is listed twice")
    return SweepAxis(key, tuple(values))


def expand(path: Path, overrides: list[str], axes: list[SweepAxis]) -> list[tuple[ExperimentConfig, dict[str, Any]]]:
    """(config, {swept key: value}) for every combination, all validated up front."""
    keys = [a.key for a in axes]
    if len(set(keys)) != len(keys):
        raise ConfigError("--sweep", None, keys, "each key may be swept only once")
    base = read_toml(path)
    out = []
    for combo in itertools.product(*(a.values for a in axes)):
        sets = [f"{k}={v}" for k, v in zip(keys, combo)]
        raw = apply_overrides(base, [*overrides, *sets])
        source = f"{path} with --sweep {' '.join(sets)}"
        out.append((from_dict(raw, source), {k: parse_value(v) for k, v in zip(keys, combo)}))
    return out


def create_group(runs_dir: Path, preset: str, axes: list[SweepAxis]) -> tuple[str, Path]:
    """A new group folder; the id reads like a run id."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    group_id = f"{stamp}-{preset}-sweep"
    folder = group_dir(runs_dir, group_id)
    suffix = 1
    while folder.exists():
        suffix += 1
        folder = group_dir(runs_dir, f"{group_id}-{suffix}")
    folder.mkdir(parents=True)
    write_json_atomic(folder / GROUP, {"group": folder.name, "preset": preset,
                                       "axes": {a.key: list(a.values) for a in axes}, "runs": []})
    return folder.name, folder


def add_run(folder: Path, run_dir: Path, swept: dict[str, Any]) -> None:
    group = read_group(folder)
    group["runs"].append({"run_dir": str(run_dir), "swept": swept})
    write_json_atomic(Path(folder) / GROUP, group)


def find_group(name_or_path: str | Path, runs_dir: Path) -> Path | None:
    """A group folder from its id or path, or None when it is not a group."""
    candidate = Path(name_or_path)
    for folder in (candidate, group_dir(runs_dir, str(name_or_path))):
        if (folder / GROUP).is_file():
            return folder
    return None


def group_json(folder: Path) -> str:
    return json.dumps(read_group(folder), indent=1) + "\n"
