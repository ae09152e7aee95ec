"""Where training batches come from: the epoch order, and host-held data fed to a GPU.

The engine keeps a dataset on the training device and batches by index (no DataLoader, no
per-example Python). Batch `step` of a round is always the slice
`order(epoch)[position * batch:(position + 1) * batch]` with `epoch, position =
divmod(step, per_epoch)`, where `order(epoch)` is a CPU permutation drawn from a generator
keyed by (seed, "order", epoch): the same batch for the same step whichever trainer
(engine/training.py, engine/batched.py) asks, and after any resume.

A training split that does not fit on the GPU (`place_dataset` decides) stays in pinned host
memory: each batch is gathered on the CPU into one of two pinned buffers, copied to the GPU
on a side stream without blocking, and the next batch is staged while the current one
trains. On a CPU-only machine the same code runs without pinning or streams.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from engine.datasets import Dataset

# Fraction of the GPU's free memory a dataset may take and still be placed on the device.
DEVICE_FRACTION = 0.5


def dataset_bytes(data: Dataset) -> int:
    return sum(t.numel() * t.element_size() for t in
               (data.train_x, data.train_y, data.val_x, data.val_y, data.test_x, data.test_y))


def place_dataset(data: Dataset, device: torch.device, budget_bytes: int | None = None) -> Dataset:
    """The whole dataset on `device` when it fits, else the training split pinned on the host.

    `budget_bytes` defaults to DEVICE_FRACTION of the GPU's free memory (no limit on a CPU).
    Validation and test splits always go to the device: evaluation reads them whole.
    """
    device = torch.device(device)
    if budget_bytes is None:
        if device.type != "cuda":
            return data.to(device)
        free, _ = torch.cuda.mem_get_info(device)
        budget_bytes = int(free * DEVICE_FRACTION)
    if dataset_bytes(data) <= budget_bytes:
        return data.to(device)
    train_x, train_y = data.train_x.cpu(), data.train_y.cpu()
    if device.type == "cuda":
        train_x, train_y = train_x.pin_memory(), train_y.pin_memory()
    return dataclasses.replace(data, train_x=train_x, train_y=train_y, val_x=data.val_x.to(device),
                               val_y=data.val_y.to(device), test_x=data.test_x.to(device),
                               test_y=data.test_y.to(device))


class Batches:
    """`batches(step)` -> (x, y) of training step `step`, on `device`.

    `order(epoch)` returns the CPU permutation of the training split for that epoch.
    """

    def __init__(self, data: Dataset, order: Callable[[int], torch.Tensor], batch: int, per_epoch: int,
                 device: torch.device, host: bool | None = None):
        self.data, self.order_fn, self.batch, self.per_epoch = data, order, batch, per_epoch
        self.device = torch.device(device)
        # host: the split is in host memory and the model elsewhere (or forced, to test the path on a CPU)
        self.host = host if host is not None else (data.train_x.device.type == "cpu" and self.device.type != "cpu")
        self._epoch = -1
        self._order: torch.Tensor | None = None
        if self.host:
            self._stager = _HostStager(data, batch, self.device)

    def index(self, step: int) -> torch.Tensor:
        """The example indices of step `step` (on the data's device)."""
        epoch, position = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            order = self.order_fn(epoch)
            self._order = order if self.host else order.to(self.data.train_x.device)
            self._epoch = epoch
        return self._order[position * self.batch:(position + 1) * self.batch]

    def __call__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.host:
            return self._stager.get(step, self.index)
        index = self.index(step)
        return self.data.train_x[index], self.data.train_y[index]


class _HostStager:
    """Double-buffered pinned gathers and asynchronous copies; stages step + 1 with step."""

    def __init__(self, data: Dataset, batch: int, device: torch.device):
        self.data, self.device = data, device
        self.cuda = device.type == "cuda"
        pin = self.cuda and torch.cuda.is_available()
        self.buffers = [(torch.empty((batch, *data.train_x.shape[1:]), dtype=data.train_x.dtype, pin_memory=pin),
                         torch.empty((batch,), dtype=data.train_y.dtype, pin_memory=pin)) for _ in range(2)]
        self.copied: list[torch.cuda.Event | None] = [None, None]
        self.stream = torch.cuda.Stream(device) if self.cuda else None
        self.staged: dict[int, tuple[torch.Tensor, torch.Tensor, object]] = {}

    def _stage(self, step: int, index_of: Callable[[int], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, object]:
        index = index_of(step)
        slot = step % 2
        if self.copied[slot] is not None:
            self.copied[slot].synchronize()  # the copy that last read this buffer is done
        bx, by = self.buffers[slot]
        k = len(index)
        torch.index_select(self.data.train_x, 0, index, out=bx[:k])
        torch.index_select(self.data.train_y, 0, index, out=by[:k])
        if not self.cuda:
            return bx[:k].clone(), by[:k].clone(), None
        with torch.cuda.stream(self.stream):
            x = bx[:k].to(self.device, non_blocking=True)
            y = by[:k].to(self.device, non_blocking=True)
            event = torch.cuda.Event()
            event.record(self.stream)
        self.copied[slot] = event
        return x, y, event

    def get(self, step: int, index_of: Callable[[int], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y, event = self.staged.pop(step, None) or self._stage(step, index_of)
        self.staged.clear()
        self.staged[step + 1] = self._stage(step + 1, index_of)
        if event is not None:
            current = torch.cuda.current_stream(self.device)
            current.wait_event(event)
            x.record_stream(current)
            y.record_stream(current)
        return x, y
