"""torchvision's on-disk datasets (MNIST, Fashion-MNIST, CIFAR-10), read and checked without torchvision.

Split out of engine/datasets.py: this is the part that reads files other people (or a
download) put on disk, so every check of their bytes lives here. Files are read with small
readers of our own (IDX for MNIST-style data, a restricted unpickler for CIFAR-10), never with
torchvision's dataset classes: those check md5 sums (which small test fixtures fail) and
CIFAR-10's plain `pickle.load` would run any code a tampered batch file contains. torchvision
is imported only to download, and only when asked. The layout is torchvision's:
`MNIST/raw/`, `FashionMNIST/raw/`, `cifar-10-batches-py/`.
"""

from __future__ import annotations

import functools
import gzip
import importlib
import pickle
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from engine.dataset_tensors import Dataset, DatasetError, RandomCropFlip, assemble, pixel_normaliser

__all__ = ["CIFAR10_MEAN", "CIFAR10_STD", "load_cifar10", "mnist_like_loader", "missing_files"]

# ---------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST: IDX files in torchvision's layout

_IDX_IMAGES_MAGIC = 2051
_IDX_LABELS_MAGIC = 2049
_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """Read one IDX file (optionally gzipped) into a uint8 array of the header's shape.

    The header is big-endian: magic (0x0000, type 0x08 = ubyte, number of dims), then one
    uint32 per dim. Anything that does not match — wrong magic, short or overlong data, a
    broken gzip stream — is a DatasetError naming the file.
    """
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise DatasetError(f"cannot read {path}: {err}; delete it and fetch it again") from err
    if len(data) < 4:
        raise DatasetError(f"{path} is truncated (only {len(data)} bytes); fetch it again")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise DatasetError(
            f"{path} is not an IDX file of the expected kind: magic number {magic}, "
            f"expected {expected_magic}; fetch it again"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{path} is truncated inside its header; fetch it again")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(dims, dtype=np.int64))
    if len(data) - header != expected:
        raise DatasetError(
            f"{path} holds {len(data) - header} data bytes but its header {dims} says "
            f"{expected}; the file is truncated or corrupt, fetch it again"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _find_idx_files(raw_dir: Path) -> tuple[list[Path], list[str]]:
    """The four files (plain preferred over .gz), and the names of those missing."""
    found, missing = [], []
    for base in _IDX_FILES:
        for candidate in (raw_dir / base, raw_dir / f"{base}.gz"):
            if candidate.is_file():
                found.append(candidate)
                break
        else:
            missing.append(base)
    return found, missing


def _torchvision_download(title: str, fetch: Callable[[], Any], target: Path) -> None:
    """Run a torchvision download, turning its many failure types into a DatasetError."""
    try:
        fetch()
    except Exception as err:  # network errors, md5 mismatches, disk full: all mean the same
        raise DatasetError(
            f"downloading {title} into {target} failed: {err}. Check the network, or put the "
            f"files there by hand and run without --download"
        ) from err


def mnist_like_loader(
    name: str, folder: str, title: str, mean: float, std: float
) -> Callable[..., Dataset]:
    """A loader for MNIST-format data under `<data_dir>/<folder>/raw/`."""

    def load(*, val_size: int, data_dir: Path, download: bool, augment: bool) -> Dataset:
        raw_dir = data_dir / folder / "raw"
        files, missing = _find_idx_files(raw_dir)
        if missing and download:
            from torchvision import datasets as tv_datasets

            tv_class = getattr(tv_datasets, folder)  # MNIST / FashionMNIST
            _torchvision_download(
                title, lambda: tv_class(str(data_dir), train=True, download=True), raw_dir
            )
            files, missing = _find_idx_files(raw_dir)
        if missing:
            raise DatasetError(
                f"{title} files not found: {raw_dir} must hold {', '.join(_IDX_FILES)} "
                f"(each plain or .gz), missing: {', '.join(missing)}. Put them there, use "
                f"--data-dir DIR to point at a directory that holds {folder}/raw/, "
                f"or pass --download to fetch them"
            )
        train_x = _read_idx(files[0], _IDX_IMAGES_MAGIC)
        train_y = _read_idx(files[1], _IDX_LABELS_MAGIC)
        test_x = _read_idx(files[2], _IDX_IMAGES_MAGIC)
        test_y = _read_idx(files[3], _IDX_LABELS_MAGIC)
        for images, labels, img_path, lbl_path in (
            (train_x, train_y, files[0], files[1]),
            (test_x, test_y, files[2], files[3]),
        ):
            if images.ndim != 3 or images.shape[1:] != (28, 28):
                raise DatasetError(
                    f"{img_path} holds images of shape {images.shape[1:]}, expected (28, 28)"
                )
            if labels.ndim != 1 or len(labels) != len(images):
                raise DatasetError(
                    f"{lbl_path} holds {labels.shape} labels but {img_path} holds "
                    f"{len(images)} images; the two files do not belong together"
                )
            if len(labels) and int(labels.max()) >= 10:
                raise DatasetError(f"{lbl_path} has label {int(labels.max())}; expected 0..9")
        return assemble(
            name, train_x, train_y, test_x, test_y,
            val_size=val_size, num_classes=10,
            normalise=pixel_normaliser((1, 28, 28), (mean,), (std,)),
        )

    return load


# ---------------------------------------------------------------------------------------------
# CIFAR-10: torchvision's cifar-10-batches-py, read with a restricted unpickler

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
_CIFAR_FOLDER = "cifar-10-batches-py"
_CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST_FILE = "test_batch"


def _numpy_global(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


@functools.cache
def _allowed_pickle_globals() -> dict[tuple[str, str], Callable[[], Any]]:
    """The only globals a CIFAR batch may name: what a numpy array and bytes need."""
    new_core = "numpy._core.multiarray"
    try:  # numpy ≥ 2 moved the module; resolve old pickles' names to whichever exists
        _numpy_global(new_core, "_reconstruct")
        core = new_core
    except (ImportError, AttributeError):
        core = "numpy.core.multiarray"
    import _codecs

    return {
        ("numpy.core.multiarray", "_reconstruct"): lambda: _numpy_global(core, "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"): lambda: _numpy_global(core, "_reconstruct"),
        ("numpy.core.multiarray", "scalar"): lambda: _numpy_global(core, "scalar"),
        ("numpy._core.multiarray", "scalar"): lambda: _numpy_global(core, "scalar"),
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
        # Python 3 pickles bytes with protocol 2 as _codecs.encode(str, "latin1")
        ("_codecs", "encode"): lambda: _codecs.encode,
    }


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays; refuses every other global, so a
    tampered batch file cannot call os.system or anything else."""

    def find_class(self, module: str, name: str) -> Any:
        factory = _allowed_pickle_globals().get((module, name))
        if factory is None:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a data file")
        return factory()


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(data uint8 [N, 3072], labels int64 [N]) of one batch file, checked."""
    try:
        with path.open("rb") as f:
            batch = _RestrictedUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError,
            AttributeError, IndexError, KeyError) as err:
        raise DatasetError(
            f"cannot read CIFAR-10 batch {path}: {err}; it is corrupt or not a CIFAR-10 "
            "batch, fetch it again"
        ) from err
    if not isinstance(batch, dict):
        raise DatasetError(f"{path} is not a CIFAR-10 batch (a dict); fetch it again")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * 32 * 32:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetError(f"{path}: b'data' is {got}, expected uint8 [N, 3072]")
    try:
        labels_arr = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as err:
        raise DatasetError(f"{path}: b'labels' is not a list of integers") from err
    if labels_arr.shape != (len(data),):
        raise DatasetError(
            f"{path}: {labels_arr.shape} labels for {len(data)} images; the file is corrupt"
        )
    if len(labels_arr) and (labels_arr.min() < 0 or labels_arr.max() >= 10):
        raise DatasetError(f"{path}: labels outside 0..9")
    return data, labels_arr


def load_cifar10(*, val_size: int, data_dir: Path, download: bool, augment: bool) -> Dataset:
    """CIFAR-10 from `<data_dir>/cifar-10-batches-py/`, per-channel normalised."""
    folder = data_dir / _CIFAR_FOLDER
    names = (*_CIFAR_TRAIN_FILES, _CIFAR_TEST_FILE)
    missing = [n for n in names if not (folder / n).is_file()]
    if missing and download:
        from torchvision import datasets as tv_datasets

        _torchvision_download(
            "CIFAR-10", lambda: tv_datasets.CIFAR10(str(data_dir), train=True, download=True),
            folder,
        )
        missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DatasetError(
            f"CIFAR-10 files not found: {folder} must hold the python-version batches "
            f"{', '.join(names)}, missing: {', '.join(missing)}. Put them there, use "
            f"--data-dir DIR to point at a directory that holds {_CIFAR_FOLDER}/, "
            f"or pass --download to fetch them"
        )
    parts = [_read_cifar_batch(folder / n) for n in _CIFAR_TRAIN_FILES]
    train_x = np.concatenate([d for d, _ in parts])
    train_y = np.concatenate([lbl for _, lbl in parts])
    del parts
    test_x, test_y = _read_cifar_batch(folder / _CIFAR_TEST_FILE)
    black = tuple(-m / s for m, s in zip(CIFAR10_MEAN, CIFAR10_STD))
    return assemble(
        "cifar10", train_x, train_y, test_x, test_y,
        val_size=val_size, num_classes=10,
        normalise=pixel_normaliser((3, 32, 32), CIFAR10_MEAN, CIFAR10_STD),
        augment=RandomCropFlip(padding=4, fill=black) if augment else None,
    )


def missing_files(name: str, data_dir: Path) -> tuple[Path, list[str]]:
    """Where a file-backed dataset is read from and which of its files are not there yet.

    ([], the folder) when everything is there, and for datasets that need no files; a check
    that reads directory entries only, so a caller can refuse to start before anything loads.
    """
    data_dir = Path(data_dir).expanduser()
    if name in ("mnist", "fashion-mnist"):
        raw_dir = data_dir / ("MNIST" if name == "mnist" else "FashionMNIST") / "raw"
        return raw_dir, _find_idx_files(raw_dir)[1]
    if name == "cifar10":
        folder = data_dir / _CIFAR_FOLDER
        return folder, [n for n in (*_CIFAR_TRAIN_FILES, _CIFAR_TEST_FILE) if not (folder / n).is_file()]
    return data_dir, []
