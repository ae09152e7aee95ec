"""Finding presets: ./presets, then ~/.config/lth-tui/presets, then the ones shipped in the wheel.

A preset is just a config TOML file with a name and a one-line description; this module only
locates and lists them, loading goes through engine.config so the rules are the same as for
any file given on the command line.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from engine.config import ConfigError, ExperimentConfig, load_config


def builtin_dir() -> Path:
    """The presets shipped with the package (the repo's presets/ in a source checkout).

    An installed wheel maps presets/ to lth_tui/builtin_presets; a checkout run from source
    or an editable install finds the repo folder beside the package.
    """
    installed = Path(__file__).resolve().parent / "builtin_presets"
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parent.parent / "presets"


def user_dir() -> Path:
    return Path.home() / ".config" / "lth-tui" / "presets"


def search_dirs() -> list[Path]:
    """Where presets are looked up, first match wins."""
    dirs = [Path.cwd() / "presets", user_dir(), builtin_dir()]
    unique: list[Path] = []
    for d in dirs:
        if d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


@dataclass
class PresetInfo:
    name: str
    description: str
    path: Path
    source: str
    error: str = ""


def list_presets() -> list[PresetInfo]:
    """Every preset by name (earlier directories shadow later ones); broken files say why."""
    found: dict[str, PresetInfo] = {}
    for directory, source in zip(search_dirs(), ("project", "user", "builtin")):
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.toml")):
            if path.stem in found:
                continue
            try:
                raw = tomllib.loads(path.read_text(encoding="utf-8"))
                info = PresetInfo(path.stem, str(raw.get("description", "")), path, source)
            except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
                info = PresetInfo(path.stem, "", path, source, error=f"unreadable: {exc}")
            found[path.stem] = info
    return sorted(found.values(), key=lambda p: p.name)


def find_preset(name_or_path: str) -> Path:
    """A preset name or a path to a TOML file; unknown names list the known ones."""
    shown = name_or_path if len(name_or_path) <= 80 else name_or_path[:77] + "..."
    try:
        candidate = Path(name_or_path).expanduser()
        if candidate.suffix == ".toml" or candidate.is_file() or "/" in name_or_path:
            if not candidate.is_file():
                raise ConfigError(shown, None, None, f"file not found: {shown}")
            return candidate
        for directory in search_dirs():
            path = directory / f"{name_or_path}.toml"
            if path.is_file():
                return path
    except (OSError, ValueError) as exc:  # a name too long for the file system, a NUL byte
        if isinstance(exc, ConfigError):
            raise
        reason = getattr(exc, "strerror", None) or exc
        raise ConfigError("preset", None, None, f"no preset named {shown!r} ({reason})") from None
    names = ", ".join(p.name for p in list_presets()) or "(none found)"
    raise ConfigError("preset", None, None,
                      f"no preset named {shown!r}; presets: {names}; or give a path to a .toml file")


def load_preset(name_or_path: str, overrides: list[str] | None = None) -> tuple[ExperimentConfig, str]:
    """(validated config, preset name used in the run id)."""
    path = find_preset(name_or_path)
    return load_config(path, overrides), path.stem
