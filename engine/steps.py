"""Training lengths written as "500it", "2ep" or a plain integer (iterations).

Papers state schedules in epochs (ResNet-20: 160 epochs, drops at 80 and 120) while the
engine counts iterations; keeping the unit in the config lets a preset read like the paper
and resolves to iterations only once the dataset (and so the epoch length) is known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_STEP = re.compile(r"^\s*(\d{1,13})\s*(it|ep)?\s*$")
MAX_COUNT = 10 ** 12  # a trillion iterations or epochs: anything longer is a typo


def _short(value: object) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int too long to print
        text = "this value"
    return text if len(text) <= 40 else text[:37] + "..."


class StepError(ValueError):
    """A length that is not a non-negative count of iterations or epochs."""


@dataclass(frozen=True)
class Step:
    """A non-negative length in iterations or epochs."""

    count: int
    unit: str = "it"

    @classmethod
    def parse(cls, value: int | str | Step) -> Step:
        """Accepts 500, "500", "500it" or "2ep"; anything else raises StepError."""
        if isinstance(value, Step):
            return value
        if isinstance(value, bool):
            raise StepError(f"{value!r} is not a length")
        if isinstance(value, int):
            if value < 0:
                raise StepError("a length cannot be negative")
            if value > MAX_COUNT:
                raise StepError(f"at most {MAX_COUNT}")
            return cls(value, "it")
        if isinstance(value, str):
            match = _STEP.match(value)
            if match and int(match.group(1)) <= MAX_COUNT:
                return cls(int(match.group(1)), match.group(2) or "it")
        raise StepError(f"{_short(value)} is not a length: use an integer of iterations, \"500it\" or \"2ep\"")

    def iterations(self, iterations_per_epoch: int) -> int:
        """The length in iterations for an epoch of `iterations_per_epoch` steps."""
        return self.count * iterations_per_epoch if self.unit == "ep" else self.count

    def __str__(self) -> str:
        return f"{self.count}{self.unit}"


def as_config_value(value: int | str | Step) -> int | str:
    """The form written back to TOML: plain integers stay integers, epochs stay "Nep"."""
    step = Step.parse(value)
    return step.count if step.unit == "it" else str(step)
