"""User settings: `~/.config/lth-tui/settings.toml`, the theme and a keymap (Posting-style).

    theme = "gruvbox"              # any theme of the command palette's "Change theme"
    [keymap]                       # binding id = keys (comma-separated); F1 lists the ids
    "setup.start" = "ctrl+g"
    "app.help" = "f1,question_mark"

The keymap goes through Textual's binding ids (every binding of the app has one), so a
remapped key works wherever the binding does. A file that cannot be used as a whole (TOML
syntax, an unknown key, theme or binding id, a key that is not a key) gives one line saying
what and where, and the defaults: a half-applied keymap would be harder to debug than none.
The theme picked in the app is written back; a file with errors is never overwritten.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w

KEYS = ("theme", "keymap")
_KEY = re.compile(r"^(?:[A-Za-z0-9_]+(?:\+[A-Za-z0-9_]+)*|[!-~])$")  # ctrl+r, f5, question_mark, ?


@dataclass
class Settings:
    """What the app applies: None / empty means Textual's default."""

    theme: str | None = None
    keymap: dict[str, str] = field(default_factory=dict)


def settings_path() -> Path:
    return Path.home() / ".config" / "lth-tui" / "settings.toml"


def binding_ids() -> set[str]:
    """Every binding id the app declares: on the app, its screens and its widgets (the App's own
    when lth_tui.app is loaded, as it is whenever the app reads its settings; importing it here
    would make settings and app import each other)."""
    from textual.binding import Binding
    from textual.dom import DOMNode

    import lth_tui.components.heatmap  # noqa: F401  (the widgets and screens that declare bindings)
    import lth_tui.components.plot  # noqa: F401
    import lth_tui.screens.analysis  # noqa: F401
    import lth_tui.screens.dialogs  # noqa: F401
    import lth_tui.screens.help  # noqa: F401
    import lth_tui.screens.run  # noqa: F401
    import lth_tui.screens.runs  # noqa: F401
    import lth_tui.screens.setup  # noqa: F401

    ids: set[str] = set()
    stack: list[type] = [DOMNode]
    seen: set[type] = set()
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        stack.extend(cls.__subclasses__())
        if cls.__module__.startswith("lth_tui.") and "BINDINGS" in vars(cls):
            ids |= {b.id for b in Binding.make_bindings(vars(cls)["BINDINGS"]) if b.id}
    return ids


def parse_settings(text: str, where: str, themes: Iterable[str], ids: Iterable[str]) -> Settings:
    """The settings of one file's text; ValueError with one line naming the file, key and allowed values."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{where}: TOML syntax error: {exc}") from None
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(KEYS)}")
    settings = Settings()
    theme = raw.get("theme")
    if theme is not None:
        themes = sorted(themes)
        if not isinstance(theme, str) or theme not in themes:
            raise ValueError(f"{where}: theme = {theme!r} is not a theme; allowed: {', '.join(themes)}")
        settings.theme = theme
    keymap = raw.get("keymap", {})
    if not isinstance(keymap, dict):
        raise ValueError(f"{where}: keymap must be a table of binding id = \"keys\", "
                         "e.g. [keymap] \"setup.start\" = \"ctrl+g\"")
    ids = set(ids)
    for binding_id, keys in keymap.items():
        if binding_id not in ids:
            raise ValueError(f"{where}: keymap.{binding_id}: no binding has this id; ids: {', '.join(sorted(ids))}")
        if not isinstance(keys, str) or not keys.strip() or not all(_KEY.match(k.strip()) for k in keys.split(",")):
            raise ValueError(f"{where}: keymap.{binding_id} = {keys!r} is not a key list; "
                             "use Textual key names separated by commas, e.g. \"ctrl+g\" or \"f6,question_mark\"")
        settings.keymap[binding_id] = ",".join(k.strip() for k in keys.split(","))
    return settings


def load_settings(themes: Iterable[str], ids: Iterable[str] | None = None,
                  path: Path | None = None) -> tuple[Settings, str | None]:
    """(settings, None), or (the defaults, the one-line reason) when the file cannot be used."""
    path = path or settings_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Settings(), None
    except (OSError, UnicodeDecodeError) as exc:
        return Settings(), f"{path}: cannot be read ({exc}); using the defaults"
    try:
        return parse_settings(text, str(path), themes, binding_ids() if ids is None else ids), None
    except ValueError as exc:
        return Settings(), f"{exc}; using the defaults"


def save_theme(theme: str, path: Path | None = None) -> Path:
    """Writes `theme` into the settings file, keeping its keymap (temp file + rename, no symlink followed)."""
    path = path or settings_path()
    raw: dict = {}
    if path.is_file():
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    raw["theme"] = theme
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            tomli_w.dump(raw, fh)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
