"""A `Dataset`: whole, normalised tensors with the fixed train / validation / test split.

Split out of engine/datasets.py so that every loader (the file readers in
engine/dataset_files.py, the generators in engine/dataset_generated.py) builds its result the
same way, from one module below them all: the registry imports the loaders, the loaders import
this, and nothing here imports either (no cycle).

- The validation split is carved out of the *training* split with a fixed generator (seed 0),
  so every trial and every run of one dataset early-stops on the same examples and the test
  split stays untouched whatever `val_size` is.
- `RandomCropFlip` is the batch augmentation a `Dataset` may carry (CIFAR-10's), vectorised on
  the training device.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["VAL_SPLIT_SEED", "Dataset", "DatasetError", "RandomCropFlip", "assemble", "pixel_normaliser",
           "validation_split"]

VAL_SPLIT_SEED = 0
"""Seed of the generator that picks the validation examples (fixed: same split everywhere)."""


class DatasetError(ValueError):
    """A dataset cannot be loaded; the message says what is wrong and how to fix it."""


@dataclass(eq=False, repr=False)
class Dataset:
    """A whole dataset as tensors on one device, already normalised and split.

    `augment`, when set, maps a training batch `[B, *input_shape]` and a `torch.Generator`
    to an augmented batch of the same shape on the batch's device.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. (1, 28, 28) or (40,)."""
        return tuple(self.train_x.shape[1:])

    def to(self, device: torch.device | str) -> Dataset:
        """A copy with every tensor on `device` (the augmentation works on any device)."""
        return dataclasses.replace(
            self,
            train_x=self.train_x.to(device),
            train_y=self.train_y.to(device),
            val_x=self.val_x.to(device),
            val_y=self.val_y.to(device),
            test_x=self.test_x.to(device),
            test_y=self.test_y.to(device),
        )

    def __repr__(self) -> str:  # the default repr would print the tensors
        return (
            f"Dataset({self.name!r}, train={len(self.train_y)}, val={len(self.val_y)}, "
            f"test={len(self.test_y)}, input_shape={self.input_shape}, "
            f"num_classes={self.num_classes}, device={self.train_x.device}, "
            f"augment={'yes' if self.augment is not None else 'no'})"
        )


def validation_split(train_size: int, val_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) into a training split of `train_size`, both sorted, disjoint.

    A fixed generator (seed 0) picks the validation examples, so the split depends only on
    the two sizes: every trial and every run of one dataset sees the same one.
    """
    perm = np.random.default_rng(VAL_SPLIT_SEED).permutation(train_size)
    return np.sort(perm[val_size:]), np.sort(perm[:val_size])


def assemble(
    name: str,
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    *,
    val_size: int,
    num_classes: int,
    normalise: Callable[[np.ndarray], torch.Tensor],
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
) -> Dataset:
    """Split off the validation set, then normalise each part (raw arrays are the small ones).

    Splitting before the float conversion keeps the peak memory near one float copy of the
    data (CIFAR-10: ~150 MB uint8 + ~600 MB float32) instead of two.
    """
    n = len(train_y)
    if not 0 <= val_size < n:
        raise DatasetError(
            f"val_size = {val_size} is out of range for {name}: it must be between 0 and "
            f"{n - 1} (the training split has {n} examples)"
        )
    train_idx, val_idx = validation_split(n, val_size)
    return Dataset(
        name=name,
        train_x=normalise(train_x[train_idx]),
        train_y=_labels(train_y[train_idx]),
        val_x=normalise(train_x[val_idx]),
        val_y=_labels(train_y[val_idx]),
        test_x=normalise(test_x),
        test_y=_labels(test_y),
        num_classes=num_classes,
        augment=augment,
    )


def _labels(y: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))


def pixel_normaliser(
    shape: tuple[int, ...], mean: tuple[float, ...], std: tuple[float, ...], scale: float = 255.0
) -> Callable[[np.ndarray], torch.Tensor]:
    """uint8 (or any) pixels → float32 `[N, *shape]`, scaled to [0, 1], then per channel
    `(x - mean) / std`. Works in place on the one float copy."""
    channels = shape[0]
    mean_t = torch.tensor(mean, dtype=torch.float32).reshape(-1, *([1] * (len(shape) - 1)))
    std_t = torch.tensor(std, dtype=torch.float32).reshape(-1, *([1] * (len(shape) - 1)))
    if mean_t.shape[0] not in (1, channels) or std_t.shape[0] not in (1, channels):
        raise ValueError("mean/std need one value or one per channel")

    def normalise(raw: np.ndarray) -> torch.Tensor:
        if not raw.flags.writeable:  # torch wants writable memory even when it only reads
            raw = raw.copy()
        # torch converts uint8 -> float32 multi-threaded (numpy's astype does not); copy=True
        # so float input is never normalised in place under its owner's feet
        x = torch.from_numpy(np.ascontiguousarray(raw)).to(torch.float32, copy=True)
        x = x.reshape(len(raw), *shape)
        return x.div_(scale).sub_(mean_t).div_(std_t)

    return normalise



class RandomCropFlip:
    """Random crop from a padded image plus random horizontal flip, on a whole batch.

    The standard CIFAR augmentation (torchvision's RandomCrop(32, padding=4) then
    RandomHorizontalFlip), vectorised: one gather on the batch's device. The random offsets
    and flips are drawn with the given generator on the generator's device (CPU by default)
    and then moved, so a fixed seed gives the same augmentation on any training device.
    `fill` is the padding value per channel; for CIFAR-10 it is black in normalised units,
    exactly what padding the raw image with zeros before normalising gives.
    """

    def __init__(self, padding: int, fill: tuple[float, ...] = (0.0,)) -> None:
        self.padding = padding
        self.fill = tuple(float(v) for v in fill)

    def __call__(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, c, h, w = batch.shape
        p = self.padding
        padded = batch.new_empty((b, c, h + 2 * p, w + 2 * p))
        fill = torch.tensor(self.fill, dtype=batch.dtype, device=batch.device)
        padded.copy_(fill.reshape(-1, 1, 1).expand(c, h + 2 * p, w + 2 * p))
        padded[:, :, p:p + h, p:p + w] = batch

        gen_device = generator.device
        dy = torch.randint(0, 2 * p + 1, (b,), generator=generator, device=gen_device)
        dx = torch.randint(0, 2 * p + 1, (b,), generator=generator, device=gen_device)
        flip = torch.rand(b, generator=generator, device=gen_device) < 0.5
        dy, dx, flip = dy.to(batch.device), dx.to(batch.device), flip.to(batch.device)

        rows = dy[:, None] + torch.arange(h, device=batch.device)  # [B, H]
        cols = dx[:, None] + torch.arange(w, device=batch.device)  # [B, W]
        cols = torch.where(flip[:, None], cols.flip(1), cols)  # flip after crop
        bi = torch.arange(b, device=batch.device)[:, None, None]
        out = padded.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]]  # [B,H,W,C]
        return out.permute(0, 3, 1, 2).contiguous()

    def __repr__(self) -> str:
        return f"RandomCropFlip(padding={self.padding}, fill={self.fill})"

