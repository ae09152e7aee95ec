"""The README stays true: every shipped preset in its table, described as what it is, and a
way to a CPU-only torch."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _preset_table() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index("| preset | what |"):]
    return [line for line in table.splitlines()[2:] if line.startswith("|")]


def test_the_preset_table_lists_every_shipped_preset() -> None:
    rows = _preset_table()
    named = {name.strip("` ") for row in rows for name in row.split("|")[1].split(",")}
    shipped = {p.stem for p in (ROOT / "presets").glob("*.toml")}
    assert shipped <= named, f"missing from the README: {sorted(shipped - named)}"


def test_digits_quick_is_described_as_what_it_is() -> None:
    config = tomllib.loads((ROOT / "presets" / "digits-quick.toml").read_text(encoding="utf-8"))
    widths = "-".join(str(w) for w in config["model"]["hidden"])
    row = next(r for r in _preset_table() if "`digits-quick`" in r)
    assert f"MLP {widths}" in row and f"MLP {widths}" in config["description"]
    assert "LeNet" not in config["description"]


def test_install_says_how_to_get_a_cpu_only_torch() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in text
