"""How far a run is, counted from its events, whichever order its trials train in.

Trials run one after another (trial-major) or as one batched model (round-major: every trial's
round r at once, see engine/batched.py). A position formula like (trial·rounds + round)·its
fits only the first, so the CLI bar, the sweep bars and the app's progress line all count the
same way here instead: whole rounds finished, plus the latest iteration of each round in flight.
"""

from __future__ import annotations

from typing import Any


class Completion:
    """Training iterations done out of `total`, fed every event of events.jsonl in order."""

    def __init__(self) -> None:
        self.iterations = 0
        self.rounds = 0
        self.trials = 0
        self.finished_rounds = 0
        self.current: dict[tuple[int, int], int] = {}

    @property
    def total(self) -> int:
        return self.iterations * self.rounds * self.trials

    @property
    def done(self) -> int:
        return min(self.total, self.finished_rounds * self.iterations + sum(self.current.values()))

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0

    def feed(self, event: dict[str, Any]) -> bool:
        """Takes one event; True when it moved the count."""
        kind = event.get("event")
        if kind == "run_start":
            self.iterations = int(event.get("iterations") or 0)
            self.rounds = int(event.get("rounds") or 0)
            self.trials = int(event.get("trials") or 0)
            # rounds_done counts (trial, round) pairs on disk, the same unit as finished_rounds
            self.finished_rounds = int(event.get("rounds_done") or 0)
            self.current.clear()
            return True
        key = (event.get("trial"), event.get("round"))
        if None in key:
            return False
        if kind == "eval":
            # Late-rewound rounds report iterations k..T; a round never counts for more than one.
            self.current[key] = max(0, min(self.iterations, int(event.get("iteration") or 0)))
            return True
        if kind == "round_end":
            self.current.pop(key, None)
            self.finished_rounds += 1
            return True
        return False
