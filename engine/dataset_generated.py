"""The datasets that need no files: MNIST-1D, generated locally, and scikit-learn's digits.

Split out of engine/datasets.py because these loaders share nothing with the readers of
torchvision's files (engine/dataset_files.py): they run a generator or a bundled loader and
cache or split the result. MNIST-1D is generated with the `mnist1d` package (never its download
path, which unpickles a file from the network) and cached as a plain `.npz`, loaded without
pickle, under `<data_dir>/mnist1d/`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import random
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.dataset_tensors import Dataset, assemble, pixel_normaliser

__all__ = ["DIGITS_TEST_SIZE", "load_digits", "load_mnist1d", "mnist1d_args"]


_MNIST1D_CACHE_VERSION = 1


def mnist1d_args() -> dict[str, Any]:
    """The package's default generation args, minus the download URL (never used)."""
    from mnist1d.data import get_dataset_args

    args = dict(get_dataset_args(as_dict=True))
    args.pop("url", None)
    return args


def _mnist1d_cache_path(data_dir: Path, args: dict[str, Any]) -> Path:
    try:  # a new generator release may generate different data: key the cache on it too
        package = importlib.metadata.version("mnist1d")
    except importlib.metadata.PackageNotFoundError:
        package = "unknown"
    key = json.dumps(
        {"version": _MNIST1D_CACHE_VERSION, "mnist1d": package, "args": args}, sort_keys=True
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return data_dir / "mnist1d" / f"mnist1d-{digest}.npz"


def _mnist1d_generate(args: dict[str, Any]) -> dict[str, np.ndarray]:
    """Run the package's generator; it reseeds numpy's and Python's global RNGs, so their
    states are put back afterwards (a run's own seeding must not depend on data loading)."""
    from mnist1d.data import make_dataset
    from mnist1d.utils import ObjectView

    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        raw = make_dataset(ObjectView(dict(args)))
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {
        "x": np.asarray(raw["x"], dtype=np.float32),
        "y": np.asarray(raw["y"], dtype=np.int64),
        "x_test": np.asarray(raw["x_test"], dtype=np.float32),
        "y_test": np.asarray(raw["y_test"], dtype=np.int64),
    }


def _mnist1d_read_cache(path: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when the cache is missing or unreadable (then rebuild)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in ("x", "y", "x_test", "y_test")}
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None
    ok = (
        arrays["x"].ndim == 2
        and arrays["x_test"].ndim == 2
        and len(arrays["x"]) == len(arrays["y"])
        and len(arrays["x_test"]) == len(arrays["y_test"])
    )
    return arrays if ok else None


def _mnist1d_write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically (tmp file + rename) so a killed run never leaves half a cache. A data
    dir that cannot be written only costs the cache, not the run."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as err:
        warnings.warn(f"could not cache MNIST-1D at {path}: {err}", stacklevel=3)


def load_mnist1d(*, val_size: int, data_dir: Path, download: bool, augment: bool) -> Dataset:
    """MNIST-1D with the package's default args (4000 train / 1000 test, length 40).

    Standardised with the mean/std of the whole training split (before the validation
    hold-out), so the normalisation does not change with `val_size`.
    """
    args = mnist1d_args()
    path = _mnist1d_cache_path(data_dir, args)
    arrays = _mnist1d_read_cache(path)
    if arrays is None:
        arrays = _mnist1d_generate(args)
        _mnist1d_write_cache(path, arrays)
    x, x_test = arrays["x"], arrays["x_test"]
    mean, std = float(x.mean()), float(x.std())

    def normalise(raw: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(raw.astype(np.float32)).sub_(mean).div_(std)  # astype copies

    return assemble(
        "mnist1d", x, arrays["y"], x_test, arrays["y_test"],
        val_size=val_size, num_classes=10, normalise=normalise,
    )


# ---------------------------------------------------------------------------------------------
# scikit-learn digits: bundled with sklearn, no files needed

DIGITS_TEST_SIZE = 360


def load_digits(*, val_size: int, data_dir: Path, download: bool, augment: bool) -> Dataset:
    """The 1797 8×8 digits; a fixed stratified split (seed 0) keeps 360 for test.

    Pixels (0..16) are scaled to [0, 1] and standardised with the training split's mean/std.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float32) / 16.0
    labels = np.asarray(bunch.target, dtype=np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=DIGITS_TEST_SIZE, stratify=labels, random_state=0
    )
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    mean, std = float(images[train_idx].mean()), float(images[train_idx].std())
    normalise = pixel_normaliser((1, 8, 8), (mean,), (std,), scale=1.0)
    return assemble(
        "digits", images[train_idx], labels[train_idx], images[test_idx], labels[test_idx],
        val_size=val_size, num_classes=10, normalise=normalise,
    )
