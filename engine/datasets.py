"""Datasets as whole tensors: a registry of named datasets and one function that loads them.

Lottery-ticket runs train the same small network many times (rounds × trials), so the engine
keeps a whole dataset on the training device and batches by index instead of running a
DataLoader per step. This module turns each supported dataset into a `Dataset` of normalised
float32 tensors with a fixed train / validation / test split.

Why each choice:
- The validation split is carved out of the *training* split with a fixed generator (seed 0),
  so every trial and every run of one dataset early-stops on the same examples and the test
  split stays untouched whatever `val_size` is.
- Files are read with small readers of our own (IDX for MNIST-style data, a restricted
  unpickler for CIFAR-10), never with torchvision's dataset classes: those check md5 sums
  (which small test fixtures fail) and CIFAR-10's plain `pickle.load` would run any code a
  tampered batch file contains. torchvision is imported only to download, and only when asked.
- MNIST-1D is generated locally with the `mnist1d` package (never its download path, which
  unpickles a file from the network) and cached as a plain `.npz`, loaded without pickle.

Datasets live under `default_data_dir()` (`$LTH_TUI_DATA_DIR`, else
`~/.local/share/lth-tui/data`) in torchvision's layout: `MNIST/raw/`, `FashionMNIST/raw/`,
`cifar-10-batches-py/`; the MNIST-1D cache goes to `mnist1d/`.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import importlib
import importlib.metadata
import json
import os
import pickle
import random
import tempfile
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

__all__ = [
    "DATASETS",
    "missing_files",
    "Dataset",
    "DatasetError",
    "DatasetSpec",
    "RandomCropFlip",
    "default_data_dir",
    "load_dataset",
    "validation_split",
]

VAL_SPLIT_SEED = 0
"""Seed of the generator that picks the validation examples (fixed: same split everywhere)."""


class DatasetError(ValueError):
    """A dataset cannot be loaded; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class DatasetSpec:
    """What the app and the config validator need to know about a dataset without loading it."""

    name: str
    description: str
    input_shape: tuple[int, ...]
    num_classes: int
    loader: Callable[..., "Dataset"]


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

    def to(self, device: torch.device | str) -> "Dataset":
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


def default_data_dir() -> Path:
    """Where datasets live: `$LTH_TUI_DATA_DIR`, else `~/.local/share/lth-tui/data`."""
    env = os.environ.get("LTH_TUI_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "share" / "lth-tui" / "data"


def validation_split(train_size: int, val_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) into a training split of `train_size`, both sorted, disjoint.

    A fixed generator (seed 0) picks the validation examples, so the split depends only on
    the two sizes: every trial and every run of one dataset sees the same one.
    """
    perm = np.random.default_rng(VAL_SPLIT_SEED).permutation(train_size)
    return np.sort(perm[val_size:]), np.sort(perm[:val_size])


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
# Assembling a Dataset from raw arrays


def _assemble(
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


def _pixel_normaliser(
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


# ---------------------------------------------------------------------------------------------
# MNIST-1D: generated locally, cached as .npz

_MNIST1D_CACHE_VERSION = 1


def _mnist1d_args() -> dict[str, Any]:
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


def _load_mnist1d(*, val_size: int, data_dir: Path, download: bool, augment: bool) -> Dataset:
    """MNIST-1D with the package's default args (4000 train / 1000 test, length 40).

    Standardised with the mean/std of the whole training split (before the validation
    hold-out), so the normalisation does not change with `val_size`.
    """
    args = _mnist1d_args()
    path = _mnist1d_cache_path(data_dir, args)
    arrays = _mnist1d_read_cache(path)
    if arrays is None:
        arrays = _mnist1d_generate(args)
        _mnist1d_write_cache(path, arrays)
    x, x_test = arrays["x"], arrays["x_test"]
    mean, std = float(x.mean()), float(x.std())

    def normalise(raw: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(raw.astype(np.float32)).sub_(mean).div_(std)  # astype copies

    return _assemble(
        "mnist1d", x, arrays["y"], x_test, arrays["y_test"],
        val_size=val_size, num_classes=10, normalise=normalise,
    )


# ---------------------------------------------------------------------------------------------
# scikit-learn digits: bundled with sklearn, no files needed

DIGITS_TEST_SIZE = 360


def _load_digits(*, val_size: int, data_dir: Path, download: bool, augment: bool) -> Dataset:
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
    normalise = _pixel_normaliser((1, 8, 8), (mean,), (std,), scale=1.0)
    return _assemble(
        "digits", images[train_idx], labels[train_idx], images[test_idx], labels[test_idx],
        val_size=val_size, num_classes=10, normalise=normalise,
    )


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


def _mnist_like_loader(
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
        return _assemble(
            name, train_x, train_y, test_x, test_y,
            val_size=val_size, num_classes=10,
            normalise=_pixel_normaliser((1, 28, 28), (mean,), (std,)),
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


def _load_cifar10(*, val_size: int, data_dir: Path, download: bool, augment: bool) -> Dataset:
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
    return _assemble(
        "cifar10", train_x, train_y, test_x, test_y,
        val_size=val_size, num_classes=10,
        normalise=_pixel_normaliser((3, 32, 32), CIFAR10_MEAN, CIFAR10_STD),
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


# ---------------------------------------------------------------------------------------------
# The registry

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "mnist1d", "MNIST-1D: 1-D signals of length 40, 4000 train / 1000 test, generated",
            (40,), 10, _load_mnist1d,
        ),
        DatasetSpec(
            "digits", "scikit-learn digits: 8×8 images, 1437 train / 360 test, bundled (no files)",
            (1, 8, 8), 10, _load_digits,
        ),
        DatasetSpec(
            "mnist", "MNIST: 28×28 handwritten digits, 60000 train / 10000 test",
            (1, 28, 28), 10,
            _mnist_like_loader("mnist", "MNIST", "MNIST", 0.1307, 0.3081),
        ),
        DatasetSpec(
            "fashion-mnist", "Fashion-MNIST: 28×28 clothing images, 60000 train / 10000 test",
            (1, 28, 28), 10,
            _mnist_like_loader("fashion-mnist", "FashionMNIST", "Fashion-MNIST", 0.2860, 0.3530),
        ),
        DatasetSpec(
            "cifar10", "CIFAR-10: 32×32 colour images, 50000 train / 10000 test",
            (3, 32, 32), 10, _load_cifar10,
        ),
    )
}
