"""One config value checked against its declared type, and the error every config check raises.

Split out of engine/config.py so the rules for a single value (what `true`, "auto", "2ep" or a
table of rates mean for each annotation, and the one-line ConfigError that names source, key,
value and what is allowed) are one unit, below the dataclasses that declare the types:
engine/config.py imports this module, nothing here imports engine/config.py (no cycle).
"""

from __future__ import annotations

import math
import tomllib
import typing
from typing import Any

from engine.steps import Step, StepError

__all__ = ["LAYER_KINDS", "PARALLEL_TRIALS", "AutoBool", "AutoFloat", "AutoInt", "ConfigError", "clip",
           "coerce_value", "parse_value"]

LAYER_KINDS = ("conv", "fc", "output")
# parallel_trials: "auto" (batched on a GPU for small models, see engine/batched.py), true or false.
PARALLEL_TRIALS = ("auto", "true", "false")
AutoBool = bool | str
# A number or "auto" (the experiment's own value; see engine/recipes.py).
AutoFloat = float | str
# threads: "auto" (engine/threads.py: from the model's size, the free cores and live runs) or a count.
AutoInt = int | str
MAX_TEXT = 2000  # longest string a config key takes (a description is one line)


class ConfigError(ValueError):
    """Bad configuration input; the message is meant to be shown to the user as it is."""

    def __init__(self, source: str, key: str | None, value: Any, allowed: str):
        self.source, self.key, self.value, self.allowed = source, key, value, allowed
        where = f"{clip(source)}: " if source else ""
        if key is None:
            message = f"{where}{allowed}"
        else:
            message = f"{where}{clip(key)} = {_clip_repr(value)} is not allowed; {allowed}"
        super().__init__(" ".join(message.splitlines()))  # always one line


def clip(text: str, limit: int = 200) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _clip_repr(value: Any, limit: int = 80) -> str:
    """repr for messages: short, and safe for ints too long to print (Python refuses > 4300 digits)."""
    try:
        text = repr(value)
    except ValueError:
        return "<an integer of thousands of digits>"
    return clip(text, limit)


def _type_name(tp: Any) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            Step: "a length (integer iterations, \"500it\" or \"2ep\")"}.get(tp, str(tp))


def coerce_value(source: str, key: str, value: Any, tp: Any) -> Any:
    """Checks one value against its declared type; ints are accepted where floats are."""
    origin = typing.get_origin(tp)
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(source, key, value, f"expected a list of {_type_name(item)}s")
        return [coerce_value(source, f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(source, key, value, "expected a table like { conv = 0.1, fc = 0.2, output = 0.1 }")
        out = {}
        for kind, rate in value.items():
            if kind not in LAYER_KINDS:
                raise ConfigError(source, f"{key}.{kind}", rate, f"layer kinds are {', '.join(LAYER_KINDS)}")
            out[kind] = coerce_value(source, f"{key}.{kind}", rate, float)
        return out
    if tp == AutoBool:  # true | false | "auto" (also the strings "true" / "false" of a text field)
        if isinstance(value, str) and value.strip().lower() in PARALLEL_TRIALS:
            value = {"auto": "auto", "true": True, "false": False}[value.strip().lower()]
        if isinstance(value, bool) or value == "auto":
            return value
        raise ConfigError(source, key, value, "allowed: auto, true, false")
    if tp == AutoFloat:  # a number or "auto"
        if value == "auto" or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            return value if value == "auto" else float(value)
        raise ConfigError(source, key, value, "expected a number or \"auto\"")
    if tp == AutoInt:  # "auto" | a positive count (also as text, from a field of the app)
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        raise ConfigError(source, key, value, "allowed: auto, or a number of threads of at least 1")
    if tp is Step:
        try:
            return Step.parse(value)
        except StepError as exc:
            raise ConfigError(source, key, value, str(exc)) from None
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > 2 ** 1023:
            raise ConfigError(source, key, value, "a finite number (this one does not fit a float)")
        return float(value)
    if tp is int and isinstance(value, bool) or not isinstance(value, tp):
        raise ConfigError(source, key, value, f"expected {_type_name(tp)}")
    if tp is float and not math.isfinite(value):
        raise ConfigError(source, key, value, "must be a finite number (not nan or inf)")
    if tp is str and len(value) > MAX_TEXT:
        raise ConfigError(source, key, value[:40] + "...", f"at most {MAX_TEXT} characters")
    return value


def parse_value(text: str) -> Any:
    """A `--set` value: TOML syntax when it parses (numbers, lists, booleans), else a bare string."""
    if "\n" in text or "\r" in text:
        return text  # one value per --set: a newline must not start a second TOML key
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError, ValueError):
        return text
