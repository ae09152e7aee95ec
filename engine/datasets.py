"""Datasets as whole tensors: a registry of named datasets and one function that loads them.

Lottery-ticket runs train the same small network many times (rounds × trials), so the engine
keeps a whole dataset on the training device and batches by index instead of running a
DataLoader per step. This module turns each supported dataset into a `Dataset` of normalised
float32 tensors with a fixed train / validation / test split.

The registry (name -> `DatasetSpec`) and `load_dataset` live here; the rest is split by what
it reads:
- engine/dataset_tensors.py: the `Dataset` value, the fixed validation split (seed 0) and the
  assembly of raw arrays into normalised tensors that every loader shares;
- engine/dataset_files.py: torchvision's files (MNIST, Fashion-MNIST, CIFAR-10) read and checked
  by our own readers, never by torchvision's classes or a plain unpickler;
- engine/dataset_generated.py: the datasets that need no files (MNIST-1D, digits).

Datasets live under `default_data_dir()` (`$LTH_TUI_DATA_DIR`, else
`~/.local/share/lth-tui/data`) in torchvision's layout: `MNIST/raw/`, `FashionMNIST/raw/`,
`cifar-10-batches-py/`; the MNIST-1D cache goes to `mnist1d/`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.dataset_files import load_cifar10, mnist_like_loader
from engine.dataset_generated import load_digits, load_mnist1d
from engine.dataset_tensors import Dataset, DatasetError

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetError",
    "DatasetSpec",
    "default_data_dir",
    "load_dataset",
]


@dataclass(frozen=True)
class DatasetSpec:
    """What the app and the config validator need to know about a dataset without loading it."""

    name: str
    description: str
    input_shape: tuple[int, ...]
    num_classes: int
    loader: Callable[..., Dataset]


def default_data_dir() -> Path:
    """Where datasets live: `$LTH_TUI_DATA_DIR`, else `~/.local/share/lth-tui/data`."""
    env = os.environ.get("LTH_TUI_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "share" / "lth-tui" / "data"


def load_dataset(
    name: str,
    *,
    val_size: int,
    data_dir: Path | str | None = None,
    download: bool = False,
    augment: bool = False,
) -> Dataset:
    """Load dataset `name` as CPU tensors with `val_size` examples held out of training.

    `data_dir` defaults to `default_data_dir()`. `download=True` lets MNIST, Fashion-MNIST
    and CIFAR-10 be fetched with torchvision when their files are missing. `augment=True`
    gives CIFAR-10 its standard random crop + horizontal flip; the other datasets have no
    standard augmentation and quietly keep `augment=None` (check `Dataset.augment`).
    """
    spec = DATASETS.get(name)
    if spec is None:
        raise DatasetError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    if isinstance(val_size, bool) or not isinstance(val_size, (int, np.integer)):
        raise DatasetError(f"val_size = {val_size!r} must be a whole number of examples")
    if val_size < 0:
        raise DatasetError(
            f"val_size = {val_size} is out of range for {name}: it must be 0 (no hold-out) or "
            "more, and less than the number of training examples"
        )
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    return spec.loader(val_size=int(val_size), data_dir=root, download=download, augment=augment)


# ---------------------------------------------------------------------------------------------
# The registry

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "mnist1d", "MNIST-1D: 1-D signals of length 40, 4000 train / 1000 test, generated",
            (40,), 10, load_mnist1d,
        ),
        DatasetSpec(
            "digits", "scikit-learn digits: 8×8 images, 1437 train / 360 test, bundled (no files)",
            (1, 8, 8), 10, load_digits,
        ),
        DatasetSpec(
            "mnist", "MNIST: 28×28 handwritten digits, 60000 train / 10000 test",
            (1, 28, 28), 10,
            mnist_like_loader("mnist", "MNIST", "MNIST", 0.1307, 0.3081),
        ),
        DatasetSpec(
            "fashion-mnist", "Fashion-MNIST: 28×28 clothing images, 60000 train / 10000 test",
            (1, 28, 28), 10,
            mnist_like_loader("fashion-mnist", "FashionMNIST", "Fashion-MNIST", 0.2860, 0.3530),
        ),
        DatasetSpec(
            "cifar10", "CIFAR-10: 32×32 colour images, 50000 train / 10000 test",
            (3, 32, 32), 10, load_cifar10,
        ),
    )
}
