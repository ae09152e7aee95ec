"""Starting and finishing a round in the run store, for IMP rounds and mask-training rounds alike.

Each experiment writes its own tensors (mask, start, final, scores...); what every round does
after that is here once: evals.json, result.json, the mid-round checkpoint cleared,
summary.json and status.json brought up to date, and the round_start / round_end events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch

from engine.config import ExperimentConfig
from engine.density import density_record, mask_fractions
from engine.planning import rounds_done
from engine.store import RunWriter, clear_checkpoint, write_json_atomic
from engine.summary import build_summary

__all__ = ["RoundStart", "Session", "finish_round", "start_round_event"]


class Session(Protocol):
    """What a round needs of its execution (engine/runner.py's RunSession)."""

    dir: Any
    config: ExperimentConfig
    writer: RunWriter
    emit: Callable[[dict[str, Any]], None]


class RoundStart:
    """A round's mask figures, computed once for its round_start event and its result.json."""

    def __init__(self, masks: dict[str, torch.Tensor], frozen: dict[str, torch.Tensor] | None):
        self.remaining, self.layers, self.kept, self.total = mask_fractions(masks)
        # weights_trainable / weights_nonzero / layers_nonzero (engine/density.py)
        self.density: dict[str, Any] = density_record(masks, frozen, self.remaining)

    def fields(self) -> dict[str, Any]:
        """The mask fields that open a round's result.json."""
        return {"weights_remaining": self.remaining, "layers": self.layers, "kept": self.kept, "total": self.total,
                **self.density}


def start_round_event(run: Session, t: int, r: int, start: RoundStart, **extra: Any) -> None:
    """The round_start event: the round's density (`extra` goes between the layers and the density fields)."""
    run.emit(run.writer.event("round_start", trial=t, round=r, weights_remaining=start.remaining, layers=start.layers,
                              **extra, **start.density))


def finish_round(run: Session, t: int, r: int, record: dict[str, Any], evals: list[dict[str, Any]]) -> None:
    """Round r of trial t done: its evals and result, then the run's summary, status and round_end event.

    The experiment has written the round's tensors before; result.json is written last but
    one (before the checkpoint is cleared), so a round with a result is a finished round.
    """
    layout = run.writer.layout
    write_json_atomic(layout.evals(t, r), evals)
    write_json_atomic(layout.result(t, r), record)
    clear_checkpoint(layout.round_dir(t, r))
    run.writer.summary(build_summary(run.dir, run.config, "running"))
    run.writer.status(rounds_done=rounds_done(run.dir, run.config))
    run.emit(run.writer.event("round_end", trial=t, **record))
