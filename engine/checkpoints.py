"""Mid-round checkpoints of the training loop: one file format for every experiment.

A checkpoint is the task's own tensors (the model's state, or mask training's scores and
buffers), the optimizer's state (engine/optim.py's packing), the loop's `Progress` (step,
evals, loss accumulated since the last evaluation, seconds) and the states of the random
generators the round draws from, so a resumed round replays the draws of one never stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from engine.callbacks import Progress
from engine.optim import pack_optimizer, unpack_optimizer
from engine.store import StoreError, load_checkpoint, save_checkpoint

__all__ = ["LoadedCheckpoint", "misfit", "read_round_checkpoint", "write_round_checkpoint"]


def write_round_checkpoint(directory: Path, tensors: dict[str, torch.Tensor], optimizer_state: dict[str, Any],
                           generators: dict[str, torch.Generator], progress: Progress, loss_sum: torch.Tensor,
                           evals: list[dict[str, Any]]) -> None:
    """`tensors` (already prefixed), the optimizer, `generators` (as loop.<name>) and the progress;
    `loss_sum` and `evals` are this checkpoint's own (one trial's when trials train together)."""
    opt_tensors, opt_meta = pack_optimizer(optimizer_state)
    out = {**tensors, **opt_tensors, "loop.loss_sum": loss_sum.reshape(1)}
    out.update({f"loop.{name}": g.get_state() for name, g in generators.items()})
    save_checkpoint(directory, out, {"step": progress.step, "evals": evals, "loss_count": progress.loss_count,
                                     "seconds": progress.seconds(), **opt_meta})


class LoadedCheckpoint:
    """A checkpoint read back: tensors by prefix, the optimizer's state_dict and the progress."""

    def __init__(self, directory: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]):
        self.directory, self.tensors, self.meta = directory, tensors, meta

    def prefixed(self, prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix):]: v for k, v in self.tensors.items() if k.startswith(prefix)}

    def optimizer_state(self) -> dict[str, Any]:
        return unpack_optimizer(self.tensors, self.meta)

    def restore_generators(self, generators: dict[str, torch.Generator]) -> None:
        for name, g in generators.items():
            g.set_state(self.tensors[f"loop.{name}"])

    def progress(self, device: torch.device) -> Progress:
        return Progress(step=int(self.meta["step"]), evals=list(self.meta["evals"]),
                        loss_sum=self.tensors["loop.loss_sum"].to(device).reshape(()),
                        loss_count=int(self.meta["loss_count"]), seconds_before=float(self.meta["seconds"]))


def read_round_checkpoint(directory: Path | None) -> LoadedCheckpoint | None:
    if directory is None:
        return None
    checkpoint = load_checkpoint(directory)
    return None if checkpoint is None else LoadedCheckpoint(directory, *checkpoint)


def misfit(directory: Path, exc: Exception) -> StoreError:
    """The error for a checkpoint that does not fit the run (another config, a damaged file)."""
    where = f"{directory.parent.name}/{directory.name}"
    return StoreError(f"{where}/checkpoint.safetensors does not fit this run ({type(exc).__name__}: "
                      f"{str(exc)[:200]}); delete {where}/checkpoint.* to restart that round from its start")


MISFIT_ERRORS = (KeyError, TypeError, ValueError, RuntimeError, AttributeError)
"""What loading a checkpoint that does not fit raises (turned into `misfit`)."""
