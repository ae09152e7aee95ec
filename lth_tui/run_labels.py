"""Labels for runs shown together: a short id that is unique among them plus what differs.

Two runs of one config share the 6-hex hash, so a legend of hashes can show two identical
entries; the short id grows (start time, then date) until it tells the shown runs apart, and
the rest of the label names the config keys whose values differ between them (criterion,
mask-1, mask-0, seed, ...). A run shown alone is described by its criterion and actions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine.config import HASH_NEUTRAL_DEFAULTS, MACHINE_KEYS
from lth_tui.run_ids import short_id

__all__ = ["describe", "differing_keys", "flatten", "run_labels", "short_ids"]

IGNORED = {"name", "description", *MACHINE_KEYS}
FIRST = ("experiment", "prune.criterion", "prune.mask1", "prune.mask0", "seed", "trials")
MAX_KEYS = 3


def flatten(config: Mapping[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """{"prune": {"rate": {"fc": 0.2}}} -> {"prune.rate.fc": 0.2}; takes an ExperimentConfig too."""
    if config is not None and not isinstance(config, Mapping):
        config = config.to_dict() if hasattr(config, "to_dict") else {}  # a damaged summary's "config"
    out: dict[str, Any] = {}
    for key, value in (config or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def short_ids(run_ids: Sequence[str]) -> list[str]:
    """The hash suffix where it is unique among run_ids, else time-hash, else date-time-hash, else the id."""
    def forms(run_id: str) -> list[str]:
        parts = run_id.split("-")
        if len(parts) >= 4 and parts[0].isdigit() and parts[1].isdigit():
            return [parts[-1], f"{parts[1]}-{parts[-1]}", short_id(run_id), run_id]
        return [run_id if len(run_id) <= 16 else "…" + run_id[-12:], run_id]  # a renamed or copied dir

    candidates = [forms(r) for r in run_ids]
    out = []
    for own in candidates:
        for level, form in enumerate(own):
            clash = sum(1 for other in candidates if other[min(level, len(other) - 1)] == form)
            if clash == 1 or level == len(own) - 1:
                out.append(form)
                break
    return out


def _value(value: Any) -> str:
    """One short line: a value from someone else's run dir must not break a legend."""
    if isinstance(value, (list, tuple)):
        text = ",".join(_value(v) for v in value) or "[]"
    elif isinstance(value, float):
        text = f"{value:g}"
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= 40 else text[:39] + "…"


def _key_name(key: str) -> str:
    if key.startswith("prune.rate."):
        return key.removeprefix("prune.")
    return key.rpartition(".")[2]


def differing_keys(configs: Sequence[Mapping[str, Any] | None]) -> list[str]:
    """Dotted keys whose values are not the same in every config, the pruning names first."""
    flat = [flatten(c) for c in configs]
    keys = {k for f in flat for k in f} - IGNORED
    # a key added after a run was stored reads as its default there (as the config hash does)
    differ = [k for k in keys if len({repr(f.get(k, HASH_NEUTRAL_DEFAULTS.get(k))) for f in flat}) > 1]
    return sorted(differ, key=lambda k: (FIRST.index(k) if k in FIRST else len(FIRST), k))


def describe(config: Mapping[str, Any] | None) -> str:
    """One run on its own: criterion/mask1/mask0, or the mask-training experiment."""
    flat = flatten(config)
    experiment = flat.get("experiment", "imp")
    if experiment not in (None, "imp"):
        k = flat.get("supermask.k")
        return _value(experiment) + (f" k={_value(k)}" if experiment == "edge-popup" and k is not None else "")
    names = [flat.get(k) for k in ("prune.criterion", "prune.mask1", "prune.mask0")]
    return "/".join(_value(n) for n in names if n)


def run_labels(runs: Sequence[tuple[str, Mapping[str, Any] | None]]) -> list[str]:
    """Labels for (run id, config dict) pairs shown together, in their order."""
    ids = short_ids([run_id for run_id, _ in runs])
    if len(runs) == 1:
        text = describe(runs[0][1])
        return [f"{ids[0]} {text}".strip()]
    keys = differing_keys([config for _, config in runs])
    labels = []
    for short, (_, config) in zip(ids, runs):
        flat = flatten(config)
        items = []
        for key in keys[:MAX_KEYS]:
            value = _value(flat.get(key, "–"))
            items.append(value if key in ("prune.criterion", "experiment") else f"{_key_name(key)}={value}")
        if len(keys) > MAX_KEYS:
            items.append(f"+{len(keys) - MAX_KEYS}")
        labels.append(" ".join([short, *items]))
    return labels
