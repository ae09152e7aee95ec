"""Run ids as every command takes them: a path, a whole id, a unique prefix of one, the 6-hex
config-hash suffix, or the short label the app shows (`072208-41d024`).

One resolver for `export`, `resume`, `lmc` and `stop`, so `lth-tui runs` and the app's labels
name a run the same way everywhere. It reads directory names only (no torch, no JSON), so an
error path stays instant.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from engine.layout import RunLayout

__all__ = ["RunNotFound", "resolve_run", "run_ids", "short_id"]

def short_id(run_id: str) -> str:
    """The run id without its preset slug, where the preset is shown beside it: `0101-120000-4a4c7f`
    (month-day, time, hash; `resolve_run` takes it). An id of another shape is kept whole."""
    parts = run_id.split("-")
    if len(parts) >= 4 and parts[0].isdigit() and parts[1].isdigit():
        tail = parts[-1] if len(parts[-1]) == 6 else f"{parts[-2]}-{parts[-1]}"
        return f"{parts[0][4:]}-{parts[1]}-{tail}"
    return run_id


class RunNotFound(ValueError):
    """No run, or more than one, answers to the given name; the message lists candidates."""


def _is_run_dir(path: Path) -> bool:
    return path.is_dir() and RunLayout(path).looks_like_run()


def run_ids(runs_dir: Path) -> list[str]:
    """The names of the run dirs directly under runs_dir, newest first."""
    try:
        entries = list(Path(runs_dir).iterdir())
    except OSError:
        return []
    return sorted((p.name for p in entries if not p.name.startswith(".") and _is_run_dir(p)), reverse=True)


def _matches(name: str, ids: list[str]) -> list[str]:
    """Candidates for `name`, from the most to the least specific rule that finds any."""
    if name in ids:
        return [name]
    rules = (
        lambda i: i.startswith(name),  # a unique prefix: 20261201-0722
        lambda i: i.endswith("-" + name),  # the hash suffix, or preset-hash
        lambda i: _subsequence(name.split("-"), i.split("-")),  # a short label: 072208-41d024
    )
    for rule in rules:
        found = [i for i in ids if rule(i)]
        if found:
            return found
    return []


def _subsequence(parts: list[str], of: list[str]) -> bool:
    if len(parts) < 2 or not all(parts):
        return False
    rest = iter(of)
    return all(any(p == q for q in rest) for p in parts)


def resolve_run(text: str | Path, runs_dir: Path) -> Path:
    """The run dir `text` names: an existing directory as given, else a run of runs_dir.

    Raises RunNotFound naming runs_dir and the close matches (or the ambiguous ones).
    """
    given = str(text)
    path = Path(given).expanduser()
    if path.is_dir():
        return path
    runs_dir = Path(runs_dir).expanduser()
    name = given.rstrip("/")
    if "/" in name:
        raise RunNotFound(f"{given}: no such run dir")
    ids = run_ids(runs_dir)
    found = _matches(name, ids) if name else []
    if len(found) == 1:
        return runs_dir / found[0]
    if found:
        shown = ", ".join(found[:6]) + (f" and {len(found) - 6} more" if len(found) > 6 else "")
        raise RunNotFound(f"{given!r} matches {len(found)} runs in {runs_dir}: {shown}; give more of the id")
    close = [i for i in ids if name and name in i] or difflib.get_close_matches(name, ids, n=5, cutoff=0.5)
    hint = f"; close matches: {', '.join(close[:5])}" if close else ("; `lth-tui runs` lists them" if ids else "")
    where = f"{runs_dir}" if ids else f"{runs_dir} (no runs there)"
    raise RunNotFound(f"no run {given!r} in {where}{hint}")
