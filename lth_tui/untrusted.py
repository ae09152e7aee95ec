"""Writing exports next to files from other people: no symlink is followed, no text escapes.

A run dir copied from a colleague may hold `export.md -> ~/.bashrc`, or a description with
a newline and a shell line in it. Exports are therefore written into a fresh temp file
(O_CREAT | O_EXCL | O_NOFOLLOW) beside the target and renamed over it (a rename replaces a
link, never what it points to), a target that is a symlink or a folder is refused, and text
taken from a run dir is flattened to one line with its Markdown and HTML made inert.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from engine.store import replace_atomically

# Characters that start Markdown or HTML markup a report must not grow from a run dir's text:
# links and images ([ ]), code (`), HTML (< > &), table cells (|), escapes (\).
_MD_SPECIAL = {"\\": "\\\\", "`": "\\`", "[": "\\[", "]": "\\]", "|": "\\|", "<": "&lt;", ">": "&gt;", "&": "&amp;"}
MAX_TEXT = 500


class UnsafeTarget(ValueError):
    """An export target that would be written through a link, onto a folder, or into nowhere."""


def one_line(value: Any, limit: int = MAX_TEXT) -> str:
    """Text from a file as one printable line (newlines and control characters become spaces)."""
    text = "".join(c if c.isprintable() else " " for c in str(value))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def md_text(value: Any, limit: int = MAX_TEXT) -> str:
    """Text from a run dir for a Markdown report: one line, markup characters escaped."""
    text = "".join(_MD_SPECIAL.get(c, c) for c in one_line(value, limit))
    return "\\" + text if text[:1] in ("#", "-", "+", "=", ">", "*") else text


def csv_text(value: Any) -> Any:
    """A CSV cell: text that a spreadsheet would run as a formula gets a leading quote."""
    if isinstance(value, str):
        value = one_line(value)
        if value[:1] in ("=", "+", "-", "@"):
            return "'" + value
    return value


def finite(value: Any) -> Any:
    """A JSON-like value with NaN and infinities replaced by None (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def check_target(target: Path) -> Path:
    """The target, when an export may be written there; UnsafeTarget says why not."""
    target = Path(target)
    if os.path.islink(target):
        raise UnsafeTarget(f"{target} is a symlink; exports never write through links (remove it, or give -o FILE)")
    if target.is_dir():
        raise UnsafeTarget(f"{target} is a folder; give a file name, e.g. -o {target / 'export.md'}")
    if target.exists() and not target.is_file():
        raise UnsafeTarget(f"{target} is not a regular file")
    if not target.parent.is_dir():
        raise UnsafeTarget(f"cannot write {target}: the folder {target.parent} does not exist")
    return target


def write_file(target: Path, data: str | bytes) -> Path:
    """Writes `data` to `target` atomically, never through a symlink (see the module doc)."""
    target = check_target(Path(target))
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        replace_atomically(target, payload)
    except OSError as exc:
        raise UnsafeTarget(f"cannot write {target}: {exc.strerror}") from None
    return target
